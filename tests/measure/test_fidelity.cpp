// Quality without labels (issue 14): embedding cosines and 10-nearest-neighbour agreement against a
// brute-force recount, and a token dataset's outputs through modelOutputs in order and batch-independent.
#include "engine/backends/registry.h"
#include "engine/core/errors.h"
#include "engine/nn/trainer.h"
#include "engine/measure/fidelity.h"
#include "tests/support/test_support.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

using namespace lathe;

namespace {

OutputSet randomSet(std::int64_t rows, std::int64_t dim, std::uint64_t seed) {
    OutputSet s;
    s.rows = rows;
    s.dim = dim;
    s.values = test::randomVector(static_cast<std::size_t>(rows * dim), seed);
    return s;
}

// The k nearest by cosine, written the slow way (a full sort of every row), ties to the lower index.
std::vector<std::set<std::int64_t>> bruteNeighbours(const OutputSet& s, int k) {
    auto cosine = [&](std::int64_t a, std::int64_t b) {
        double ab = 0, aa = 0, bb = 0;
        for (std::int64_t d = 0; d < s.dim; ++d) {
            const double x = s.values[a * s.dim + d], y = s.values[b * s.dim + d];
            ab += x * y, aa += x * x, bb += y * y;
        }
        return ab / std::sqrt(aa * bb);
    };
    std::vector<std::set<std::int64_t>> out;
    for (std::int64_t i = 0; i < s.rows; ++i) {
        std::vector<std::pair<double, std::int64_t>> all;
        for (std::int64_t j = 0; j < s.rows; ++j)
            if (j != i) all.push_back({-cosine(i, j), j});
        std::sort(all.begin(), all.end());
        std::set<std::int64_t> nn;
        for (int q = 0; q < k; ++q) nn.insert(all[static_cast<std::size_t>(q)].second);
        out.push_back(nn);
    }
    return out;
}

} // namespace

class TestFidelity : public QObject {
    Q_OBJECT

private slots:
    void identicalOutputsAgreeFully() {
        const OutputSet a = randomSet(300, 16, 1);
        const auto m = outputFidelity(a, a);
        QCOMPARE(m.at("retrieval_recall_at_10"), 1.0);
        QVERIFY(std::abs(m.at("embedding_cosine_mean") - 1.0) < 1e-6);
        QVERIFY(std::abs(m.at("embedding_cosine_min") - 1.0) < 1e-6);
    }

    void cosinesOfKnownRows() {
        OutputSet a = randomSet(40, 8, 2), b = a;
        for (std::int64_t d = 0; d < 8; ++d) b.values[static_cast<std::size_t>(5 * 8 + d)] *= -3.0f; // row 5: cosine -1
        for (std::int64_t d = 0; d < 8; ++d) b.values[static_cast<std::size_t>(9 * 8 + d)] *= 2.0f;  // row 9: scale only
        const auto m = outputFidelity(a, b);
        QVERIFY(std::abs(m.at("embedding_cosine_min") + 1.0) < 1e-6);
        QVERIFY(std::abs(m.at("embedding_cosine_mean") - 38.0 / 40.0) < 1e-6);
    }

    void recallMatchesBruteForce() {
        const OutputSet a = randomSet(500, 12, 3);
        OutputSet b = a;
        const auto noise = test::randomVector(b.values.size(), 4, -0.3f, 0.3f);
        for (std::size_t i = 0; i < b.values.size(); ++i) b.values[i] += noise[i];
        const auto na = bruteNeighbours(a, 10), nb = bruteNeighbours(b, 10);
        double expected = 0;
        for (std::size_t i = 0; i < na.size(); ++i) {
            std::vector<std::int64_t> both;
            std::set_intersection(na[i].begin(), na[i].end(), nb[i].begin(), nb[i].end(), std::back_inserter(both));
            expected += both.size() / 10.0;
        }
        expected /= 500.0;
        const double got = outputFidelity(a, b).at("retrieval_recall_at_10");
        QVERIFY2(std::abs(got - expected) < 1e-12, qPrintable(QString("%1 vs %2").arg(got).arg(expected)));
        QVERIFY(got > 0.2 && got < 0.95); // the noise moved some neighbours, not all
        const auto fast = nearestNeighbours(a, 10);
        for (std::int64_t i = 0; i < 500; ++i)
            QCOMPARE(std::set<std::int64_t>(fast.begin() + i * 10, fast.begin() + (i + 1) * 10), na[static_cast<std::size_t>(i)]);
    }

    void fewerThanElevenRowsUseAllOthers() {
        const OutputSet a = randomSet(6, 4, 5);
        QCOMPARE(outputFidelity(a, a).at("retrieval_recall_at_10"), 1.0);
    }

    void shapesMustAgree() {
        const std::string err = test::errorOf<ConfigError>([] { outputFidelity(randomSet(4, 3, 1), randomSet(4, 5, 1)); });
        QVERIFY2(err.find("cannot be compared") != std::string::npos, err.c_str());
    }

    // modelOutputs over a token dataset: an embedding of 10 ids into 4 dims, flattened (N, T*4); the rows come
    // back in sample order whatever the batch size.
    void tokenDatasetOutputsInOrder() {
        auto be = backendFor("cpu");
        auto model = Model::fromArchitecture({{"name", "tok"},
                                              {"input", {{"shape", {3}}, {"dtype", "i32"}}},
                                              {"classes", 12},
                                              {"layers", {{{"type", "embedding"}, {"num", 10}, {"dim", 4}},
                                                          {{"type", "flatten"}}}}});
        model->initialize(*be, 7);
        model->to(*be);
        Dataset d;
        d.name = "tokens";
        d.sampleShape = {3};
        d.labelled = false;
        for (int i = 0; i < 7; ++i) {
            for (int t = 0; t < 3; ++t) d.tokens.push_back((i * 3 + t) % 10);
            d.labels.push_back(0);
        }
        const OutputSet one = modelOutputs(*model, *be, d, 1), three = modelOutputs(*model, *be, d, 3);
        QCOMPARE(one.rows, 7);
        QCOMPARE(one.dim, 12);
        QCOMPARE(one.values, three.values);
        // Row 4 holds ids 2, 3, 4: the table's rows 2..4.
        const auto table = be->downloadF32(model->namedParameters()[0].param->value);
        QCOMPARE(std::vector<float>(one.values.begin() + 4 * 12, one.values.begin() + 5 * 12),
                 std::vector<float>(table.begin() + 2 * 4, table.begin() + 5 * 4));
        // Accuracy has no meaning without labels.
        const std::string err = test::errorOf<ConfigError>([&] { evaluate(*model, *be, d); });
        QVERIFY2(err.find("has no labels") != std::string::npos, err.c_str());
    }
};

LATHE_TEST_GUILESS_MAIN(TestFidelity)
#include "test_fidelity.moc"

// lowrank.svd: the factored pair multiplies back to the truncation with the Eckart-Young error, full rank
// reproduces the layer, the energy rule picks the smallest rank reaching the fraction, a factored model saves
// and loads, validation refuses a rank no layer can take, and a model without a Linear to factor fails.
#include "engine/core/errors.h"
#include "engine/experiment/runner.h"
#include "engine/experiment/spec.h"
#include "engine/measure/flops.h"
#include "engine/measure/latency.h"
#include "engine/store/run_store.h"
#include "engine/strategies/lowrank/svd.h"
#include "tests/strategies/strategy_fixture.h"
#include "tests/support/test_support.h"

#include <QtTest>

#include <cmath>
#include <filesystem>

using namespace lathe;
using json = nlohmann::json;

namespace {

// The factors are rounded to float once; multiplying them back in double leaves an error of a few float
// ulps of the weight's scale, far below 2e-5 of its Frobenius norm for the layers here (<= 784 x 64).
constexpr double kReconstructionTol = 2e-5;
// A full-rank pair computes x V S^1/2 then S^1/2 U^T in float: two GEMMs instead of one, so the logits differ
// by float rounding over 784 + 64 terms, well under 1e-4 of their largest magnitude.
constexpr double kFullRankTol = 1e-4;

ParamValues svdParams(std::int64_t rank, double energy = 0.9) {
    ParamValues v = test::quickMeasuringDefaults("lowrank.svd");
    v.set("rank", rank);
    v.set("energy", energy);
    return v;
}


bool hasParam(Model& m, const std::string& name) {
    for (const auto& np : m.namedParameters())
        if (np.name == name) return true;
    return false;
}



// An (8, 784) weight with singular values s: U from the 8x8 Hadamard matrix / sqrt(8), V from unit vectors of
// the inputs 3, 103, 203, ... with alternating signs, so both factors are orthogonal by construction.
std::vector<float> knownWeight(const std::vector<double>& s) {
    std::vector<float> w(8 * 784, 0.0f);
    for (int p = 0; p < 8; ++p)
        for (int i = 0; i < 8; ++i) {
            const double h = (__builtin_popcount(static_cast<unsigned>(i & p)) % 2 ? -1.0 : 1.0) / std::sqrt(8.0);
            w[static_cast<std::size_t>(i * 784 + 100 * p + 3)] = static_cast<float>(s[static_cast<std::size_t>(p)] * h * (p % 2 ? -1 : 1));
        }
    return w;
}

const std::vector<double> kKnownSingular{4, 3, 2, 1, 0.5, 0.25, 0.125, 0.0625};

} // namespace

class TestLowrank : public QObject {
    Q_OBJECT
private slots:
    void reconstructionErrorIsTheDiscardedEnergy_data() {
        QTest::addColumn<qlonglong>("rank");
        QTest::newRow("rank 1") << 1LL;
        QTest::newRow("rank 5") << 5LL;
        QTest::newRow("rank 20") << 20LL;
        QTest::newRow("rank 40") << 40LL;
        QTest::newRow("full rank 64") << 64LL;
    }
    void reconstructionErrorIsTheDiscardedEnergy() {
        QFETCH(qlonglong, rank);
        test::ContextFixture fx("mlp-784-64-10");
        const auto w = test::paramValues(*fx.model, "layers.1.weight"); // (64, 784)
        const auto bias = test::paramValues(*fx.model, "layers.1.bias");
        ParamValues v = svdParams(rank);
        v.set("min_saving", false); // full rank saves nothing but must still factor
        StrategyRegistry::instance().create("lowrank.svd", v)->apply(fx.ctx);

        const auto a = test::paramValues(*fx.model, "layers.1.layers.0.weight"); // (r, 784)
        const auto b = test::paramValues(*fx.model, "layers.1.layers.1.weight"); // (64, r)
        QCOMPARE(a.size(), std::size_t(rank * 784));
        QCOMPARE(b.size(), std::size_t(64 * rank));
        QVERIFY(!hasParam(*fx.model, "layers.1.layers.0.bias"));
        QCOMPARE(test::paramValues(*fx.model, "layers.1.layers.1.bias"), bias);
        double err = 0, norm = 0;
        for (int i = 0; i < 64; ++i)
            for (int j = 0; j < 784; ++j) {
                double sum = 0;
                for (int p = 0; p < rank; ++p) sum += double(b[std::size_t(i * rank + p)]) * a[std::size_t(p * 784 + j)];
                const double d = double(w[std::size_t(i * 784 + j)]) - sum;
                err += d * d;
                norm += double(w[std::size_t(i * 784 + j)]) * w[std::size_t(i * 784 + j)];
            }
        const auto svd = lowrank::thinSvd(w.data(), 64, 784);
        const double expected = lowrank::discardedNorm(svd.s, rank);
        QVERIFY2(std::fabs(std::sqrt(err) - expected) <= kReconstructionTol * std::sqrt(norm),
                 qPrintable(QString("error %1, discarded %2").arg(std::sqrt(err)).arg(expected)));
        QCOMPARE(fx.stat("layers.1.weight", "rank"), double(rank));
        QCOMPARE(fx.stat("layers.1.weight", "params_after"), double(rank * (784 + 64) + 64));
    }

    void fullRankReproducesTheOutputs() {
        test::ContextFixture fx("mlp-784-256-128-10");
        const auto before = test::firstLogits(*fx.model, fx.data.test);
        ParamValues v = svdParams(256); // layers.3 and layers.5 take their full rank, min(in, out)
        v.set("layers", std::string("all"));
        v.set("min_saving", false);
        StrategyRegistry::instance().create("lowrank.svd", v)->apply(fx.ctx);
        QVERIFY(hasParam(*fx.model, "layers.5.layers.1.bias")); // the classifier too
        const auto after = test::firstLogits(*fx.model, fx.data.test);
        QCOMPARE(after.size(), before.size());
        double worst = 0, scale = 0;
        for (std::size_t i = 0; i < before.size(); ++i) {
            worst = std::max(worst, double(std::fabs(after[i] - before[i])));
            scale = std::max(scale, double(std::fabs(before[i])));
        }
        QVERIFY2(worst <= kFullRankTol * scale, qPrintable(QString("max |diff| %1, scale %2").arg(worst).arg(scale)));
        // Full rank costs more than the layers it replaced: the speedup is below 1 and the note says so.
        QVERIFY(fx.summary.at("speedup_theoretical") < 1.0);
        QVERIFY(fx.summary.count("speedup_realized@b4"));
        QVERIFY(fx.summary.count("original.latency_p50_ms@b4") && fx.summary.count("factored.latency_p50_ms@b4"));
        QVERIFY(fx.notes.at("lowrank_ranks").find("layers.1 256x784 rank 256") != std::string::npos);
    }

    void energyRulePicksTheSmallestRank_data() {
        QTest::addColumn<double>("energy");
        QTest::addColumn<qlonglong>("rank");
        // s^2 = 16, 9, 4, 1, .25, ... of 30.332: the first ranks hold 0.527, 0.824, 0.956, 0.989, 0.997.
        QTest::newRow("0.5") << 0.5 << 1LL;
        QTest::newRow("0.527 (just above rank 1)") << 0.53 << 2LL;
        QTest::newRow("0.8") << 0.8 << 2LL;
        QTest::newRow("0.9") << 0.9 << 3LL;
        QTest::newRow("0.99") << 0.99 << 5LL;
        QTest::newRow("1") << 1.0 << 8LL;
    }
    void energyRulePicksTheSmallestRank() {
        QFETCH(double, energy);
        QFETCH(qlonglong, rank);
        QCOMPARE(lowrank::rankForEnergy(kKnownSingular, energy), std::int64_t(rank));

        // The same through the step, on a layer whose weight has these singular values.
        test::ContextFixture fx("mlp-784-64-10");
        fx.model = test::customModel(json::array({{{"type", "flatten"}},
                                          {{"type", "linear"}, {"in", 784}, {"out", 8}},
                                          {{"type", "relu"}},
                                          {{"type", "linear"}, {"in", 8}, {"out", 10}}}));
        const auto w = knownWeight(kKnownSingular);
        const auto svd = lowrank::thinSvd(w.data(), 8, 784);
        for (std::size_t p = 0; p < kKnownSingular.size(); ++p) QVERIFY(std::fabs(svd.s[p] - kKnownSingular[p]) < 1e-6);
        for (const auto& np : fx.model->namedParameters())
            if (np.name == "layers.1.weight") cpuBackend()->copyFromHost(np.param->value, w.data());
        StrategyRegistry::instance().create("lowrank.svd", svdParams(0, energy))->apply(fx.ctx);
        QCOMPARE(fx.stat("layers.1.weight", "rank"), double(rank));
        QVERIFY(std::fabs(fx.stat("layers.1.weight", "energy_kept") - lowrank::energyKept(kKnownSingular, rank)) < 1e-6);
        QVERIFY(fx.stat("layers.1.weight", "energy_kept") >= energy - 1e-6);
    }

    void layerWithoutSavingIsSkipped() {
        test::ContextFixture fx("mlp-784-64-10");
        const auto w = test::paramValues(*fx.model, "layers.1.weight");
        // 64 (784 + 64) > 784 * 64: full rank would add weights.
        StrategyRegistry::instance().create("lowrank.svd", svdParams(64))->apply(fx.ctx);
        QCOMPARE(test::paramValues(*fx.model, "layers.1.weight"), w);
        QVERIFY(fx.notes.at("lowrank_ranks").find("skipped") != std::string::npos);
        QCOMPARE(fx.summary.at("speedup_theoretical"), 1.0);
        QCOMPARE(fx.stat("layers.1.weight", "params_after"), fx.stat("layers.1.weight", "params_before"));
    }

    void flopsCountLinearAndConvLayers() {
        auto mlp = Model::fromArchitecture(zooArchitecture("mlp-784-256-128-10"));
        QCOMPARE(forwardFlopsPerSample(*mlp), 2.0 * (784 * 256 + 256 * 128 + 128 * 10));
        // conv 1->32 3x3 pad 1 on 28x28, conv 32->64 on 14x14, then 3136->128->10.
        auto cnn = Model::fromArchitecture(zooArchitecture("cnn-2conv"));
        QCOMPARE(forwardFlopsPerSample(*cnn),
                 2.0 * (32.0 * 28 * 28 * 9 + 64.0 * 14 * 14 * 32 * 9 + 3136 * 128 + 128 * 10));
    }

    void factoredModelSavesAndLoads() {
        test::ContextFixture fx("mlp-784-256-128-10");
        StrategyRegistry::instance().create("lowrank.svd", svdParams(0, 0.7))->apply(fx.ctx);
        std::unique_ptr<Model> loaded;
        QVERIFY(test::reloadsIdentically(*fx.model, fx.data.test, "lowrank-factored.safetensors", &loaded));
        QVERIFY(hasParam(*loaded, "layers.1.layers.0.weight"));
    }

    void validationRefusesWithPointers_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<QString>("params");
        QTest::addColumn<QString>("pointer");
        QTest::addColumn<QString>("message");
        QTest::newRow("rank above every layer") << "mlp-784-256-128-10" << R"({"rank": 300})" << "/steps/0/params/rank"
                                                << "rank 300 is larger than min(in, out) of every selected Linear layer "
                                                   "(layers.1: 256, layers.3: 128)";
        QTest::newRow("energy 0") << "mlp-784-256-128-10" << R"({"energy": 0})" << "/steps/0/params/energy"
                                  << "expected a number in (0, 1], got 0";
        QTest::newRow("unknown layers") << "mlp-784-256-128-10" << R"({"layers": "first"})" << "/steps/0/params/layers"
                                        << "";
        QTest::newRow("only the classifier") << "cnn-dws" << "{}" << "/steps/0/params/layers"
                                             << "lowrank.svd: the model has no Linear layer to factor (its only Linear "
                                                "is the last one, which layers \"all_but_last\" leaves alone)";
    }
    void validationRefusesWithPointers() {
        QFETCH(QString, model);
        QFETCH(QString, params);
        QFETCH(QString, pointer);
        QFETCH(QString, message);
        test::expectSingleIssue(test::experimentOnZoo(model.toStdString(), "lowrank.svd", json::parse(params.toStdString())),
                                pointer, message);
    }

    void rankSomeLayerTakesIsValid() {
        // 200 fits layers.1 (min 256) but not layers.3 (min 128), which is then kept at full rank and skipped.
        const json doc = test::experimentOnZoo("mlp-784-256-128-10", "lowrank.svd", {{"rank", 200}});
        QVERIFY(validateExperiment(doc).empty());
    }

    void rankCheckedAfterADistilledStudent() {
        // The rank is checked against the model the step receives: here the distilled student
        // mlp-784-32-10 (min(in, out) = 32 for its first layer), not the experiment's MLP.
        json doc = {{"name", "t"},
                    {"model", {{"zoo", "mlp-784-256-128-10"}}},
                    {"dataset", {{"name", "fashion-mnist"}}},
                    {"steps", {{{"strategy", "distill.logits"}, {"params", {{"student", "mlp-784-32-10"}}}},
                               {{"strategy", "lowrank.svd"}, {"params", {{"rank", 64}}}}}}};
        auto issues = validateExperiment(doc);
        QCOMPARE(issues.size(), std::size_t(1));
        QCOMPARE(QString::fromStdString(issues[0].pointer), QStringLiteral("/steps/1/params/rank"));
        doc["steps"][1]["params"]["rank"] = 16;
        QVERIFY(validateExperiment(doc).empty());
    }

    void modelWithoutLinearFails() {
        test::ContextFixture fx("mlp-784-64-10");
        fx.model = test::customModel(json::array({{{"type", "conv2d"}, {"in", 1}, {"out", 10}, {"kernel", 28}},
                                          {{"type", "flatten"}}}));
        try {
            StrategyRegistry::instance().create("lowrank.svd", svdParams(0))->apply(fx.ctx);
            QFAIL("expected a ConfigError");
        } catch (const ConfigError& e) {
            QCOMPARE(std::string(e.what()), std::string("lowrank.svd: the model has no Linear layer to factor"));
        }
    }

    void runWithoutLinearIsStoredAsFailed() {
        LATHE_REQUIRE_FASHION_MNIST();
        // A saved model has no signature at validation, so the step finds out at the run.
        const std::string dir = test::tempDir() + "/lowrank-run";
        std::filesystem::create_directories(dir);
        auto conv = test::customModel(json::array({{{"type", "conv2d"}, {"in", 1}, {"out", 10}, {"kernel", 28}},
                                           {{"type", "flatten"}}}));
        saveModel(*conv, dir + "/conv.safetensors");
        const auto [outcome, stored] = test::runStepOnSavedModel(dir, dir + "/conv.safetensors", "lowrank.svd");
        QCOMPARE(outcome.status, std::string("failed"));
        QCOMPARE(outcome.error, std::string("lowrank.svd: the model has no Linear layer to factor"));
        QCOMPARE(stored, outcome.error);
    }
};

LATHE_TEST_GUILESS_MAIN(TestLowrank)
#include "test_lowrank.moc"

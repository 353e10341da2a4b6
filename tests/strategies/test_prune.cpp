// The `prune` family beyond prune.magnitude: prune.nm keeps the N largest of every group of M inputs (a
// partial last group keeps min(N, size)) and its mask survives a finetune; prune.gradual follows the cubic
// schedule step by step (zeros = floor(s_t * count)), streams it and ends at the final sparsity; prune.sensitivity
// reports per-layer drops and leaves the weights bit for bit; validation refuses bad fields at their pointer.
#include "engine/backends/cpu/cpu_backend.h"
#include "engine/backends/sparse24.h"
#include "engine/core/errors.h"
#include "engine/experiment/spec.h"
#include "engine/nn/model_edit.h"
#include "engine/nn/sparse_execution.h"
#include "engine/strategies/prune/sparse_paths.h"
#include "engine/core/rng.h"
#include "tests/strategies/strategy_fixture.h"
#include "tests/support/test_common.h"

#include <QtTest>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

using namespace lathe;
using json = nlohmann::json;
using lathe::test::ContextFixture;
using lathe::test::experimentWith;

namespace {

struct Weight {
    std::string name;
    Shape shape;
    std::vector<float> values;
};

// Every prunable weight (rank >= 2), in parameter order.
std::vector<Weight> weightsOf(Model& m) {
    std::vector<Weight> out;
    for (const auto& np : m.namedParameters())
        if (np.param->value.rank() >= 2)
            out.push_back({np.name, np.param->value.shape(), cpuBackend()->downloadF32(np.param->value)});
    return out;
}

std::vector<std::vector<float>> allParameters(Model& m) {
    std::vector<std::vector<float>> out;
    for (const auto& np : m.namedParameters()) out.push_back(cpuBackend()->downloadF32(np.param->value));
    return out;
}

std::size_t zerosIn(const std::vector<float>& v) { return static_cast<std::size_t>(std::count(v.begin(), v.end(), 0.0f)); }

ParamValues defaultsOf(const char* strategy) { return defaultValues(*StrategyRegistry::instance().find(strategy)); }

void applyStep(ContextFixture& fx, const char* strategy, const ParamValues& v) {
    StrategyRegistry::instance().create(strategy, v)->apply(fx.ctx);
}

// A finetune that would move pruned weights if nothing held them (adam with weight decay).
void finetune(ContextFixture& fx) {
    ParamValues ft = defaultsOf("finetune");
    ft.set("epochs", std::int64_t(1));
    ft.set("batch_size", std::int64_t(50));
    ft.set("lr", 0.01);
    ft.set("weight_decay", 0.01);
    applyStep(fx, "finetune", ft);
}

// prune.gradual on the fixture's 300 samples in batches of 50: 6 steps per epoch.
ParamValues gradualParams(std::int64_t epochs, double initial, double final, double endFraction, std::int64_t frequency) {
    ParamValues v = defaultsOf("prune.gradual");
    v.set("epochs", epochs);
    v.set("batch_size", std::int64_t(50));
    v.set("initial_sparsity", initial);
    v.set("final_sparsity", final);
    v.set("end_fraction", endFraction);
    v.set("frequency", frequency);
    return v;
}


std::vector<std::string> linearPaths(Model& m) {
    std::vector<std::string> out;
    for (const LayerInfo& l : ModelEditor(m).list())
        if (l.type == "linear") out.push_back(l.path);
    return out;
}

std::vector<float> logitsOf(Model& m, std::int64_t batch) {
    Rng rng(7);
    std::vector<float> x(static_cast<std::size_t>(batch * 784));
    for (float& v : x) v = rng.uniform(-1.0f, 1.0f);
    Backend& be = *m.backend();
    return be.downloadF32(m.forward(be.upload(x, {batch, 1, 28, 28}), ForwardContext{}));
}

ParamValues magnitudeParams(double sparsity, const char* execution) {
    ParamValues v = defaultsOf("prune.magnitude");
    v.set("sparsity", sparsity);
    v.set("execution", std::string(execution));
    v.set("batch_sizes", std::vector<std::int64_t>{1, 16});
    return v;
}

ParamValues nmParams(const char* execution) {
    ParamValues v = defaultsOf("prune.nm");
    v.set("execution", std::string(execution));
    v.set("batch_sizes", std::vector<std::int64_t>{1, 16});
    return v;
}

void setAll(Model& m, SparseFormat format) {
    for (const auto& path : linearPaths(m)) setSparseExecution(m, path, format);
}

// The format a layer should run in from its recorded speedups at b1: the fastest sparse one when it
// beats dense by the margin, else dense.
SparseFormat expectedFormat(const ContextFixture& fx, const std::string& weight) {
    const double csr = fx.stat(weight, "csr_speedup@b1"), nm24 = fx.stat(weight, "nm24_speedup@b1");
    const bool has24 = !std::isnan(nm24);
    const double best = has24 && nm24 > csr ? nm24 : csr;
    if (best < prune::kSparseMinSpeedup) return SparseFormat::Dense;
    return has24 && nm24 > csr ? SparseFormat::Nm24 : SparseFormat::Csr;
}

} // namespace

class TestPrune : public QObject {
    Q_OBJECT

private slots:
    // The sparse paths sum each output's stored weights in another order than the dense GEMM: the logits
    // agree to f32 rounding of sums over <= 784 terms, 1e-5 normalized (the CPU ops' own tolerance). CSR
    // after unstructured pruning, 2:4 and CSR after 2:4 pruning.
    void sparseLinearGivesTheDenseLogits_data() {
        QTest::addColumn<bool>("nm");
        QTest::addColumn<int>("format");
        QTest::newRow("csr after prune.magnitude 95%") << false << int(SparseFormat::Csr);
        QTest::newRow("2:4 after prune.nm") << true << int(SparseFormat::Nm24);
        QTest::newRow("csr after prune.nm") << true << int(SparseFormat::Csr);
    }
    void sparseLinearGivesTheDenseLogits() {
        QFETCH(bool, nm);
        QFETCH(int, format);
        const auto f = static_cast<SparseFormat>(format);
        ContextFixture fx("mlp-784-256-128-10");
        if (nm) applyStep(fx, "prune.nm", nmParams("dense"));
        else applyStep(fx, "prune.magnitude", magnitudeParams(0.95, "dense"));
        const auto dense = logitsOf(*fx.model, 37);
        setAll(*fx.model, f);
        for (const auto& path : linearPaths(*fx.model)) QCOMPARE(sparseExecution(*fx.model, path), f);
        QVERIFY(lathe::test::normalizedError(logitsOf(*fx.model, 37), dense) <= 1e-5);
        // Moved to another backend the copy is rebuilt there.
        auto other = makeCpuBackend(1);
        fx.model->to(*other);
        QVERIFY(lathe::test::normalizedError(logitsOf(*fx.model, 37), dense) <= 1e-5);
        fx.model->to(*cpuBackend());
        // After training (the mask keeps the pattern) the copy follows the trained weights, not the pruned ones.
        finetune(fx);
        const auto sparseTuned = logitsOf(*fx.model, 37);
        setAll(*fx.model, SparseFormat::Dense);
        QVERIFY(lathe::test::normalizedError(sparseTuned, logitsOf(*fx.model, 37)) <= 1e-5);
        QVERIFY(lathe::test::normalizedError(sparseTuned, dense) > 1e-3);
        QVERIFY_THROWS_EXCEPTION(ConfigError, setSparseExecution(*fx.model, "layers.0", f)); // a flatten
    }

    void nm24RefusesAWeightThatIsNot24() {
        ContextFixture fx("mlp-784-256-128-10");
        // 50% unstructured zeros leave many groups of 4 with 3+ nonzeros.
        applyStep(fx, "prune.magnitude", magnitudeParams(0.5, "dense"));
        const std::string msg = lathe::test::errorOf<BackendError>(
            [&] { setSparseExecution(*fx.model, "layers.1", SparseFormat::Nm24); });
        QVERIFY2(msg.find("row ") != std::string::npos && msg.find("nonzeros; 2:4 allows 2") != std::string::npos,
                 msg.c_str());
        QCOMPARE(sparseExecution(*fx.model, "layers.1"), SparseFormat::Dense); // the refused layer stays dense
    }

    // prune.nm with execution auto: every Linear is timed dense, CSR and 2:4; the recorded choice follows
    // the recorded figures, holds in the model, and the switched model gives the dense logits.
    void nmAutoChoiceFollowsItsTimings() {
        ContextFixture fx("mlp-784-256-128-10");
        applyStep(fx, "prune.nm", nmParams("auto"));
        const std::string note = fx.notes.at("sparse_paths");
        double bytesSaved = 0;
        for (const auto& path : linearPaths(*fx.model)) {
            const std::string weight = path + ".weight";
            for (const char* key : {"csr_speedup@b1", "csr_speedup@b16", "nm24_speedup@b1", "nm24_speedup@b16"}) {
                const double speedup = fx.stat(weight, key);
                QVERIFY2(std::isfinite(speedup) && speedup > 0, key);
            }
            const SparseFormat expected = expectedFormat(fx, weight);
            QCOMPARE(sparseExecution(*fx.model, path), expected);
            const std::string entry = weight + ": " + sparseFormatName(expected);
            QVERIFY2(note.find(entry) != std::string::npos, note.c_str());
            const Shape shape = ModelEditor(*fx.model).layer(path).parameters()[0]->value.shape(); // (out, in)
            QCOMPARE(fx.stat(weight, "nm24_bytes"), double(sparse24Bytes(shape[0], shape[1])));
            if (expected == SparseFormat::Nm24) bytesSaved += 4.0 * double(shape[0] * shape[1]) - fx.stat(weight, "nm24_bytes");
            if (expected == SparseFormat::Csr) bytesSaved += 4.0 * double(shape[0] * shape[1]) - fx.stat(weight, "csr_bytes");
        }
        QCOMPARE(fx.summary.at("model_bytes_sparse"), double(fx.model->parameterBytes()) - bytesSaved);
        QVERIFY(std::fabs(fx.summary.at("speedup_theoretical") - 2.0) < 0.01); // half of every Linear's weights
        QVERIFY(fx.summary.at("speedup_realized") > 0);
        const auto chosen = logitsOf(*fx.model, 37);
        setAll(*fx.model, SparseFormat::Dense);
        QVERIFY(lathe::test::normalizedError(chosen, logitsOf(*fx.model, 37)) <= 1e-5);
    }

    // Conv2d weights pruned 2:4 stay dense, and the note says so; the Linear layers are still timed.
    void nmOnACnnKeepsConvolutionsDense() {
        ContextFixture fx("cnn-2conv");
        applyStep(fx, "prune.nm", nmParams("auto"));
        const std::string note = fx.notes.at("sparse_paths");
        QVERIFY2(note.find("2 Conv2d weight(s) pruned and run dense") != std::string::npos, note.c_str());
        for (const auto& path : linearPaths(*fx.model))
            QVERIFY(std::isfinite(fx.stat(path + ".weight", "nm24_speedup@b1")));
    }

    // Which path wins is the machine's business: the test checks that the recorded choice follows the
    // recorded timings, and that the choice holds in the model.
    void autoChoiceFollowsItsTimings() {
        ContextFixture fx("mlp-784-256-128-10");
        applyStep(fx, "prune.magnitude", magnitudeParams(0.95, "auto"));
        const auto paths = linearPaths(*fx.model);
        QCOMPARE(paths.size(), std::size_t(3));
        const std::string note = fx.notes.at("sparse_paths");
        for (const auto& path : paths) {
            const double speedup = fx.stat(path + ".weight", "csr_speedup@b1");
            QVERIFY(std::isfinite(speedup) && speedup > 0);
            QVERIFY(std::isfinite(fx.stat(path + ".weight", "csr_speedup@b16")));
            // 2:4 is timed only where the unstructured zeros happen to leave every group of 4 with <= 2 nonzeros.
            const Tensor& w = ModelEditor(*fx.model).layer(path).parameters()[0]->value; // (out, in)
            const auto host = cpuBackend()->downloadF32(w);
            QCOMPARE(!std::isnan(fx.stat(path + ".weight", "nm24_speedup@b1")),
                     isSparse24(host.data(), w.dim(0), w.dim(1)));
            const SparseFormat expected = expectedFormat(fx, path + ".weight");
            QCOMPARE(sparseExecution(*fx.model, path), expected);
            const std::string entry = path + ".weight: " + sparseFormatName(expected);
            QVERIFY2(note.find(entry) != std::string::npos, note.c_str());
        }
        QVERIFY(fx.summary.at("speedup_theoretical") > 10.0); // 95 % of every Linear's weights are zero
        QVERIFY(fx.summary.at("speedup_realized") > 0);
    }

    void denseExecutionChangesNothing() {
        ContextFixture fx("mlp-784-256-128-10");
        applyStep(fx, "prune.magnitude", magnitudeParams(0.9, "dense"));
        for (const auto& path : linearPaths(*fx.model)) QCOMPARE(sparseExecution(*fx.model, path), SparseFormat::Dense);
        QCOMPARE(fx.notes.at("sparse_paths"), std::string("dense (execution = dense)"));
        QVERIFY(fx.summary.at("speedup_theoretical") > 5.0);
        QVERIFY(!fx.summary.count("speedup_realized"));
        for (const auto& [layer, key, value] : fx.stats) QVERIFY(key.rfind("csr_speedup", 0) != 0);
    }

    void autoHonoursCancel() {
        ContextFixture fx("mlp-784-256-128-10");
        std::atomic<bool> cancel{true};
        fx.ctx.cancel = &cancel;
        QVERIFY_THROWS_EXCEPTION(CancelledError, applyStep(fx, "prune.magnitude", magnitudeParams(0.9, "auto")));
    }

    void nmKeepsTheLargestOfEachGroup_data() {
        QTest::addColumn<QString>("zoo");
        QTest::addColumn<int>("n");
        QTest::addColumn<int>("m");
        QTest::addColumn<bool>("allButLast");
        QTest::newRow("mlp 2:4") << "mlp-784-256-128-10" << 2 << 4 << false;
        QTest::newRow("mlp 1:4") << "mlp-784-256-128-10" << 1 << 4 << false;
        QTest::newRow("mlp 2:8 all but last") << "mlp-784-256-128-10" << 2 << 8 << true;
        // 784, 256 and 128 inputs are not multiples of 5: partial last groups of 4, 1 and 3.
        QTest::newRow("mlp 3:5 partial groups") << "mlp-784-256-128-10" << 3 << 5 << false;
        // Conv2d rows are C*KH*KW: 9 inputs for the first convolution (groups of 4, 4 and 1), 288 for the second.
        QTest::newRow("cnn 2:4") << "cnn-2conv" << 2 << 4 << false;
    }

    void nmKeepsTheLargestOfEachGroup() {
        QFETCH(QString, zoo);
        QFETCH(int, n);
        QFETCH(int, m);
        QFETCH(bool, allButLast);
        ContextFixture fx(zoo.toStdString());
        const auto before = weightsOf(*fx.model);
        ParamValues v = nmParams("dense");
        v.set("n", std::int64_t(n));
        v.set("m", std::int64_t(m));
        v.set("layers", std::string(allButLast ? "all_but_last" : "all"));
        applyStep(fx, "prune.nm", v);
        const auto after = weightsOf(*fx.model);
        const std::size_t pruned = allButLast ? after.size() - 1 : after.size();
        double zeros = 0, total = 0;
        for (std::size_t l = 0; l < after.size(); ++l) {
            if (l >= pruned) {
                QCOMPARE(after[l].values, before[l].values); // the classifier left alone
                QVERIFY(std::isnan(fx.stat(after[l].name, "sparsity")));
                continue;
            }
            const std::size_t rowLength = after[l].values.size() / static_cast<std::size_t>(after[l].shape[0]);
            std::size_t layerZeros = 0;
            for (std::size_t row = 0; row < after[l].values.size(); row += rowLength)
                for (std::size_t start = 0; start < rowLength; start += static_cast<std::size_t>(m)) {
                    const std::size_t size = std::min<std::size_t>(static_cast<std::size_t>(m), rowLength - start);
                    float minKept = INFINITY, maxRemoved = 0;
                    std::size_t kept = 0;
                    for (std::size_t i = row + start; i < row + start + size; ++i) {
                        if (after[l].values[i] != 0.0f) {
                            ++kept;
                            QCOMPARE(after[l].values[i], before[l].values[i]);
                            minKept = std::min(minKept, std::fabs(before[l].values[i]));
                        } else {
                            maxRemoved = std::max(maxRemoved, std::fabs(before[l].values[i]));
                        }
                    }
                    // Fresh weights are never exactly zero, so exactly min(N, size) survive.
                    QCOMPARE(kept, std::min<std::size_t>(static_cast<std::size_t>(n), size));
                    QVERIFY(maxRemoved <= minKept);
                }
            layerZeros = zerosIn(after[l].values);
            QCOMPARE(fx.stat(after[l].name, "sparsity"), double(layerZeros) / double(after[l].values.size()));
            zeros += double(layerZeros);
            total += double(after[l].values.size());
        }
        QCOMPARE(fx.summary.at("sparsity"), zeros / total);
        QVERIFY(fx.notes.at("sparse_kernels").find("dense") != std::string::npos);
        QCOMPARE(fx.hooks.size(), std::size_t(1));
    }

    void nmMaskSurvivesFinetune() {
        ContextFixture fx("mlp-784-256-128-10");
        applyStep(fx, "prune.nm", nmParams("dense"));
        const auto pruned = weightsOf(*fx.model);
        finetune(fx);
        const auto tuned = weightsOf(*fx.model);
        std::size_t keptMoved = 0;
        for (std::size_t l = 0; l < tuned.size(); ++l)
            for (std::size_t i = 0; i < tuned[l].values.size(); ++i) {
                if (pruned[l].values[i] == 0.0f) QCOMPARE(tuned[l].values[i], 0.0f);
                else keptMoved += tuned[l].values[i] != pruned[l].values[i] ? 1 : 0;
            }
        QVERIFY(keptMoved > 0); // the finetune did train
    }

    void nmRefusesMoreKeptThanTheGroupAtRunTime() {
        ContextFixture fx("mlp-784-256-128-10");
        ParamValues v = defaultsOf("prune.nm");
        v.set("n", std::int64_t(5));
        QVERIFY_THROWS_EXCEPTION(ConfigError, applyStep(fx, "prune.nm", v));
        QCOMPARE(zerosIn(weightsOf(*fx.model)[0].values), std::size_t(0));
    }

    void gradualFollowsTheCubicSchedule_data() {
        QTest::addColumn<bool>("global");
        QTest::newRow("global") << true;
        QTest::newRow("per layer") << false;
    }

    void gradualFollowsTheCubicSchedule() {
        // 300 samples, batch 50: 6 steps per epoch, 12 in the phase. begin_step 1, end_fraction 0.75: final
        // sparsity at step 9 (n dt = 8), pruning every 2 steps: steps 1, 3, 5, 7, 9. The run's counter
        // stands at 100, so the series steps are 101...109.
        QFETCH(bool, global);
        ContextFixture fx("mlp-784-256-128-10");
        fx.trainStep = 100;
        ParamValues v = gradualParams(2, 0.0, 0.9, 0.75, 2);
        v.set("lr", 0.01);
        v.set("weight_decay", 0.01);
        v.set("begin_step", std::int64_t(1));
        v.set("scope", std::string(global ? "global" : "layer"));
        applyStep(fx, "prune.gradual", v);
        QCOMPARE(fx.trainStep, std::int64_t(112));

        // s_t = 0.9 + (0 - 0.9) (1 - (t - 1) / 8)^3, by hand: 0.9 (1 - 0.75^3), 0.9 (1 - 0.5^3), 0.9 (1 - 0.25^3).
        const std::vector<std::pair<std::int64_t, double>> schedule{
            {101, 0.0}, {103, 0.5203125}, {105, 0.7875}, {107, 0.8859375}, {109, 0.9}};
        const auto sizes = [&] {
            std::vector<double> s;
            for (const auto& w : weightsOf(*fx.model)) s.push_back(double(w.values.size()));
            return s;
        }();
        double total = 0;
        for (double s : sizes) total += s;
        // Zeros = floor(s_t * count), over all weights (global) or per weight (layer).
        auto expectedZeros = [&](double s) {
            if (global) return std::floor(s * total);
            double z = 0;
            for (double n : sizes) z += std::floor(s * n);
            return z;
        };
        const auto series = fx.sink.series("sparsity");
        QCOMPARE(series.size(), schedule.size());
        for (std::size_t i = 0; i < series.size(); ++i) {
            QCOMPARE(series[i].first, schedule[i].first);
            QCOMPARE(series[i].second * total, expectedZeros(schedule[i].second));
            if (i > 0) QVERIFY(series[i].second > series[i - 1].second);
        }

        // The end: exactly the final sparsity, kept through the 3 steps after step 9.
        const auto after = weightsOf(*fx.model);
        double zeros = 0;
        for (std::size_t l = 0; l < after.size(); ++l) {
            zeros += double(zerosIn(after[l].values));
            if (!global) QCOMPARE(double(zerosIn(after[l].values)), std::floor(0.9 * sizes[l]));
        }
        QCOMPARE(zeros, expectedZeros(0.9));
        QCOMPARE(fx.summary.at("sparsity"), zeros / total);
        QVERIFY(!fx.sink.series("loss").empty()); // it trained, on the run's step counter
        QCOMPARE(fx.sink.series("loss").back().first, std::int64_t(112));

        // The mask stays for later phases.
        QCOMPARE(fx.hooks.size(), std::size_t(1));
        finetune(fx);
        const auto tuned = weightsOf(*fx.model);
        for (std::size_t l = 0; l < tuned.size(); ++l)
            for (std::size_t i = 0; i < tuned[l].values.size(); ++i)
                if (after[l].values[i] == 0.0f) QCOMPARE(tuned[l].values[i], 0.0f);
    }

    void gradualFromTheFirstStep() {
        // begin_step 0 with an initial sparsity: pruned to s_i before training (series step = the run's
        // counter before the phase), then to s_f by step round(0.5 * 6) = 3 of a 6-step phase.
        ContextFixture fx("mlp-784-256-128-10");
        const ParamValues v = gradualParams(1, 0.2, 0.6, 0.5, 2);
        applyStep(fx, "prune.gradual", v);
        const auto series = fx.sink.series("sparsity");
        QCOMPARE(series.size(), std::size_t(3)); // steps 0, 2 and 3 (the end)
        QCOMPARE(series[0].first, std::int64_t(0));
        QCOMPARE(series[2].first, std::int64_t(3));
        double total = 0, zeros = 0;
        for (const auto& w : weightsOf(*fx.model)) {
            total += double(w.values.size());
            zeros += double(zerosIn(w.values));
        }
        QCOMPARE(series[0].second * total, std::floor(0.2 * total));
        // s_2 = 0.6 + (0.2 - 0.6) (1 - 2/3)^3 = 0.6 - 0.4 / 27
        QCOMPARE(series[1].second * total, std::floor((0.6 - 0.4 / 27.0) * total));
        QCOMPARE(zeros, std::floor(0.6 * total));
    }

    void sensitivityLeavesTheModelAndReportsDrops() {
        ContextFixture fx("mlp-784-256-128-10");
        finetune(fx); // some accuracy to lose
        fx.hooks.clear();
        const auto before = allParameters(*fx.model);
        const double baseline = evaluate(*fx.model, *cpuBackend(), fx.data.test).accuracy;
        ParamValues v = defaultsOf("prune.sensitivity");
        v.set("ratios", std::vector<std::int64_t>{50, 90});
        applyStep(fx, "prune.sensitivity", v);

        const auto after = allParameters(*fx.model);
        QCOMPARE(after.size(), before.size());
        for (std::size_t i = 0; i < after.size(); ++i)
            QVERIFY(std::memcmp(after[i].data(), before[i].data(), after[i].size() * sizeof(float)) == 0);
        QCOMPARE(fx.summary.at("accuracy"), baseline);
        QVERIFY(fx.hooks.empty());

        const auto weights = weightsOf(*fx.model);
        double worst = -1;
        for (const auto& w : weights) {
            const double d50 = fx.stat(w.name, "accuracy_drop@50"), d90 = fx.stat(w.name, "accuracy_drop@90");
            QVERIFY(std::isfinite(d50) && std::isfinite(d90));
            QCOMPARE(fx.stat(w.name, "sensitivity"), (d50 + d90) / 2);
            worst = std::max(worst, (d50 + d90) / 2);
        }
        QCOMPARE(fx.summary.at("most_sensitive_layer_drop"), worst);

        // One figure checked by hand: the first layer alone at 90%.
        ContextFixture copy("mlp-784-256-128-10");
        auto params = copy.model->namedParameters();
        for (std::size_t i = 0; i < params.size(); ++i) cpuBackend()->copyFromHost(params[i].param->value, before[i].data());
        std::vector<float> first = weights[0].values;
        std::vector<float> magnitudes(first.size());
        std::transform(first.begin(), first.end(), magnitudes.begin(), [](float x) { return std::fabs(x); });
        std::vector<std::size_t> order(first.size());
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
        const auto k = static_cast<std::size_t>(std::floor(0.9 * double(first.size())));
        std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return magnitudes[a] < magnitudes[b]; });
        for (std::size_t i = 0; i < k; ++i) first[order[i]] = 0.0f;
        cpuBackend()->copyFromHost(params[0].param->value, first.data());
        QCOMPARE(params[0].name, weights[0].name);
        const double pruned = evaluate(*copy.model, *cpuBackend(), copy.data.test).accuracy;
        QCOMPARE(fx.stat(weights[0].name, "accuracy_drop@90"), baseline - pruned);
    }

    void validationNamesTheField_data() {
        QTest::addColumn<QString>("step");
        QTest::addColumn<QString>("pointer");
        QTest::addColumn<QString>("message");
        QTest::newRow("N > M") << R"({"strategy": "prune.nm", "params": {"n": 5, "m": 4}})"
                               << "/steps/0/params/n" << "larger than M";
        QTest::newRow("N < 1") << R"({"strategy": "prune.nm", "params": {"n": 0}})" << "/steps/0/params/n" << "expected";
        QTest::newRow("M < 2") << R"({"strategy": "prune.nm", "params": {"n": 1, "m": 1}})" << "/steps/0/params/m"
                               << "expected";
        QTest::newRow("final sparsity 1") << R"({"strategy": "prune.gradual", "params": {"final_sparsity": 1}})"
                                          << "/steps/0/params/final_sparsity" << "[0, 1)";
        QTest::newRow("initial above final")
            << R"({"strategy": "prune.gradual", "params": {"initial_sparsity": 0.5, "final_sparsity": 0.3}})"
            << "/steps/0/params/initial_sparsity" << "only prunes more";
        QTest::newRow("no ratios") << R"({"strategy": "prune.sensitivity", "params": {"ratios": []}})"
                                   << "/steps/0/params/ratios" << "non-empty";
    }

    void validationNamesTheField() {
        QFETCH(QString, step);
        QFETCH(QString, pointer);
        QFETCH(QString, message);
        const auto issues = validateExperiment(experimentWith(json::parse(step.toStdString())));
        QString all;
        bool found = false;
        for (const auto& i : issues) {
            all += QString::fromStdString(i.pointer + ": " + i.message + "\n");
            found = found || (i.pointer.rfind(pointer.toStdString(), 0) == 0 &&
                              i.message.find(message.toStdString()) != std::string::npos);
        }
        QVERIFY2(found, qPrintable(all));
        // The defaults themselves are valid.
        QVERIFY(validateExperiment(experimentWith({{"strategy", "prune.nm"}})).empty());
        QVERIFY(validateExperiment(experimentWith({{"strategy", "prune.gradual"}})).empty());
        QVERIFY(validateExperiment(experimentWith({{"strategy", "prune.sensitivity"}})).empty());
    }
};

QTEST_GUILESS_MAIN(TestPrune)
#include "test_prune.moc"

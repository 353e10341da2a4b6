// prune.structured and the editor's shrinking: the ranking removes the rows and filters of smallest norm (or of
// smallest batch-norm |gamma|), the kept units' outputs are unchanged by shrinking (linear->linear, conv->conv,
// conv->pool->flatten->linear, with a batchnorm2d between), the
// shrunk model fine-tunes, saves and loads with its new shapes, and validation and the run refuse what cannot be
// pruned.
#include "engine/core/errors.h"
#include "engine/experiment/runner.h"
#include "engine/experiment/spec.h"
#include "engine/measure/latency.h"
#include "engine/nn/model_edit.h"
#include "engine/strategies/prune/pruning.h"
#include "engine/store/run_store.h"
#include "tests/strategies/strategy_fixture.h"
#include "tests/support/test_support.h"

#include <QtTest>

#include <cmath>
#include <filesystem>

using namespace lathe;
using json = nlohmann::json;

namespace {

// Shrinking copies weights and removes whole terms from the next layer's sums: a kept unit's value is the same
// sum with the removed terms left out, so it differs from the original model's only by float reassociation in
// the GEMM (a few ulps of sums over <= 784 terms), well under 1e-5 relative to the largest magnitude.
constexpr double kKeptTol = 1e-5;

// The first `n` layers of `m` applied to a fixed random batch of 4 samples (1, 28, 28).
std::vector<float> prefixOutput(Model& m, std::size_t layers, const Tensor& x) {
    Backend& be = *cpuBackend();
    Tensor h = x;
    ModelEditor editor(m);
    for (std::size_t i = 0; i < layers; ++i) h = editor.layer("layers." + std::to_string(i)).forward(be, h, ForwardContext{});
    return be.downloadF32(h);
}

Tensor randomBatch() {
    Rng rng(3);
    std::vector<float> v(4 * 784);
    for (auto& f : v) f = static_cast<float>(rng.uniform() * 2 - 1);
    return cpuBackend()->upload(v, {4, 1, 28, 28});
}

double maxAbs(const std::vector<float>& v) {
    double m = 0;
    for (float f : v) m = std::max(m, double(std::fabs(f)));
    return m;
}

void setWeight(Model& m, const std::string& name, const std::vector<float>& values) {
    for (const auto& np : m.namedParameters())
        if (np.name == name) {
            QCOMPARE(std::size_t(np.param->value.numel()), values.size());
            cpuBackend()->copyFromHost(np.param->value, values.data());
            return;
        }
    QFAIL(("no parameter " + name).c_str());
}

// Random scales, shifts and running statistics for every batchnorm2d of m (they start as ones and zeros), so a
// shrink that kept another channel's entries would show.
std::vector<float> bufferValues(Model& m, const std::string& name) {
    for (const auto& nb : m.namedBuffers())
        if (nb.name == name) return cpuBackend()->downloadF32(nb.buffer->value);
    return {};
}

ParamValues structuredParams(double ratio, std::int64_t minChannels = 1) {
    ParamValues v = test::quickMeasuringDefaults("prune.structured");
    v.set("ratio", ratio);
    v.set("min_channels", minChannels);
    return v;
}



const json kConvPoolLinear = json::array({{{"type", "conv2d"}, {"in", 1}, {"out", 6}, {"kernel", 3}, {"padding", 1}},
                                          {{"type", "relu"}},
                                          {{"type", "maxpool2d"}, {"kernel", 2}},
                                          {{"type", "flatten"}},
                                          {{"type", "linear"}, {"in", 6 * 196}, {"out", 10}}});

} // namespace

class TestPruneStructured : public QObject {
    Q_OBJECT
private slots:
    void rankingRemovesTheSmallestNorms() {
        // Rows (3 inputs each) with L1 norms 6, 1, 9, 3 and L2 norms 6, 1, 5.2, 3.2: L1 removes rows 1 and 3, L2
        // rows 1 and 3 too, but with ratio 0.75 L1 keeps row 2 (9) and L2 keeps row 0 (6).
        const std::vector<float> w = {2, -2, 2, 1, 0, 0, -3, 3, -3, 0, 0, 3.2f};
        const auto l1 = prune::rowNorms(w, 4, false), l2 = prune::rowNorms(w, 4, true);
        QCOMPARE(prune::keptUnits(l1, 0.5, 1), (std::vector<std::int64_t>{0, 2}));
        QCOMPARE(prune::keptUnits(l2, 0.5, 1), (std::vector<std::int64_t>{0, 2}));
        QCOMPARE(prune::keptUnits(l1, 0.75, 1), (std::vector<std::int64_t>{2}));
        QCOMPARE(prune::keptUnits(l2, 0.75, 1), (std::vector<std::int64_t>{2}));
        // floor(0.6 * 4) = 2 removed; min_channels 3 keeps one more; min_channels above the count keeps all.
        QCOMPARE(prune::keptUnits(l1, 0.6, 3), (std::vector<std::int64_t>{0, 2, 3}));
        QCOMPARE(prune::keptUnits(l1, 0.6, 9), (std::vector<std::int64_t>{0, 1, 2, 3}));
        // Equal norms: the earlier unit is kept.
        QCOMPARE(prune::keptUnits({1, 1, 1, 1}, 0.5, 1), (std::vector<std::int64_t>{0, 1}));
    }

    void stepPicksTheLowestNormFilters() {
        test::ContextFixture fx("mlp-784-64-10");
        fx.model = test::customModel(kConvPoolLinear);
        // Filter f has every weight f - 2.5 scaled: |.| sums 2.5, 1.5, 0.5, 0.5, 1.5, 2.5 (times 9): ratio 0.5
        // removes filters 2, 3 and then 4 (of equal norms the earlier, 1, is kept).
        std::vector<float> w(6 * 9);
        for (int f = 0; f < 6; ++f)
            for (int i = 0; i < 9; ++i) w[static_cast<std::size_t>(f * 9 + i)] = static_cast<float>(f - 2.5) * (i % 2 ? 1 : -1);
        setWeight(*fx.model, "layers.0.weight", w);
        ParamValues v = structuredParams(0.5);
        StrategyRegistry::instance().create("prune.structured", v)->apply(fx.ctx);
        QCOMPARE(test::paramValues(*fx.model, "layers.0.weight").size(), std::size_t(3 * 9));
        const auto kept = test::paramValues(*fx.model, "layers.0.weight");
        QCOMPARE(kept[0], w[0]);
        QCOMPARE(kept[9], w[1 * 9]);
        QCOMPARE(kept[18], w[5 * 9]);
        QCOMPARE(fx.stat("layers.0.weight", "channels_before"), 6.0);
        QCOMPARE(fx.stat("layers.0.weight", "channels_after"), 3.0);
        QVERIFY(fx.summary.at("speedup_theoretical") > 1.0);
        QVERIFY(fx.summary.count("speedup_realized@b4"));
        QVERIFY(fx.summary.at("params") < fx.summary.at("original.params"));
        QCOMPARE(QString::fromStdString(fx.notes.at("structured_kept")), QStringLiteral("layers.0 6->3"));
    }

    void keptUnitsKeepTheirOutputs_data() {
        QTest::addColumn<QString>("layers");
        QTest::addColumn<QString>("path");
        QTest::addColumn<int>("upTo"); // layers applied to compare the kept units (before the consumer)
        QTest::newRow("linear->linear")
            << R"([{"type":"flatten"},{"type":"linear","in":784,"out":20},{"type":"relu"},{"type":"linear","in":20,"out":10}])"
            << "layers.1" << 3;
        QTest::newRow("conv->conv")
            << R"([{"type":"conv2d","in":1,"out":8,"kernel":3,"padding":1},{"type":"gelu"},
                  {"type":"conv2d","in":8,"out":4,"kernel":3,"stride":2},{"type":"flatten"},
                  {"type":"linear","in":676,"out":10}])"
            << "layers.0" << 2;
        QTest::newRow("conv->pool->flatten->linear") << QString::fromStdString(kConvPoolLinear.dump()) << "layers.0" << 3;
        // A BatchNorm2d between the conv and its consumer shrinks with it (evaluation mode: running statistics).
        QTest::newRow("conv->bn->pool->flatten->linear")
            << R"([{"type":"conv2d","in":1,"out":8,"kernel":3,"padding":1,"bias":false},{"type":"batchnorm2d","features":8},
                  {"type":"relu"},{"type":"maxpool2d","kernel":2},{"type":"flatten"},{"type":"linear","in":1568,"out":10}])"
            << "layers.0" << 4;
        QTest::newRow("conv->bn->conv")
            << R"([{"type":"conv2d","in":1,"out":8,"kernel":3,"padding":1},{"type":"gelu"},
                  {"type":"batchnorm2d","features":8,"eps":0.001},
                  {"type":"conv2d","in":8,"out":4,"kernel":3,"stride":2},{"type":"flatten"},
                  {"type":"linear","in":676,"out":10}])"
            << "layers.0" << 3;
    }
    void keptUnitsKeepTheirOutputs() {
        QFETCH(QString, layers);
        QFETCH(QString, path);
        QFETCH(int, upTo);
        auto m = test::customModel(json::parse(layers.toStdString()));
        test::randomizeNorms(*m);
        const Tensor x = randomBatch();
        const auto before = prefixOutput(*m, static_cast<std::size_t>(upTo), x);
        ModelEditor editor(*m);
        const std::int64_t n = editor.layer(path.toStdString()).config().at("out").get<std::int64_t>();
        std::vector<std::int64_t> keep;
        for (std::int64_t i = 0; i < n; i += 2) keep.push_back(i + (i / 2) % 2); // 0, 3, 4, 7, ...
        const bool linear = editor.layer(path.toStdString()).type() == "linear";
        const std::string consumer = linear ? editor.shrinkLinearOutputs(path.toStdString(), keep)
                                            : editor.shrinkConvOutputs(path.toStdString(), keep);
        QVERIFY(!consumer.empty());
        const auto after = prefixOutput(*m, static_cast<std::size_t>(upTo), x);
        // (4, n, ...) before, (4, k, ...) after: compare the kept channels one by one.
        const std::size_t per = before.size() / 4 / static_cast<std::size_t>(n);
        QCOMPARE(after.size(), 4 * keep.size() * per);
        const double scale = std::max(maxAbs(before), 1e-6);
        for (std::size_t s = 0; s < 4; ++s)
            for (std::size_t c = 0; c < keep.size(); ++c)
                for (std::size_t e = 0; e < per; ++e) {
                    const float a = before[(s * std::size_t(n) + std::size_t(keep[c])) * per + e];
                    const float b = after[(s * keep.size() + c) * per + e];
                    QVERIFY2(std::fabs(a - b) <= kKeptTol * scale, qPrintable(QString("sample %1 unit %2").arg(s).arg(c)));
                }
    }

    void bnGammaKeepsTheLargestScales() {
        // Network slimming: the filters whose batch norm has the largest |gamma| stay, whatever the filters' norms.
        test::ContextFixture fx("cnn-bn");
        fx.model = test::customModel(json::array({{{"type", "conv2d"}, {"in", 1}, {"out", 6}, {"kernel", 3}, {"padding", 1}, {"bias", false}},
                                          {{"type", "batchnorm2d"}, {"features", 6}},
                                          {{"type", "relu"}},
                                          {{"type", "maxpool2d"}, {"kernel", 2}},
                                          {{"type", "flatten"}},
                                          {{"type", "linear"}, {"in", 6 * 196}, {"out", 10}}}));
        test::randomizeNorms(*fx.model);
        // |gamma| 0.5, 3, 0.1, 2, 0.05, 1: ratio 0.5 removes filters 4, 2 and 0.
        setWeight(*fx.model, "layers.1.weight", {0.5f, -3.0f, 0.1f, 2.0f, -0.05f, 1.0f});
        const auto w = test::paramValues(*fx.model, "layers.0.weight");
        const auto beta = test::paramValues(*fx.model, "layers.1.bias");
        const auto var = bufferValues(*fx.model, "layers.1.running_var");
        ParamValues v = structuredParams(0.5);
        v.set("criterion", std::string("bn_gamma"));
        v.set("layers", std::string("conv"));
        StrategyRegistry::instance().create("prune.structured", v)->apply(fx.ctx);
        QCOMPARE(test::paramValues(*fx.model, "layers.1.weight"), (std::vector<float>{-3.0f, 2.0f, 1.0f}));
        QCOMPARE(test::paramValues(*fx.model, "layers.1.bias"), (std::vector<float>{beta[1], beta[3], beta[5]}));
        QCOMPARE(bufferValues(*fx.model, "layers.1.running_var"), (std::vector<float>{var[1], var[3], var[5]}));
        const auto kept = test::paramValues(*fx.model, "layers.0.weight");
        QCOMPARE(kept.size(), std::size_t(3 * 9));
        QCOMPARE(std::vector<float>(kept.begin(), kept.begin() + 9), std::vector<float>(w.begin() + 9, w.begin() + 18));
        QCOMPARE(ModelEditor(*fx.model).layer("layers.5").config().at("in").get<std::int64_t>(), std::int64_t(3 * 196));
    }

    void bnGammaWithoutBatchNormIsRefused() {
        // A model known at validation: every conv without a batch norm after it is named in one issue.
        test::expectSingleIssue(test::experimentOnZoo("cnn-2conv", "prune.structured",
                                                      {{"criterion", "bn_gamma"}, {"layers", "conv"}}),
                                "/steps/0/params/criterion",
                                "prune.structured: criterion bn_gamma: layers.0 (conv2d) is not directly followed by a "
                                "batchnorm2d, whose |weight| bn_gamma ranks its filters by (use criterion l1 or l2); "
                                "layers.3 (conv2d) is not directly followed by a batchnorm2d, whose |weight| bn_gamma "
                                "ranks its filters by (use criterion l1 or l2)");
        test::expectSingleIssue(test::experimentOnZoo("cnn-bn", "prune.structured", {{"criterion", "bn_gamma"}}),
                                "/steps/0/params/criterion",
                                "prune.structured: criterion bn_gamma: layers.9 is a linear layer; bn_gamma ranks "
                                "Conv2d filters by the batchnorm2d after them (use layers \"conv\", or criterion l1 or l2)");
        QVERIFY(validateExperiment(test::experimentOnZoo("cnn-bn", "prune.structured",
                                                         {{"criterion", "bn_gamma"}, {"layers", "conv"}}))
                    .empty());
        // At the run (a model validation could not see): a ConfigError naming the layer, nothing changed.
        test::ContextFixture fx("cnn-2conv");
        ParamValues v = structuredParams(0.5);
        v.set("criterion", std::string("bn_gamma"));
        v.set("layers", std::string("conv"));
        const auto before = test::paramValues(*fx.model, "layers.0.weight");
        try {
            StrategyRegistry::instance().create("prune.structured", v)->apply(fx.ctx);
            QFAIL("expected a ConfigError");
        } catch (const ConfigError& e) {
            QVERIFY2(std::string(e.what()).find("layers.0 (conv2d) is not directly followed by a batchnorm2d") !=
                         std::string::npos,
                     e.what());
        }
        QCOMPARE(test::paramValues(*fx.model, "layers.0.weight"), before);
    }

    void cnnBnShrinksWithItsNorms() {
        // cnn-bn under l1 (any criterion shrinks the norms): 32 -> 20 and 64 -> 39 filters, the norms with them;
        // the shrunk model saves and reloads with its new shapes and gives the same logits.
        test::ContextFixture fx("cnn-bn");
        ParamValues v = structuredParams(0.4, 8);
        v.set("layers", std::string("conv"));
        StrategyRegistry::instance().create("prune.structured", v)->apply(fx.ctx);
        QCOMPARE(ModelEditor(*fx.model).layer("layers.1").config().at("features").get<std::int64_t>(), std::int64_t(20));
        QCOMPARE(ModelEditor(*fx.model).layer("layers.5").config().at("features").get<std::int64_t>(), std::int64_t(39));
        QCOMPARE(bufferValues(*fx.model, "layers.5.running_mean").size(), std::size_t(39));
        QCOMPARE(ModelEditor(*fx.model).layer("layers.9").config().at("in").get<std::int64_t>(), std::int64_t(39 * 49));
        QVERIFY(test::reloadsIdentically(*fx.model, fx.data.test, "prune-structured-bn.safetensors"));
    }

    void removedUnitsLeaveTheLogitsOfAZeroedUnit() {
        // Removing filters whose weights and bias are zero (relu(0) = 0, maxpool keeps 0) leaves the logits as
        // they were: the consumer's removed columns only ever multiplied zeros.
        auto m = test::customModel(kConvPoolLinear);
        std::vector<float> w = test::paramValues(*m, "layers.0.weight"), b = test::paramValues(*m, "layers.0.bias");
        for (int f : {1, 4}) {
            std::fill_n(w.begin() + f * 9, 9, 0.0f);
            b[static_cast<std::size_t>(f)] = 0.0f;
        }
        setWeight(*m, "layers.0.weight", w);
        setWeight(*m, "layers.0.bias", b);
        const Tensor x = randomBatch();
        const auto before = cpuBackend()->downloadF32(m->forward(x, ForwardContext{}));
        ModelEditor(*m).shrinkConvOutputs("layers.0", {0, 2, 3, 5});
        const auto after = cpuBackend()->downloadF32(m->forward(x, ForwardContext{}));
        QCOMPARE(after.size(), before.size());
        for (std::size_t i = 0; i < after.size(); ++i) QVERIFY(std::fabs(after[i] - before[i]) <= kKeptTol * maxAbs(before));
        QCOMPARE(ModelEditor(*m).layer("layers.4").config().at("in").get<std::int64_t>(), std::int64_t(4 * 196));
    }

    void groupedConsumerIsRefusedAndUndone() {
        auto m = test::customModel(json::array({{{"type", "conv2d"}, {"in", 1}, {"out", 8}, {"kernel", 3}},
                                        {{"type", "conv2d"}, {"in", 8}, {"out", 8}, {"kernel", 3}, {"groups", 8}},
                                        {{"type", "flatten"}},
                                        {{"type", "linear"}, {"in", 8 * 24 * 24}, {"out", 10}}}));
        const auto before = test::paramValues(*m, "layers.0.weight");
        try {
            ModelEditor(*m).shrinkConvOutputs("layers.0", {0, 1, 2, 3});
            QFAIL("expected a ConfigError");
        } catch (const ConfigError& e) {
            QVERIFY2(std::string(e.what()).find("grouped or depthwise") != std::string::npos, e.what());
        }
        QCOMPARE(test::paramValues(*m, "layers.0.weight"), before);
        try {
            ModelEditor(*m).shrinkConvOutputs("layers.1", {0, 1, 2, 3});
            QFAIL("expected a ConfigError");
        } catch (const ConfigError& e) {
            QVERIFY2(std::string(e.what()).find("groups 1") != std::string::npos, e.what());
        }
    }

    void shrunkModelFinetunes() {
        test::ContextFixture fx("mlp-784-256-128-10");
        StrategyRegistry::instance().create("prune.structured", structuredParams(0.5, 8))->apply(fx.ctx);
        QCOMPARE(test::paramValues(*fx.model, "layers.1.weight").size(), std::size_t(128 * 784));
        QCOMPARE(test::paramValues(*fx.model, "layers.3.weight").size(), std::size_t(64 * 128));
        QCOMPARE(test::paramValues(*fx.model, "layers.5.weight").size(), std::size_t(10 * 64));
        const auto w = test::paramValues(*fx.model, "layers.3.weight");
        ParamValues ft = defaultValues(*StrategyRegistry::instance().find("finetune"));
        ft.set("epochs", std::int64_t(1));
        ft.set("batch_size", std::int64_t(50));
        ft.set("lr", 0.01);
        StrategyRegistry::instance().create("finetune", ft)->apply(fx.ctx);
        QVERIFY(test::paramValues(*fx.model, "layers.3.weight") != w);
        QCOMPARE(test::paramValues(*fx.model, "layers.3.weight").size(), std::size_t(64 * 128));
    }

    void shrunkModelSavesAndLoads() {
        test::ContextFixture fx("cnn-2conv");
        StrategyRegistry::instance().create("prune.structured", structuredParams(0.4, 8))->apply(fx.ctx);
        // 32 -> 20 and 64 -> 39 filters, 128 -> 77 neurons; the classifier keeps its 10.
        QCOMPARE(ModelEditor(*fx.model).layer("layers.0").config().at("out").get<std::int64_t>(), std::int64_t(20));
        QCOMPARE(ModelEditor(*fx.model).layer("layers.3").config().at("out").get<std::int64_t>(), std::int64_t(39));
        QCOMPARE(ModelEditor(*fx.model).layer("layers.7").config().at("in").get<std::int64_t>(), std::int64_t(39 * 49));
        QCOMPARE(ModelEditor(*fx.model).layer("layers.10").config().at("in").get<std::int64_t>(), std::int64_t(77));
        QVERIFY(test::reloadsIdentically(*fx.model, fx.data.test, "prune-structured.safetensors"));
    }

    void validationRefusesWithPointers_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<QString>("params");
        QTest::addColumn<QString>("pointer");
        QTest::addColumn<QString>("message");
        QTest::newRow("ratio 1") << "mlp-784-256-128-10" << R"({"ratio": 1})" << "/steps/0/params/ratio"
                                 << "expected a number in [0, 1), got 1";
        QTest::newRow("min_channels 0") << "mlp-784-256-128-10" << R"({"min_channels": 0})"
                                        << "/steps/0/params/min_channels" << "";
        QTest::newRow("criterion") << "mlp-784-256-128-10" << R"({"criterion": "bn"})" << "/steps/0/params/criterion"
                                   << "";
        QTest::newRow("no conv in an MLP") << "mlp-784-256-128-10" << R"({"layers": "conv"})"
                                           << "/steps/0/params/layers"
                                           << "prune.structured: the model has no Conv2d layer whose outputs can be "
                                              "removed (the last layer, the classifier, is never pruned)";
    }
    void validationRefusesWithPointers() {
        QFETCH(QString, model);
        QFETCH(QString, params);
        QFETCH(QString, pointer);
        QFETCH(QString, message);
        test::expectSingleIssue(test::experimentOnZoo(model.toStdString(), "prune.structured", json::parse(params.toStdString())),
                                pointer, message);
    }

    void cnnDwsPrunesOnlyWhatItCan() {
        // cnn-dws: the first conv feeds a depthwise conv and the depthwise conv is grouped; only the pointwise
        // conv (16 -> 32, then pool, flatten, the classifier) can lose filters.
        const json doc = test::experimentOnZoo("cnn-dws", "prune.structured", {{"layers", "conv"}});
        QVERIFY(validateExperiment(doc).empty());
        test::ContextFixture fx("cnn-dws");
        StrategyRegistry::instance().create("prune.structured", structuredParams(0.5, 8))->apply(fx.ctx);
        QCOMPARE(ModelEditor(*fx.model).layer("layers.5").config().at("out").get<std::int64_t>(), std::int64_t(16));
        QCOMPARE(ModelEditor(*fx.model).layer("layers.0").config().at("out").get<std::int64_t>(), std::int64_t(16));
        QVERIFY(fx.notes.at("structured_kept").find("skipped") != std::string::npos);
    }

    void runWithoutPrunableLayerIsStoredAsFailed() {
        LATHE_REQUIRE_FASHION_MNIST();
        // A saved model has no signature at validation, so the step finds out at the run.
        const std::string dir = test::tempDir() + "/prune-structured-run";
        std::filesystem::create_directories(dir);
        auto only = Model::fromArchitecture({{"name", "custom"},
                                             {"input", {{"shape", {1, 28, 28}}, {"scale", 1.0 / 255}}},
                                             {"classes", 10},
                                             {"layers", {{{"type", "flatten"}}, {{"type", "linear"}, {"in", 784}, {"out", 10}}}}});
        only->initialize(*cpuBackend(), 5);
        saveModel(*only, dir + "/linear.safetensors");
        const auto [outcome, stored] = test::runStepOnSavedModel(dir, dir + "/linear.safetensors", "prune.structured");
        QCOMPARE(outcome.status, std::string("failed"));
        QCOMPARE(outcome.error, std::string("prune.structured: the model has no Linear or Conv2d layer whose outputs "
                                            "can be removed (the last layer, the classifier, is never pruned)"));
        QCOMPARE(stored, outcome.error);
    }
};

LATHE_TEST_GUILESS_MAIN(TestPruneStructured)
#include "test_prune_structured.moc"

// fuse.bn: Conv2d + BatchNorm2d folded into one Conv2d gives the unfused model's evaluation logits within a
// stated tolerance (cnn-bn with random batch-norm statistics, a conv with and without bias, a grouped conv);
// the norms are gone and the folded model saves and reloads; a model with nothing to fold is refused at
// validation and at the run.
// fuse.activation: Linear / qlinear + ReLU / GELU fused into the GEMM's epilogue gives the unfused logits (bit for
// bit on the CPU: the same GEMM panels, additions and activation arithmetic), the activation layers are gone, the
// field saves and reloads; training a fused Linear gives the unfused gradients; nothing to fuse is refused.
#include "engine/core/errors.h"
#include "engine/core/rng.h"
#include "engine/io/model_io.h"
#include "engine/measure/latency.h"
#include "engine/nn/model_edit.h"
#include "engine/nn/quantized_linear.h"
#include "engine/strategies/fuse/fuse_activation.h"
#include "tests/strategies/strategy_fixture.h"
#include "tests/support/test_support.h"

#include <QtTest>

#include <cmath>

using namespace lathe;
using json = nlohmann::json;

namespace {

// Folding is exact in real arithmetic; in float the logits may move by rounding, relative to the largest.
constexpr double kFoldTol = 1e-5;

std::vector<float> logits(Model& m, const Dataset& data) {
    const auto batches = makeInputBatches(*cpuBackend(), m, data, 16, 1);
    return cpuBackend()->downloadF32(m.forward(batches[0], ForwardContext{}));
}

int countType(Model& m, const std::string& type) {
    int n = 0;
    for (const LayerInfo& info : ModelEditor(m).list())
        n += info.type == type ? 1 : 0;
    return n;
}

// A ReLU or GELU after each hidden Linear, one Linear without a bias, and a residual block whose inner sequence
// has its own Linear + GELU.
json activationModelLayers() {
    return json::array({{{"type", "flatten"}},
                        {{"type", "linear"}, {"in", 784}, {"out", 64}},
                        {{"type", "gelu"}},
                        {{"type", "linear"}, {"in", 64}, {"out", 32}, {"bias", false}},
                        {{"type", "relu"}},
                        {{"type", "residual"},
                         {"layers", json::array({{{"type", "linear"}, {"in", 32}, {"out", 32}}, {{"type", "gelu"}}})}},
                        {{"type", "linear"}, {"in", 32}, {"out", 10}}});
}

// Every float Linear of m replaced by a qlinear of `proto` made from its weights (as bench mlp --quantize does).
void quantizeAll(Model& m, QuantizedLinearConfig proto) {
    Backend& be = *cpuBackend();
    ModelEditor editor(m);
    for (const LayerInfo& info : editor.list()) {
        if (info.type != "linear") continue;
        Layer& layer = editor.layer(info.path);
        std::vector<float> w, b;
        for (Parameter* p : layer.parameters()) (p->name == "weight" ? w : b) = be.downloadF32(p->value);
        proto.in = layer.config().at("in").get<std::int64_t>();
        proto.out = layer.config().at("out").get<std::int64_t>();
        proto.bias = !b.empty();
        editor.replace(info.path, makeQuantizedLinear(be, proto, w.data(), b.empty() ? nullptr : b.data()));
    }
}

} // namespace

class TestFuse : public QObject {
    Q_OBJECT

  private slots:
    void foldedModelGivesTheSameLogits_data() {
        QTest::addColumn<QString>("model");
        QTest::newRow("cnn-bn (convs without bias)") << QString();
        QTest::newRow("conv with bias, grouped conv") << QStringLiteral("custom");
    }

    void foldedModelGivesTheSameLogits() {
        QFETCH(QString, model);
        test::ContextFixture fx("cnn-bn");
        if (!model.isEmpty())
            fx.model = test::customModel(
                json::array({{{"type", "conv2d"}, {"in", 1}, {"out", 4}, {"kernel", 3}, {"padding", 1}},
                             {{"type", "batchnorm2d"}, {"features", 4}, {"eps", 0.001}},
                             {{"type", "relu"}},
                             {{"type", "conv2d"},
                              {"in", 4},
                              {"out", 8},
                              {"kernel", 3},
                              {"padding", 1},
                              {"groups", 2},
                              {"bias", false}},
                             {{"type", "batchnorm2d"}, {"features", 8}},
                             {{"type", "maxpool2d"}, {"kernel", 2}},
                             {{"type", "flatten"}},
                             {{"type", "linear"}, {"in", 8 * 196}, {"out", 10}}}));
        test::randomizeNorms(*fx.model);
        const int convs = countType(*fx.model, "conv2d");
        const auto before = logits(*fx.model, fx.data.test);
        StrategyRegistry::instance().create("fuse.bn", test::quickMeasuringDefaults("fuse.bn"))->apply(fx.ctx);
        QCOMPARE(countType(*fx.model, "batchnorm2d"), 0);
        QCOMPARE(countType(*fx.model, "conv2d"), convs);
        const double diff = test::relativeDiff(before, logits(*fx.model, fx.data.test));
        qInfo("largest logit difference after folding: %.3g of the largest logit", diff);
        QVERIFY2(diff < kFoldTol, qPrintable(QString::number(diff)));
        QCOMPARE(fx.summary.at("layers_folded"), 2.0);
        QVERIFY(fx.summary.at("fold_max_rel_diff") < kFoldTol);
        QVERIFY(fx.summary.count("speedup_realized"));
        QVERIFY(fx.summary.count("unfused.latency_p50_ms") && fx.summary.count("fused.latency_p50_ms"));
        QVERIFY(QString::fromStdString(fx.notes.at("bn_folded")).contains(QLatin1String("layers.0 + layers.1")));
        // Every folded conv has a bias now, and the model saves and reloads to the same logits.
        for (const LayerInfo& info : ModelEditor(*fx.model).list())
            if (info.type == "conv2d") QVERIFY(ModelEditor(*fx.model).layer(info.path).config().value("bias", true));
        QVERIFY(test::reloadsIdentically(*fx.model, fx.data.test, "fused.safetensors"));
    }

    void nothingToFoldIsRefused() {
        test::expectSingleIssue(test::experimentOnZoo("cnn-2conv", "fuse.bn", json::object()), "/steps/0/params",
                                "fuse.bn: the model has no Conv2d directly followed by a BatchNorm2d to fold");
        QVERIFY(validateExperiment(test::experimentOnZoo("cnn-bn", "fuse.bn", json::object())).empty());
        test::ContextFixture fx("mlp-784-256-128-10");
        QVERIFY_THROWS_EXCEPTION(
            ConfigError,
            StrategyRegistry::instance().create("fuse.bn", test::quickMeasuringDefaults("fuse.bn"))->apply(fx.ctx));
    }

    void fusedActivationsGiveTheSameLogits_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<QString>("quantize");
        QTest::addColumn<int>("fusions");
        QTest::newRow("mlp-784-256-128-10") << QString("mlp-784-256-128-10") << QString() << 2;
        QTest::newRow("gelu, no bias, residual block") << QString("custom") << QString() << 3;
        QTest::newRow("qlinear int8 dynamic (W8A8)") << QString("mlp-784-256-128-10") << QString("int8_dynamic") << 2;
        QTest::newRow("qlinear int4 weight-only") << QString("custom") << QString("int4") << 3;
    }

    void fusedActivationsGiveTheSameLogits() {
        QFETCH(QString, model);
        QFETCH(QString, quantize);
        QFETCH(int, fusions);
        test::ContextFixture fx(model == "custom" ? "mlp-784-64-10" : model.toStdString());
        if (model == "custom") fx.model = test::customModel(activationModelLayers());
        if (quantize == "int8_dynamic") {
            QuantizedLinearConfig c;
            c.activations = ActivationQuant::Dynamic;
            quantizeAll(*fx.model, c);
        } else if (quantize == "int4") {
            QuantizedLinearConfig c;
            c.weights = {WeightFormat::Int4, 32, true};
            quantizeAll(*fx.model, c);
        }
        const int activations = countType(*fx.model, "relu") + countType(*fx.model, "gelu");
        const auto before = logits(*fx.model, fx.data.test);
        const ParamValues quick = test::quickMeasuringDefaults("fuse.activation");
        StrategyRegistry::instance().create("fuse.activation", quick)->apply(fx.ctx);
        QCOMPARE(countType(*fx.model, "relu") + countType(*fx.model, "gelu"), activations - fusions);
        QCOMPARE(fx.summary.at("layers_fused"), double(fusions));
        // On the CPU the fused epilogue runs the unfused ops' arithmetic on the same GEMM results: exact.
        const auto after = logits(*fx.model, fx.data.test);
        QCOMPARE(test::relativeDiff(before, after), 0.0);
        QCOMPARE(fx.summary.at("fuse_max_abs_diff"), 0.0);
        QVERIFY(fx.summary.count("unfused.latency_p50_ms") && fx.summary.count("fused.latency_p50_ms"));
        QVERIFY(fx.summary.count("speedup_realized"));
        int fused = 0;
        for (const LayerInfo& info : ModelEditor(*fx.model).list())
            fused += ModelEditor(*fx.model).layer(info.path).config().value("activation", "none") != "none" ? 1 : 0;
        QCOMPARE(fused, fusions);
        std::unique_ptr<Model> copy;
        QVERIFY(test::reloadsIdentically(*fx.model, fx.data.test, "fused-activation.safetensors", &copy));
        QCOMPARE(copy->architecture(), fx.model->architecture());
    }

    // A fused Linear trains through the unfused ops with its pre-activation cached: the same loss gradients as
    // the model with separate activation layers, bit for bit.
    void fusedLinearTrainsLikeTheUnfusedOne() {
        auto unfused = test::customModel(activationModelLayers());
        auto fused = test::customModel(activationModelLayers());
        QCOMPARE(int(fuseActivations(*fused).size()), 3);
        Backend& be = *cpuBackend();
        const Tensor x = be.upload(test::randomVector(4 * 784, 3), {4, 1, 28, 28});
        const Tensor labels = be.uploadI32({1, 7, 3, 0}, {4});
        std::vector<std::vector<float>> grads[2];
        int i = 0;
        for (Model* m : {unfused.get(), fused.get()}) {
            m->zeroGrad();
            ForwardContext ctx;
            ctx.training = true;
            const Tensor out = m->forward(x, ctx);
            Tensor losses = be.empty({4}), dlogits = be.empty(out.shape());
            be.softmaxCrossEntropy(out, labels, losses, dlogits, 0.25f);
            m->backward(dlogits);
            for (const auto& np : m->namedParameters()) grads[i].push_back(be.downloadF32(np.param->grad));
            ++i;
        }
        QCOMPARE(grads[0].size(), grads[1].size());
        for (std::size_t p = 0; p < grads[0].size(); ++p)
            QVERIFY2(grads[0][p] == grads[1][p], qPrintable("gradient " + QString::number(p) + " differs"));
    }

    // Steps after the fusion keep the activation where it is: quantize.int8 puts it in the qlinear's epilogue,
    // lowrank.svd on the second factor. Each gives the logits it gives on the unfused model, bit for bit.
    void laterStepsKeepTheFusedActivation_data() {
        QTest::addColumn<QString>("strategy");
        QTest::newRow("quantize.int8 dynamic") << QString("quantize.int8");
        QTest::newRow("lowrank.svd rank 16") << QString("lowrank.svd");
    }

    void laterStepsKeepTheFusedActivation() {
        QFETCH(QString, strategy);
        test::ContextFixture unfused("mlp-784-64-10"), fused("mlp-784-64-10"); // the same weights (seed 11)
        QCOMPARE(int(fuseActivations(*fused.model).size()), 1);
        ParamValues v = test::quickMeasuringDefaults(strategy.toStdString());
        if (strategy == "quantize.int8") v.set("activations", std::string("dynamic"));
        else v.set("rank", std::int64_t(16));
        for (test::ContextFixture* fx : {&unfused, &fused})
            StrategyRegistry::instance().create(strategy.toStdString(), v)->apply(fx->ctx);
        QCOMPARE(countType(*fused.model, "relu"), 0);
        int withActivation = 0;
        for (const LayerInfo& info : ModelEditor(*fused.model).list())
            withActivation += ModelEditor(*fused.model).layer(info.path).config().value("activation", "") == "relu";
        QCOMPARE(withActivation, 1);
        QCOMPARE(logits(*fused.model, fused.data.test), logits(*unfused.model, unfused.data.test));
    }

    void nothingToFuseIsRefused() {
        test::expectSingleIssue(test::experimentOnZoo("cnn-dws", "fuse.activation", json::object()), "/steps/0/params",
                                "fuse.activation: the model has no Linear or qlinear directly followed by a ReLU or "
                                "GELU to fuse");
        QVERIFY(validateExperiment(test::experimentOnZoo("mlp-784-64-10", "fuse.activation", json::object())).empty());
        // A model fused once has nothing left to fuse.
        test::ContextFixture fx("mlp-784-64-10");
        QCOMPARE(int(fuseActivations(*fx.model).size()), 1);
        QVERIFY(findActivationFusions(*fx.model).empty());
        const ParamValues quick = test::quickMeasuringDefaults("fuse.activation");
        auto step = StrategyRegistry::instance().create("fuse.activation", quick);
        QVERIFY_THROWS_EXCEPTION(ConfigError, step->apply(fx.ctx));
    }

    void badActivationFieldIsAConfigError() {
        const json tanh = {{"type", "linear"}, {"in", 4}, {"out", 2}, {"activation", "tanh"}};
        QVERIFY_THROWS_EXCEPTION(ConfigError, makeLayer(tanh));
        const json gelu = {{"type", "linear"}, {"in", 4}, {"out", 2}, {"activation", "gelu"}};
        QCOMPARE(makeLayer(gelu)->config().value("activation", ""), std::string("gelu"));
    }
};

QTEST_MAIN(TestFuse)
#include "test_fuse.moc"

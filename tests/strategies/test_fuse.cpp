// fuse.bn: Conv2d + BatchNorm2d folded into one Conv2d gives the unfused model's evaluation logits within a
// stated tolerance (cnn-bn with random batch-norm statistics, a conv with and without bias, a grouped conv);
// the norms are gone and the folded model saves and reloads; a model with nothing to fold is refused at
// validation and at the run.
#include "engine/core/errors.h"
#include "engine/core/rng.h"
#include "engine/io/model_io.h"
#include "engine/measure/latency.h"
#include "engine/nn/model_edit.h"
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
};

QTEST_MAIN(TestFuse)
#include "test_fuse.moc"

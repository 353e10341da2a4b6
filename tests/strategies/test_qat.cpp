// Quantization-aware fine-tuning (finetune's `qat`): the weights end on the conversion's grid, the conversion
// that follows reproduces the fine-tuned model, the master copy takes the optimizer's updates (straight-
// through estimator), the fake quantizer is that finetune's own, `qat` none trains exactly as before, and
// bad fields are named at validation.
#include "engine/nn/quantized_linear.h"
#include "engine/strategies/quantize/fake_quant.h"
#include "engine/strategies/train/training.h"
#include "tests/strategies/strategy_fixture.h"

#include <QtTest>

#include <cmath>
#include <cstring>

using namespace lathe;
using json = nlohmann::json;

namespace {

// The float model and the converted one multiply by the same weights; the float GEMM and the weight-only
// kernel only sum the products in other orders (f32 rounding over at most 784 terms, about 1e-6 of the
// largest logit). 1e-5 of the largest logit leaves room and still catches any changed weight.
constexpr double kConversionLogitTol = 1e-5;
// The master copy after SGD steps: M - lr * g computed as M + (fl(Q - lr * g) - Q), a few f32 roundings of
// weights below 1 in magnitude.
constexpr double kMasterTol = 1e-6;

// The finetune of the tests: 2 epochs of the 300 band images (6 steps), lr 1e-3 so the weights move.
ParamValues finetune(std::initializer_list<std::pair<const char*, ParamValue>> set = {}) {
    ParamValues v = defaultValues(*StrategyRegistry::instance().find("finetune"));
    v.set("epochs", std::int64_t(2));
    v.set("lr", 1e-3);
    for (const auto& [k, value] : set) v.set(k, value);
    return v;
}

void apply(test::ContextFixture& fx, const std::string& strategy, const ParamValues& v) {
    StrategyRegistry::instance().create(strategy, v)->apply(fx.ctx);
}

// Every float Linear weight of m: (path, values, out, in).
struct LinearWeight {
    std::string path;
    std::vector<float> w;
    std::int64_t out = 0, in = 0;
};
std::vector<LinearWeight> linearWeights(Model& m) {
    std::vector<LinearWeight> out;
    ModelEditor editor(m);
    for (const LayerInfo& info : editor.list()) {
        if (info.type != "linear") continue;
        Layer& layer = editor.layer(info.path);
        const json c = layer.config();
        for (Parameter* p : layer.parameters())
            if (p->name == "weight")
                out.push_back({info.path, cpuBackend()->downloadF32(p->value), c.at("out").get<std::int64_t>(),
                               c.at("in").get<std::int64_t>()});
    }
    return out;
}

bool sameBits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::vector<float> randomMatrix(std::int64_t rows, std::int64_t cols, std::uint64_t seed) {
    Rng rng(seed);
    std::vector<float> w(static_cast<std::size_t>(rows * cols));
    for (auto& v : w) v = 0.05f * rng.normal();
    return w;
}

} // namespace

class TestQat : public QObject {
    Q_OBJECT

private slots:
    // The scale of a requantized group is the scale it had: fl(fl(n * s) / n) == s for every s = fl(a / n),
    // n = 7 (symmetric int4) and 127 (int8), over every a in [1, 2) (a power of two scales a, s and the
    // products alike, so one binade stands for all normal floats). fl(n * s) itself need not be a.
    void scaleRoundTripIsExact() {
        for (const float n : {7.0f, 127.0f}) {
            std::int64_t scaleChanged = 0, absmaxChanged = 0;
            for (std::uint32_t mantissa = 0; mantissa < (1u << 23); ++mantissa) {
                const std::uint32_t bits = (127u << 23) | mantissa;
                float a = 0;
                std::memcpy(&a, &bits, sizeof a);
                const volatile float s = a / n;
                const volatile float absmax = n * s;
                const volatile float again = absmax / n;
                scaleChanged += again != s;
                absmaxChanged += absmax != a;
            }
            QCOMPARE(scaleChanged, std::int64_t(0));
            QVERIFY(absmaxChanged > 0); // the round trip of the scale is not that of the absmax
        }
    }

    // Q(Q(w)) == Q(w) bit for bit for the absmax-scaled formats, partial last groups included.
    void requantizingTheGridIsTheIdentity_data() {
        QTest::addColumn<int>("format");
        QTest::addColumn<qlonglong>("group");
        QTest::newRow("int4 g128") << int(WeightFormat::Int4) << 128LL;
        QTest::newRow("int4 g100 (partial last group)") << int(WeightFormat::Int4) << 100LL;
        QTest::newRow("int4 per channel") << int(WeightFormat::Int4) << 1024LL;
        QTest::newRow("int8 per channel") << int(WeightFormat::Int8) << 1024LL;
        QTest::newRow("int8 g32") << int(WeightFormat::Int8) << 32LL;
        QTest::newRow("nf4 g64") << int(WeightFormat::Nf4) << 64LL;
    }

    void requantizingTheGridIsTheIdentity() {
        QFETCH(int, format);
        QFETCH(qlonglong, group);
        const QuantSpec spec{static_cast<WeightFormat>(format), group, true};
        const std::int64_t rows = 64, cols = 784;
        const auto w = randomMatrix(rows, cols, 17);
        const auto q = quant::fakeQuantize(w, rows, cols, spec);
        QVERIFY(!sameBits(q, w));
        QVERIFY(sameBits(quant::fakeQuantize(q, rows, cols, spec), q));
    }

    // After a qat finetune every Linear weight is on the grid: the codec maps it to itself; and it trained.
    void weightsEndOnTheGrid_data() {
        QTest::addColumn<QString>("qat");
        QTest::addColumn<qlonglong>("group");
        QTest::newRow("int4 g128") << "int4" << 128LL;
        QTest::newRow("int4 per channel") << "int4" << 1024LL;
        QTest::newRow("int8 per channel") << "int8" << 1024LL;
        QTest::newRow("nf4 g64") << "nf4" << 64LL;
    }

    void weightsEndOnTheGrid() {
        QFETCH(QString, qat);
        QFETCH(qlonglong, group);
        test::ContextFixture fx("mlp-784-64-10");
        const auto before = linearWeights(*fx.model);
        apply(fx, "finetune", finetune({{"qat", qat.toStdString()}, {"qat_group", std::int64_t(group)}}));
        quant::QatSettings s;
        s.format = qat == "int8" ? quant::QatFormat::Int8 : qat == "int4" ? quant::QatFormat::Int4 : quant::QatFormat::Nf4;
        s.group = group;
        const auto after = linearWeights(*fx.model);
        QCOMPARE(after.size(), std::size_t(2));
        for (std::size_t i = 0; i < after.size(); ++i) {
            const auto& l = after[i];
            QVERIFY2(sameBits(quant::fakeQuantize(l.w, l.out, l.in, s.spec()), l.w), l.path.c_str());
            // Trained: not simply the starting weights snapped to the grid.
            QVERIFY2(!sameBits(quant::fakeQuantize(before[i].w, l.out, l.in, s.spec()), l.w), l.path.c_str());
            QVERIFY(std::isfinite(fx.stat(l.path + ".weight", "qat_weight_sqnr_db")));
        }
        QVERIFY(fx.summary.at("qat_weight_sqnr_db_mean") > 0);
        QCOMPARE(fx.summary.at("qat_layers"), 2.0);
        QVERIFY(fx.notes.at("qat").find(qat.toStdString() + " weight-only") != std::string::npos);
        QVERIFY(fx.hooks.empty()); // nothing kept for later phases
    }

    // The conversion with the qat's format and group stores exactly the fine-tuned weights: its logits are the
    // fine-tuned float model's to float rounding.
    void conversionReproducesTheFineTunedModel_data() {
        QTest::addColumn<QString>("qat");
        QTest::addColumn<QString>("strategy");
        QTest::addColumn<qlonglong>("group");
        QTest::newRow("int4 g128") << "int4" << "quantize.int4" << 128LL;
        QTest::newRow("int4 g100 (partial last group)") << "int4" << "quantize.int4" << 100LL;
        QTest::newRow("nf4 g64") << "nf4" << "quantize.nf4" << 64LL;
        QTest::newRow("int8 per channel, weight-only") << "int8" << "quantize.int8" << 1024LL;
    }

    void conversionReproducesTheFineTunedModel() {
        QFETCH(QString, qat);
        QFETCH(QString, strategy);
        QFETCH(qlonglong, group);
        test::ContextFixture fx("mlp-784-64-10");
        apply(fx, "finetune", finetune({{"qat", qat.toStdString()}, {"qat_group", std::int64_t(group)}}));
        const auto tuned = linearWeights(*fx.model);
        const auto floatLogits = test::firstLogits(*fx.model, fx.data.test);
        ParamValues v = test::quickMeasuringDefaults(strategy.toStdString());
        if (strategy == "quantize.int8") v.set("activations", std::string("none"));
        else v.set("group", std::int64_t(group));
        apply(fx, strategy.toStdString(), v);
        const auto quantizedLogits = test::firstLogits(*fx.model, fx.data.test);
        const double diff = test::relativeDiff(floatLogits, quantizedLogits);
        QVERIFY2(diff < kConversionLogitTol, qPrintable(QString::number(diff)));
        // The stored weights are the fine-tuned ones, bit for bit.
        for (const auto& l : tuned)
            QVERIFY2(sameBits(dequantizedWeight(*cpuBackend(), ModelEditor(*fx.model).layer(l.path)), l.w), l.path.c_str());
    }

    // The straight-through estimator: SGD steps with known gradients move the master copy by -lr * g each, the
    // weight is always Q(master), and updates smaller than a grid step add up in the master until they cross
    // one (rounding the weight itself would lose them).
    void masterCopyTakesTheOptimizerUpdates() {
        Backend& be = *cpuBackend();
        auto model = test::customModel(json::array({{{"type", "flatten"}}, {{"type", "linear"}, {"in", 784}, {"out", 10}}}));
        const QuantSpec spec{WeightFormat::Int4, 128, true};
        quant::WeightFakeQuantizer fq(*model, be, {{"layers.1", 784, 10, true}}, spec);
        const std::vector<float> m0 = test::paramValues(*model, "layers.1.weight");
        fq.start();
        const std::vector<float> w0 = test::paramValues(*model, "layers.1.weight");
        QVERIFY(sameBits(w0, quant::fakeQuantize(m0, 10, 784, spec)));

        // g = 0.3 of each value's grid step / lr: one step crosses a rounding boundary for about 30% of the
        // values, two steps for about 60%.
        const float lr = 0.5f;
        const HostQuantMatrix q0 = quantizeMatrix(m0.data(), 10, 784, spec);
        std::vector<float> g(m0.size());
        for (std::int64_t r = 0; r < 10; ++r)
            for (std::int64_t k = 0; k < 784; ++k)
                g[std::size_t(r * 784 + k)] = 0.3f * q0.scales[std::size_t(r * q0.groups() + k / 128)] / lr;
        SgdParams sgd;
        sgd.lr = lr; // plain SGD: no momentum, no decay
        auto optimizer = makeSgd(sgd);
        OptimizerState state;
        auto step = [&] {
            model->zeroGrad();
            for (const auto& np : model->namedParameters())
                if (np.name == "layers.1.weight") be.copyFromHost(np.param->grad, g.data());
            optimizer->step(be, model->namedParameters(), state);
            fq.afterOptimizerStep();
        };
        step();
        const std::vector<float> w1 = test::paramValues(*model, "layers.1.weight");
        step();
        const std::vector<float> w2 = test::paramValues(*model, "layers.1.weight");

        const auto& master = fq.sites()[0].master;
        std::vector<float> expected(m0.size());
        double worst = 0;
        for (std::size_t i = 0; i < m0.size(); ++i) {
            expected[i] = m0[i] - 2.0f * lr * g[i];
            worst = std::max(worst, std::fabs(double(master[i]) - double(expected[i])));
        }
        QVERIFY2(worst < kMasterTol, qPrintable(QString::number(worst)));
        QVERIFY(sameBits(w2, quant::fakeQuantize(master, 10, 784, spec)));
        QVERIFY(sameBits(w2, fq.sites()[0].onGrid));
        // Values the first step left where they were, moved by the second: the master kept the first update.
        int movedLate = 0;
        for (std::size_t i = 0; i < m0.size(); ++i) movedLate += w1[i] == w0[i] && w2[i] != w0[i];
        QVERIFY2(movedLate > 100, qPrintable(QString::number(movedLate)));
    }

    // qat none is the finetune it was: bit-identical to the training phase run as the step always ran it.
    void qatNoneTrainsAsBefore() {
        test::ContextFixture viaStep("mlp-784-64-10");
        apply(viaStep, "finetune", finetune());
        test::ContextFixture direct("mlp-784-64-10");
        TrainParams p;
        p.epochs = 2;
        p.lr = 1e-3f;
        p.seed = mix64(direct.ctx.seed ^ (0x5eedull + static_cast<std::uint64_t>(direct.ctx.stepIndex)));
        runTrainingPhase(direct.ctx, p, "finetune");
        for (const auto& np : viaStep.model->namedParameters())
            QVERIFY2(sameBits(test::paramValues(*viaStep.model, np.name), test::paramValues(*direct.model, np.name)),
                     np.name.c_str());
        QVERIFY(!viaStep.summary.count("qat_layers"));
        QVERIFY(!viaStep.notes.count("qat"));
    }

    // The fake quantizer belongs to its finetune: a later plain finetune trains the weights off the grid, and
    // a skipped layer is trained in float.
    void laterPhasesTrainInFloat() {
        test::ContextFixture fx("mlp-784-64-10");
        apply(fx, "finetune", finetune({{"qat", std::string("int4")}, {"qat_skip", std::string("layers.3")}}));
        const QuantSpec spec{WeightFormat::Int4, 128, true};
        auto onGrid = [&](const LinearWeight& l) { return sameBits(quant::fakeQuantize(l.w, l.out, l.in, spec), l.w); };
        auto weights = linearWeights(*fx.model);
        QCOMPARE(weights[0].path, std::string("layers.1"));
        QVERIFY(onGrid(weights[0]));
        QVERIFY(!onGrid(weights[1])); // skipped
        QCOMPARE(fx.summary.at("qat_layers"), 1.0);
        apply(fx, "finetune", finetune());
        weights = linearWeights(*fx.model);
        QVERIFY(!onGrid(weights[0]));
    }

    void validationNamesTheField() {
        test::expectSingleIssue(test::experimentOnZoo("mlp-784-64-10", "finetune", {{"qat", "int3"}}),
                                "/steps/0/params/qat",
                                "expected one of \"none\", \"int8\", \"int4\" or \"nf4\", got \"int3\" (did you "
                                "mean \"int8\"?)");
        test::expectSingleIssue(test::experimentOnZoo("mlp-784-64-10", "finetune", {{"qat", "int4"}, {"qat_group", 0}}),
                                "/steps/0/params/qat_group", "");
        test::expectSingleIssue(test::experimentOnZoo("mlp-784-64-10", "finetune", {{"qat", "nf4"}, {"qat_skip", "layers.9"}}),
                                "/steps/0/params/qat_skip",
                                "finetune (qat): qat_skip names \"layers.9\", which is not a float Linear layer it would "
                                "convert");
        test::expectSingleIssue(
            test::experimentOnZoo("mlp-784-64-10", "finetune", {{"qat", "int4"}, {"qat_skip", "layers.1, layers.3"}}),
            "/steps/0/params/qat_skip", "");
        // qat none ignores qat_skip, as plain training has nothing to skip.
        QVERIFY(validateExperiment(test::experimentOnZoo("mlp-784-64-10", "finetune", {{"qat_skip", "layers.9"}})).empty());
    }
};

QTEST_MAIN(TestQat)
#include "test_qat.moc"

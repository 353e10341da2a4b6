// quantize.fp8 and quantize.nf4's double_quant (issue 9): the FP8 GEMM refused on the CPU before the run starts
// unless "simulate" is given, and then run in f32 with the run marked simulated; FP8 qlinear outputs against
// their E4M3 values (weights and rounded activations); double-quantized nf4 stored smaller and run from its
// codes; both saved and reloaded to bit-identical outputs; missing scales named as the DataError's tensor.
#include "engine/core/errors.h"
#include "engine/core/quant_matrix.h"
#include "engine/io/model_io.h"
#include "engine/io/safetensors.h"
#include "engine/nn/quantized_linear.h"
#include "tests/strategies/strategy_fixture.h"
#include "tests/support/test_support.h"

#include <QDir>
#include <QtTest>

#include <cmath>
#include <cstring>

using namespace lathe;

namespace {

// E4M3 keeps 3 mantissa bits (a half-step of 2^-4 relative) on weights and activations: the MLP's logits move
// by a few percent, like the 4-bit formats' (test_quantize's kFourBitLogitTol).
constexpr double kFp8LogitTol = 0.15;
// A qlinear's f32 output against a double-precision sum over the same E4M3 values: f32 sums of 784 products in
// the kernel's order, about (K / 16 + 16) roundings of 2^-24 of sum |x| |w| (test_weight_only_gemm's argument):
// 2e-5 leaves a margin of 4.
constexpr double kFp8GemmTol = 2e-5;

ParamValues quick(const std::string& strategy, std::initializer_list<std::pair<const char*, ParamValue>> set = {}) {
    ParamValues v = test::quickMeasuringDefaults(strategy);
    for (const auto& [k, value] : set) v.set(k, value);
    return v;
}

void apply(test::ContextFixture& fx, const std::string& strategy, const ParamValues& v) {
    auto s = StrategyRegistry::instance().create(strategy, v);
    s->checkBackend(fx.ctx.backend());
    s->apply(fx.ctx);
}

int countType(Model& m, const std::string& type) {
    int n = 0;
    for (const LayerInfo& info : ModelEditor(m).list()) n += info.type == type ? 1 : 0;
    return n;
}

} // namespace

class TestQuantizeFp8 : public QObject {
    Q_OBJECT

private slots:
    void refusedOnTheCpuWithoutSimulate() {
        // The step alone: ConfigError naming the step, the format, the backend and the reason.
        auto step = StrategyRegistry::instance().create("quantize.fp8", quick("quantize.fp8"));
        const std::string msg = test::errorOf<ConfigError>([&] { step->checkBackend(*cpuBackend()); });
        for (const char* needle : {"quantize.fp8", "fp8", "cpu", "FP8 GEMM needs a CUDA device of compute capability 8.9",
                                   "\"simulate\": true"})
            QVERIFY2(msg.find(needle) != std::string::npos, msg.c_str());
        // Through the runner: failed before the baseline is evaluated (no baseline figure in the summary).
        test::ContextFixture fx("mlp-784-64-10");
        const std::string dir = test::tempDir() + "/fp8-refused";
        QDir().mkpath(QString::fromStdString(dir));
        saveModel(*fx.model, dir + "/m.safetensors");
        const auto [outcome, error] = test::runStepOnSavedModel(dir, dir + "/m.safetensors", "quantize.fp8");
        QCOMPARE(QString::fromStdString(outcome.status), QString("failed"));
        QVERIFY2(error.find("FP8 GEMM needs") != std::string::npos, error.c_str());
        QVERIFY2(!outcome.summary.count("baseline_accuracy"), "the baseline was evaluated before the refusal");
    }

    void simulatedOnTheCpuFollowsTheE4M3Values() {
        test::ContextFixture fx("mlp-784-64-10");
        const auto before = test::firstLogits(*fx.model, fx.data.test);
        const std::uint64_t floatBytes = fx.model->parameterBytes();
        apply(fx, "quantize.fp8", quick("quantize.fp8", {{"simulate", true}}));
        QCOMPARE(countType(*fx.model, "qlinear"), 2);
        QCOMPARE(fx.summary.at("simulated"), 1.0);
        QVERIFY(fx.notes.count("simulated"));
        QVERIFY2(fx.notes.at("simulated").find("latency") != std::string::npos, fx.notes.at("simulated").c_str());
        const auto after = test::firstLogits(*fx.model, fx.data.test);
        QVERIFY2(test::relativeDiff(before, after) < kFp8LogitTol,
                 qPrintable(QString::number(test::relativeDiff(before, after))));
        // Stored for real: one byte per weight plus an f32 scale per output channel, the biases in f32.
        const std::uint64_t expected = 784 * 64 + 64 * 4 + 64 * 4 + 64 * 10 + 10 * 4 + 10 * 4;
        QCOMPARE(fx.model->parameterBytes(), expected);
        QVERIFY(double(fx.model->parameterBytes()) < 0.27 * double(floatBytes));
        QCOMPARE(fx.summary.at("weight_bits_mean"), double((784 * 64 + 64 * 10) * 8 + (64 + 10) * 32) / (784 * 64 + 64 * 10));

        // The first layer's output: act(sx * sum_k e4m3(x / sx) * w~ + b), w~ its dequantized (E4M3) weight.
        Backend& be = *cpuBackend();
        ModelEditor editor(*fx.model);
        Layer& first = editor.layer("layers.1");
        const QuantizedLinearConfig c = quantizedLinearConfig(first);
        QCOMPARE(c.weights.format, WeightFormat::Fp8);
        QVERIFY(c.simulate);
        const std::vector<float> w = dequantizedWeight(be, first);
        const auto batches = makeInputBatches(be, *fx.model, fx.data.test, 3, 1);
        const Tensor x = batches[0].view({3, 784});
        const std::vector<float> y = be.downloadF32(first.forward(be, x, ForwardContext{}));
        const std::vector<float> xs = be.downloadF32(x);
        float amax = 0;
        for (float v : xs) amax = std::max(amax, std::fabs(v));
        const float sx = fp8TensorScale(amax);
        std::vector<float> bias;
        for (Parameter* p : first.parameters()) bias = be.downloadF32(p->value);
        for (int n = 0; n < 3; ++n)
            for (int o = 0; o < 64; ++o) {
                double ref = 0, mag = std::fabs(double(bias[std::size_t(o)]));
                for (int k = 0; k < 784; ++k) {
                    const double xv = double(sx) * fp8E4M3ToFloat(floatToFp8E4M3(xs[std::size_t(n * 784 + k)] / sx));
                    ref += xv * w[std::size_t(o * 784 + k)];
                    mag += std::fabs(xv * w[std::size_t(o * 784 + k)]);
                }
                ref += bias[std::size_t(o)];
                if (c.epilogue == Activation::Relu) ref = std::max(ref, 0.0);
                QVERIFY2(std::fabs(ref - y[std::size_t(n * 64 + o)]) <= kFp8GemmTol * mag,
                         qPrintable(QString("row %1 out %2: %3 vs %4").arg(n).arg(o).arg(ref).arg(y[std::size_t(n * 64 + o)])));
            }
        std::unique_ptr<Model> copy;
        QVERIFY(test::reloadsIdentically(*fx.model, fx.data.test, "fp8.safetensors", &copy));
        QCOMPARE(copy->parameterBytes(), fx.model->parameterBytes());
        // The codes are real E4M3 bytes in the file.
        const SafetensorsFile file = readSafetensors(test::tempDir() + "/fp8.safetensors");
        bool sawPacked = false;
        for (const auto& [name, t] : file.tensors)
            if (name == "layers.1.weight_packed") {
                QCOMPARE(t.dtype(), DType::F8E4M3);
                QCOMPARE(t.shape(), (Shape{64, 784}));
                sawPacked = true;
            }
        QVERIFY(sawPacked);
    }

    void doubleQuantizedNf4StoresLessAndReloads() {
        test::ContextFixture plainFx("mlp-784-64-10"), fx("mlp-784-64-10");
        apply(plainFx, "quantize.nf4", quick("quantize.nf4"));
        apply(fx, "quantize.nf4", quick("quantize.nf4", {{"double_quant", true}}));
        // group 64: layer 784 -> 64 has 64 x 13 absmax, 64 -> 10 has 10 x 1; each 4 bytes plain, 1 byte double-
        // quantized plus 4 per block of 256 and the 4-byte offset.
        const std::uint64_t plainScales = (64 * 13 + 10) * 4;
        const std::uint64_t dqScales = (64 * 13) + 4 * 4 + 4 + 10 + 4 + 4; // 832 codes: 4 blocks
        QCOMPARE(plainFx.model->parameterBytes() - fx.model->parameterBytes(), plainScales - dqScales);
        QVERIFY(fx.notes.at("quantization").find("double-quantized") != std::string::npos);
        const auto plain = test::firstLogits(*plainFx.model, plainFx.data.test);
        const auto dq = test::firstLogits(*fx.model, fx.data.test);
        QVERIFY2(test::relativeDiff(plain, dq) < 0.02, qPrintable(QString::number(test::relativeDiff(plain, dq))));
        // The kernel runs from the codes: the layer's output follows its decoded weight.
        Backend& be = *cpuBackend();
        Layer& first = ModelEditor(*fx.model).layer("layers.1");
        QVERIFY(quantizedLinearConfig(first).weights.doubleQuant);
        const std::vector<float> w = dequantizedWeight(be, first);
        const auto batches = makeInputBatches(be, *fx.model, fx.data.test, 2, 1);
        const Tensor x = batches[0].view({2, 784});
        const std::vector<float> y = be.downloadF32(first.forward(be, x, ForwardContext{}));
        const std::vector<float> xs = be.downloadF32(x);
        std::vector<float> bias;
        for (Parameter* p : first.parameters()) bias = be.downloadF32(p->value);
        for (int n = 0; n < 2; ++n)
            for (int o = 0; o < 64; ++o) {
                double ref = bias[std::size_t(o)], mag = std::fabs(ref);
                for (int k = 0; k < 784; ++k) {
                    ref += double(xs[std::size_t(n * 784 + k)]) * w[std::size_t(o * 784 + k)];
                    mag += std::fabs(double(xs[std::size_t(n * 784 + k)]) * w[std::size_t(o * 784 + k)]);
                }
                if (quantizedLinearConfig(first).epilogue == Activation::Relu) ref = std::max(ref, 0.0);
                QVERIFY2(std::fabs(ref - y[std::size_t(n * 64 + o)]) <= kFp8GemmTol * mag + 1e-6,
                         qPrintable(QString("row %1 out %2").arg(n).arg(o)));
            }
        std::unique_ptr<Model> copy;
        QVERIFY(test::reloadsIdentically(*fx.model, fx.data.test, "nf4dq.safetensors", &copy));
        QCOMPARE(copy->parameterBytes(), fx.model->parameterBytes());
    }

    void missingScalesAreNamed_data() {
        QTest::addColumn<QString>("strategy");
        QTest::addColumn<QString>("tensor");
        QTest::addColumn<bool>("truncate");
        QTest::newRow("fp8 without its scales") << "quantize.fp8" << "layers.1.weight_scale" << false;
        QTest::newRow("fp8 codes cut short") << "quantize.fp8" << "layers.3.weight_packed" << true;
        QTest::newRow("nf4 dq without block absmax") << "quantize.nf4" << "layers.1.weight_scale_absmax" << false;
        QTest::newRow("nf4 dq without offset") << "quantize.nf4" << "layers.3.weight_scale_offset" << false;
        QTest::newRow("nf4 dq scale codes cut short") << "quantize.nf4" << "layers.1.weight_scale_packed" << true;
    }
    void missingScalesAreNamed() {
        QFETCH(QString, strategy);
        QFETCH(QString, tensor);
        QFETCH(bool, truncate);
        test::ContextFixture fx("mlp-784-64-10");
        if (strategy == "quantize.fp8") apply(fx, "quantize.fp8", quick("quantize.fp8", {{"simulate", true}}));
        else apply(fx, "quantize.nf4", quick("quantize.nf4", {{"double_quant", true}}));
        const std::string good = test::tempDir() + "/good.safetensors";
        saveModel(*fx.model, good);
        const SafetensorsFile file = readSafetensors(good);
        std::vector<std::pair<std::string, Tensor>> tensors;
        bool found = false;
        for (const auto& [name, t] : file.tensors) {
            if (name != tensor.toStdString()) {
                tensors.push_back({name, t});
                continue;
            }
            found = true;
            if (!truncate) continue;
            Tensor cut = Tensor::host({t.dim(0) - 1, t.dim(1)}, t.dtype());
            std::memcpy(cut.data(), t.data(), cut.bytes());
            tensors.push_back({name, cut});
        }
        QVERIFY2(found, qPrintable("no tensor " + tensor));
        const std::string bad = test::tempDir() + "/bad.safetensors";
        writeSafetensors(bad, tensors, file.metadata);
        try {
            loadModel(bad);
            QFAIL("a malformed quantized file loaded");
        } catch (const DataError& e) {
            QVERIFY2(std::string(e.what()).find(tensor.toStdString()) != std::string::npos, e.what());
        }
    }

    void badCombinationsAreRefused() {
        // double_quant belongs to nf4; fp8's GEMM takes per-channel scales and dynamic activations only.
        for (const auto& [layer, needle] :
             std::vector<std::pair<nlohmann::json, std::string>>{
                 {{{"type", "qlinear"}, {"in", 8}, {"out", 4}, {"weights", "int4"}, {"double_quant", true}}, "/double_quant"},
                 {{{"type", "qlinear"}, {"in", 8}, {"out", 4}, {"weights", "fp8"}, {"activations", "static"}}, "/activations"},
                 {{{"type", "qlinear"}, {"in", 8}, {"out", 4}, {"weights", "fp8"}, {"activations", "dynamic"}, {"group", 4}},
                  "/group"}}) {
            const std::string msg = test::errorOf<ConfigError>([&] { makeLayer(layer); });
            QVERIFY2(msg.find(needle) != std::string::npos, msg.c_str());
        }
    }
};

QTEST_MAIN(TestQuantizeFp8)
#include "test_quantize_fp8.moc"

// One forward + backward of whole models checked against PyTorch 1.13 (Debian python3-torch), run as
// /usr/bin/python3 tests/tools/nn_reference.py: same weights and buffers under the same names, same raw pixels,
// the preprocessing of the architecture, mean cross-entropy; two earlier training-mode batches first, so
// BatchNorm's running statistics are compared after three updates, and an evaluation-mode forward after the
// step (BatchNorm on its running statistics). Skipped (77) where torch is missing.
#include "engine/backends/registry.h"
#include "engine/data/dataset.h"
#include "engine/nn/model.h"
#include "engine/io/zoo.h"
#include "tests/support/test_support.h"

#include <QProcess>
#include <QtTest>

#include <cmath>
#include <fstream>
#include <numeric>

using namespace lathe;
using namespace lathe::test;

namespace {

constexpr const char* kPython = "/usr/bin/python3";

bool torchAvailable(QString* why) {
    QProcess p;
    p.start(kPython, {"-c", "import torch"});
    if (!p.waitForFinished(120000) || p.exitStatus() != QProcess::NormalExit || p.exitCode() != 0) {
        *why = QString("%1 cannot import torch (Debian package python3-torch): %2")
                   .arg(kPython, QString::fromLocal8Bit(p.readAllStandardError()).trimmed());
        return false;
    }
    return true;
}

const char* kMixed = R"({"name":"mixed","input":{"shape":[2,9,8],"scale":0.00392156862745098,"mean":0.5,"std":0.25},
  "classes":5,"layers":[
    {"type":"conv2d","in":2,"out":4,"kernel":[3,2],"stride":[1,2],"padding":1},{"type":"gelu"},
    {"type":"maxpool2d","kernel":3,"stride":2,"padding":1},{"type":"flatten"},
    {"type":"linear","in":60,"out":16,"bias":false},{"type":"layernorm","dim":16,"eps":0.0001},{"type":"relu"},
    {"type":"linear","in":16,"out":5}]})";

// Grouped convolutions off the zoo's path: 2 groups of 2 channels (a GEMM per group) with a rectangular
// stride, then a depthwise one with a channel multiplier of 2 and no bias.
const char* kGrouped = R"({"name":"grouped","input":{"shape":[4,9,8],"scale":0.00392156862745098,"mean":0.5,"std":0.25},
  "classes":5,"layers":[
    {"type":"conv2d","in":4,"out":6,"kernel":3,"stride":[2,1],"padding":1,"groups":2},{"type":"gelu"},
    {"type":"conv2d","in":6,"out":12,"kernel":[2,3],"padding":[0,1],"groups":6,"bias":false},{"type":"relu"},
    {"type":"flatten"},{"type":"linear","in":384,"out":5}]})";

const char* kEmbedding = R"({"name":"bag","input":{"shape":[6]},"classes":4,"layers":[
    {"type":"embedding","num":50,"dim":8},{"type":"layernorm","dim":8},{"type":"flatten"},
    {"type":"linear","in":48,"out":4}]})";

// A residual MLP: blocks nest, and PyTorch's strict state-dict loading checks the parameter names.
const char* kResidual = R"({"name":"residual","input":{"shape":[1,6,6],"scale":0.00392156862745098,"mean":0.3,"std":0.4},
  "classes":4,"layers":[{"type":"flatten"},{"type":"linear","in":36,"out":12},{"type":"gelu"},
    {"type":"residual","layers":[{"type":"linear","in":12,"out":20},{"type":"relu"},{"type":"linear","in":20,"out":12}]},
    {"type":"residual","layers":[{"type":"sequential","layers":[{"type":"layernorm","dim":12},
      {"type":"linear","in":12,"out":12,"bias":false}]},{"type":"gelu"}]},
    {"type":"linear","in":12,"out":4}]})";

// BatchNorm2d in training and evaluation mode, with its own eps and momentum and inside a residual block (the
// buffers' names nest like the parameters'). A conv bias right before a norm has a zero gradient (the norm removes
// the mean), which no relative error can compare, so the first conv has none, as in torchvision, and the one in the
// block is followed by a relu before its norm.
const char* kBatchNorm = R"({"name":"bn","input":{"shape":[2,9,8],"scale":0.00392156862745098,"mean":0.5,"std":0.25},
  "classes":5,"layers":[
    {"type":"conv2d","in":2,"out":4,"kernel":3,"padding":1,"bias":false},
    {"type":"batchnorm2d","features":4,"eps":0.001,"momentum":0.2},{"type":"relu"},
    {"type":"residual","layers":[{"type":"conv2d","in":4,"out":4,"kernel":3,"padding":1},{"type":"relu"},
      {"type":"batchnorm2d","features":4}]},
    {"type":"maxpool2d","kernel":2},{"type":"flatten"},{"type":"linear","in":64,"out":5}]})";

std::vector<float> jsonFloats(const nlohmann::json& j) { return j.get<std::vector<float>>(); }

} // namespace

class TestTorchReference : public QObject {
    Q_OBJECT

private slots:
    void forwardBackward_data();
    void forwardBackward();
};

void TestTorchReference::forwardBackward_data() {
    QTest::addColumn<QString>("architecture");
    QTest::addColumn<int>("batch");
    QTest::newRow("mlp-784-256-128-10") << QString::fromStdString(zooArchitecture("mlp-784-256-128-10").dump()) << 5;
    // The zoo CNN with p = 0: Lathe's and PyTorch's dropout masks come from different generators.
    auto cnn = zooArchitecture("cnn-2conv");
    for (auto& l : cnn["layers"])
        if (l["type"] == "dropout") l["p"] = 0.0;
    QTest::newRow("cnn-2conv") << QString::fromStdString(cnn.dump()) << 3;
    QTest::newRow("mixed") << QString(kMixed) << 4;
    QTest::newRow("cnn-dws") << QString::fromStdString(zooArchitecture("cnn-dws").dump()) << 3;
    auto cnnBn = zooArchitecture("cnn-bn");
    for (auto& l : cnnBn["layers"])
        if (l["type"] == "dropout") l["p"] = 0.0;
    QTest::newRow("cnn-bn") << QString::fromStdString(cnnBn.dump()) << 3;
    QTest::newRow("batchnorm") << QString(kBatchNorm) << 4;
    QTest::newRow("grouped") << QString(kGrouped) << 4;
    QTest::newRow("embedding") << QString(kEmbedding) << 3;
    QTest::newRow("residual") << QString(kResidual) << 5;
}

// Both sides compute in float32 with different summation orders (OpenBLAS and loops vs PyTorch's
// kernels): forward sums of up to 3,136 products agree to ~1e-6 relative; the backward compounds a
// few such steps. Bounds: 1e-5 for logits and loss, 1e-4 for gradients; a wrong layout (a transposed
// weight, a different padding or pooling window) gives errors of order 1.
void TestTorchReference::forwardBackward() {
    QFETCH(QString, architecture);
    QFETCH(int, batch);
    Backend& be = *cpuBackend();
    const auto arch = nlohmann::json::parse(architecture.toStdString());
    auto model = Model::fromArchitecture(arch);
    model->initialize(be, 2024);
    const std::int64_t n = batch;
    const std::int64_t classes = model->numClasses();
    Shape xs = {n};
    xs.insert(xs.end(), model->inputShape().begin(), model->inputShape().end());
    const bool ids = arch["layers"][0]["type"] == "embedding";

    nlohmann::json doc;
    doc["architecture"] = model->architecture();
    doc["input_shape"] = xs;
    const auto labels = randomLabels(static_cast<std::size_t>(n), static_cast<int>(classes), 7);
    doc["labels"] = labels;
    for (const auto& nb : model->namedBuffers()) {
        const Tensor& v = nb.buffer->value;
        if (v.dtype() == DType::I64) doc["buffers"][nb.name] = {{"shape", v.shape()}, {"data", std::vector<std::int64_t>{*v.ptr<std::int64_t>()}}};
        else doc["buffers"][nb.name] = {{"shape", v.shape()}, {"data", be.downloadF32(v)}};
    }
    Tensor x;
    Rng rng(11);
    // Raw pixels through the architecture's preprocessing, as training feeds them.
    auto pixelBatch = [&](std::vector<std::uint8_t>& pixels) {
        Dataset d;
        d.name = "random";
        d.sampleShape = model->inputShape();
        d.numClasses = static_cast<int>(classes);
        d.pixels.resize(static_cast<std::size_t>(numel(xs)));
        for (auto& p : d.pixels) p = static_cast<std::uint8_t>(rng.below(256));
        d.labels = labels;
        std::vector<std::int64_t> idx(static_cast<std::size_t>(n));
        std::iota(idx.begin(), idx.end(), std::int64_t{0});
        std::vector<float> xf(d.pixels.size());
        std::vector<std::int32_t> y(static_cast<std::size_t>(n));
        makeBatch(d, idx, model->preprocess(), xf.data(), y.data());
        pixels = d.pixels;
        return be.upload(xf, xs);
    };
    ForwardContext ctx;
    ctx.training = true;
    ctx.seed = 1;
    ctx.step = 1;
    if (!ids)
        for (int k = 0; k < 2; ++k) { // earlier batches: they move the running statistics only
            std::vector<std::uint8_t> pixels;
            model->forward(pixelBatch(pixels), ctx);
            model->releaseCache();
            doc["warmup_pixels"].push_back(pixels);
        }
    if (ids) {
        std::vector<std::int32_t> v(static_cast<std::size_t>(numel(xs)));
        for (auto& id : v) id = static_cast<std::int32_t>(rng.below(50));
        doc["ids"] = v;
        x = be.uploadI32(v, xs);
    } else {
        std::vector<std::uint8_t> pixels;
        x = pixelBatch(pixels);
        doc["pixels"] = pixels;
    }
    for (const auto& np : model->namedParameters())
        doc["params"][np.name] = {{"shape", np.param->value.shape()}, {"data", be.downloadF32(np.param->value)}};

    // Lathe: forward, mean cross-entropy, backward layer by layer (keeping the input gradient).
    model->zeroGrad();
    Tensor logits = model->forward(x, ctx);
    Tensor losses = be.empty({n});
    Tensor dlogits = be.empty({n, classes});
    Tensor yl = be.uploadI32(labels, {n});
    be.softmaxCrossEntropy(logits, yl, losses, dlogits, 1.0f / static_cast<float>(n));
    Tensor d = dlogits;
    for (auto it = model->layers().rbegin(); it != model->layers().rend() && d.defined(); ++it)
        d = (*it)->backward(be, d);
    model->releaseCache();
    const auto evalLogits = be.downloadF32(model->forward(x, ForwardContext{}));
    const auto lossValues = be.downloadF32(losses);
    const double loss = std::accumulate(lossValues.begin(), lossValues.end(), 0.0) / static_cast<double>(n);

    const QString dir = QString::fromStdString(tempDir());
    const QString in = dir + "/case_" + QTest::currentDataTag() + ".json";
    const QString out = dir + "/ref_" + QTest::currentDataTag() + ".json";
    std::ofstream(in.toStdString()) << doc.dump();
    QProcess py;
    py.start(kPython, {QString::fromStdString(sourcePath("tests/tools/nn_reference.py")), in, out});
    QVERIFY(py.waitForFinished(300000));
    QVERIFY2(py.exitCode() == 0, qPrintable(QString::fromLocal8Bit(py.readAllStandardError())));
    nlohmann::json ref;
    std::ifstream(out.toStdString()) >> ref;

    const double eLogits = normalizedError(be.downloadF32(logits), jsonFloats(ref["logits"]));
    QVERIFY2(eLogits < 1e-5, qPrintable(QString("logits: normalized error %1").arg(eLogits)));
    QVERIFY2(std::abs(loss - ref["loss"].get<double>()) < 1e-5 * std::max(1.0, loss),
             qPrintable(QString("loss %1 vs PyTorch %2").arg(loss).arg(ref["loss"].get<double>())));
    if (!ids) {
        QVERIFY(normalizedError(be.downloadF32(x), jsonFloats(ref["input"])) < 1e-6); // preprocessing
        const double eDx = normalizedError(be.downloadF32(d), jsonFloats(ref["input_grad"]));
        QVERIFY2(eDx < 1e-4, qPrintable(QString("input gradient: normalized error %1").arg(eDx)));
    }
    const double eEval = normalizedError(evalLogits, jsonFloats(ref["eval_logits"]));
    QVERIFY2(eEval < 1e-5, qPrintable(QString("evaluation logits: normalized error %1").arg(eEval)));
    // Running statistics after three training forwards: per-channel sums of up to 2,352 values, in double here
    // and in float in PyTorch, agree to ~1e-7 relative; 1e-5 leaves margin and catches a biased variance
    // (a factor M / (M - 1) off) or a wrong momentum.
    QCOMPARE(ref["buffers"].size(), model->namedBuffers().size());
    for (const auto& nb : model->namedBuffers()) {
        QVERIFY2(ref["buffers"].contains(nb.name), nb.name.c_str());
        const Tensor& v = nb.buffer->value;
        if (v.dtype() == DType::I64) {
            QCOMPARE(*v.ptr<std::int64_t>(), ref["buffers"][nb.name][0].get<std::int64_t>());
            QCOMPARE(*v.ptr<std::int64_t>(), std::int64_t(3));
            continue;
        }
        const double e = normalizedError(be.downloadF32(v), jsonFloats(ref["buffers"][nb.name]));
        QVERIFY2(e < 1e-5, qPrintable(QString("%1: normalized error %2").arg(QString::fromStdString(nb.name)).arg(e)));
    }
    QCOMPARE(ref["grads"].size(), model->namedParameters().size());
    for (const auto& np : model->namedParameters()) {
        QVERIFY2(ref["grads"].contains(np.name), np.name.c_str());
        const double e = normalizedError(be.downloadF32(np.param->grad), jsonFloats(ref["grads"][np.name]));
        QVERIFY2(e < 1e-4, qPrintable(QString("%1: normalized error %2").arg(QString::fromStdString(np.name)).arg(e)));
    }
}

int main(int argc, char** argv) {
    QCoreApplication app(argc, argv);
    QString why;
    if (!torchAvailable(&why)) {
        std::fprintf(stderr, "SKIPPED: %s\n", qPrintable(why));
        return kSkipExitCode;
    }
    TestTorchReference tc;
    QTEST_SET_MAIN_SOURCE_PATH
    return lathe::test::execSuite(&tc, argc, argv);
}

#include "test_torch_reference.moc"

// Every layer's backward (input and parameter gradients), softmax cross-entropy, and whole models
// (the MLP and a tiny CNN) checked against central finite differences on the CPU backend.
#include "engine/backends/registry.h"
#include "engine/nn/layer.h"
#include "engine/nn/model.h"
#include "tests/nn/gradcheck_util.h"
#include "tests/support/test_support.h"

#include <QtTest>

#include <algorithm>
#include <numeric>

using namespace lathe;
using namespace lathe::test;

namespace {

enum class InputKind { Uniform, AwayFromZero, Distinct };

// Inputs that keep the finite differences away from kinks: ReLU inputs at least 0.1 from 0, max-pool
// inputs pairwise at least 0.02 apart, both much more than the step eps = 1e-2 (so x +- eps never
// changes which branch or which maximum is taken).
std::vector<float> makeInput(std::size_t n, InputKind kind, std::uint64_t seed) {
    std::vector<float> v = randomVector(n, seed);
    if (kind == InputKind::AwayFromZero) {
        for (auto& x : v) x = x >= 0 ? 0.1f + x : -0.1f + x;
    } else if (kind == InputKind::Distinct) {
        std::vector<std::size_t> order(n);
        std::iota(order.begin(), order.end(), std::size_t{0});
        Rng rng(seed);
        for (std::size_t i = n - 1; i > 0; --i) std::swap(order[i], order[rng.below(i + 1)]);
        for (std::size_t i = 0; i < n; ++i) v[order[i]] = -1.0f + 0.05f * static_cast<float>(i) / std::max<float>(1, n / 40.0f);
    }
    return v;
}

} // namespace

class TestGradcheck : public QObject {
    Q_OBJECT

private slots:
    void layerBackward_data();
    void layerBackward();
    void embeddingBackward();
    void softmaxCrossEntropy();
    void wholeModel_data();
    void wholeModel();
};

void TestGradcheck::layerBackward_data() {
    QTest::addColumn<QString>("config");
    QTest::addColumn<QString>("inputShape");
    QTest::addColumn<int>("inputKind");

    auto row = [](const char* name, const char* cfg, const char* shape, InputKind kind) {
        QTest::newRow(name) << QString(cfg) << QString(shape) << static_cast<int>(kind);
    };
    row("linear", R"({"type":"linear","in":5,"out":4})", "[3,5]", InputKind::Uniform);
    row("linear-no-bias", R"({"type":"linear","in":6,"out":3,"bias":false})", "[4,6]", InputKind::Uniform);
    row("linear-3d", R"({"type":"linear","in":5,"out":2})", "[2,3,5]", InputKind::Uniform);
    row("conv2d-pad1", R"({"type":"conv2d","in":2,"out":3,"kernel":3,"padding":1})", "[2,2,5,5]", InputKind::Uniform);
    row("conv2d-stride2-rect", R"({"type":"conv2d","in":2,"out":2,"kernel":[3,2],"stride":2})", "[2,2,7,6]",
        InputKind::Uniform);
    row("conv2d-1x1-no-bias", R"({"type":"conv2d","in":3,"out":2,"kernel":1,"bias":false})", "[1,3,3,4]",
        InputKind::Uniform);
    // Grouped: the GEMM-per-group path (2 input channels per group) and the depthwise loops (one), with a
    // channel multiplier, a stride and a rectangular kernel.
    row("conv2d-groups2", R"({"type":"conv2d","in":4,"out":6,"kernel":3,"padding":1,"groups":2})", "[2,4,5,5]",
        InputKind::Uniform);
    row("conv2d-depthwise-stride2", R"({"type":"conv2d","in":3,"out":3,"kernel":3,"stride":2,"padding":1,"groups":3})",
        "[2,3,6,7]", InputKind::Uniform);
    row("conv2d-depthwise-x2-rect-no-bias",
        R"({"type":"conv2d","in":2,"out":4,"kernel":[3,2],"padding":[1,0],"groups":2,"bias":false})", "[2,2,5,4]",
        InputKind::Uniform);
    row("maxpool2d-2", R"({"type":"maxpool2d","kernel":2})", "[2,3,4,4]", InputKind::Distinct);
    row("maxpool2d-3-s2-p1", R"({"type":"maxpool2d","kernel":3,"stride":2,"padding":1})", "[1,2,5,5]",
        InputKind::Distinct);
    row("relu", R"({"type":"relu"})", "[3,7]", InputKind::AwayFromZero);
    row("gelu", R"({"type":"gelu"})", "[3,7]", InputKind::Uniform);
    row("dropout", R"({"type":"dropout","p":0.4})", "[4,6]", InputKind::Uniform);
    row("flatten", R"({"type":"flatten"})", "[2,3,2,2]", InputKind::Uniform);
    row("layernorm", R"({"type":"layernorm","dim":6})", "[4,6]", InputKind::Uniform);
    row("layernorm-3d-eps", R"({"type":"layernorm","dim":5,"eps":0.001})", "[2,3,5]", InputKind::Uniform);
    // BatchNorm2d in training mode: the batch statistics depend on every input, so each input's gradient has the
    // terms through the mean and variance; one with a single value per channel per sample (1x1 maps).
    row("batchnorm2d", R"({"type":"batchnorm2d","features":3})", "[4,3,3,5]", InputKind::Uniform);
    row("batchnorm2d-1x1-eps", R"({"type":"batchnorm2d","features":5,"eps":0.01,"momentum":0.5})", "[6,5,1,1]",
        InputKind::Uniform);
    // Blocks: the input gradient is the sum of the identity path and the path through the sub-layers.
    row("sequential", R"({"type":"sequential","layers":[{"type":"linear","in":5,"out":4},{"type":"gelu"},
        {"type":"linear","in":4,"out":3}]})", "[3,5]", InputKind::Uniform);
    row("residual-linear-gelu", R"({"type":"residual","layers":[{"type":"linear","in":5,"out":5},{"type":"gelu"}]})",
        "[3,5]", InputKind::Uniform);
    row("residual-nested", R"({"type":"residual","layers":[{"type":"sequential","layers":[
        {"type":"linear","in":6,"out":4},{"type":"gelu"},{"type":"linear","in":4,"out":6}]},
        {"type":"layernorm","dim":6}]})", "[2,3,6]", InputKind::Uniform);
    row("residual-conv", R"({"type":"residual","layers":[{"type":"conv2d","in":2,"out":2,"kernel":3,"padding":1}]})",
        "[2,2,4,4]", InputKind::Uniform);
}

// Objective L = sum(layer(x) * r) for a fixed random r, so dL/dy = r is what backward receives.
// Step eps = 1e-2: the layers are linear or smooth away from kinks (see makeInput), so truncation error
// is at most eps^2/6 * |f'''| ~ 2e-5 (GELU, LayerNorm); float rounding of the forward (~6e-8 relative
// per element, summed in double over <= 150 outputs) divided by 2 eps adds < 1e-4. A normalized
// error of 2e-3 is therefore an order of magnitude above the noise and far below any real bug
// (a wrong index or a missing term gives errors of order 1).
void TestGradcheck::layerBackward() {
    QFETCH(QString, config);
    QFETCH(QString, inputShape);
    QFETCH(int, inputKind);
    Backend& be = *cpuBackend();
    const double eps = 1e-2, tol = 2e-3;

    auto layer = makeLayer(nlohmann::json::parse(config.toStdString()));
    layer->index = 3;
    Rng rng(7);
    layer->initialize(be, rng);
    // Random parameters (not LayerNorm's ones and zeros) so every term of the gradient is exercised.
    std::uint64_t pseed = 100;
    for (Parameter* p : layer->parameters()) {
        p->value = be.upload(randomVector(static_cast<std::size_t>(p->value.numel()), pseed++, -0.8f, 0.8f),
                             p->value.shape());
        p->grad = be.zeros(p->value.shape());
    }
    const Shape xs = nlohmann::json::parse(inputShape.toStdString()).get<Shape>();
    Tensor x = be.upload(makeInput(static_cast<std::size_t>(numel(xs)), static_cast<InputKind>(inputKind), 11), xs);

    ForwardContext ctx;
    ctx.training = true;
    ctx.seed = 1234;
    ctx.step = 5;
    Tensor y = layer->forward(be, x, ctx);
    QCOMPARE(y.shape(), layer->outputShape(xs));
    const std::vector<float> r = randomVector(static_cast<std::size_t>(y.numel()), 23);
    Tensor dx = layer->backward(be, be.upload(r, y.shape()));
    QCOMPARE(dx.shape(), xs);
    const std::vector<float> analyticDx = be.downloadF32(dx);

    // Training forwards with the same context reuse the same dropout mask, so L is a fixed function.
    auto objective = [&]() {
        Tensor out = layer->forward(be, x, ctx);
        return dotDouble(be.downloadF32(out), r);
    };
    const std::vector<float> numericDx = numericGradient(be, x, eps, objective);
    const double errX = normalizedError(analyticDx, numericDx);
    QVERIFY2(errX < tol, qPrintable(QString("input gradient: normalized error %1").arg(errX)));

    for (Parameter* p : layer->parameters()) {
        const std::vector<float> analytic = be.downloadF32(p->grad);
        const std::vector<float> numeric = numericGradient(be, p->value, eps, objective);
        const double err = normalizedError(analytic, numeric);
        QVERIFY2(err < tol, qPrintable(QString("gradient of %1: normalized error %2")
                                           .arg(QString::fromStdString(p->name))
                                           .arg(err)));
    }

    // Parameter gradients accumulate: a second backward doubles them.
    if (!layer->parameters().empty()) {
        Parameter* p = layer->parameters()[0];
        const std::vector<float> once = be.downloadF32(p->grad);
        layer->forward(be, x, ctx);
        layer->backward(be, be.upload(r, y.shape()));
        const std::vector<float> twice = be.downloadF32(p->grad);
        std::vector<float> doubled(once.size());
        for (std::size_t i = 0; i < once.size(); ++i) doubled[i] = 2 * once[i];
        QVERIFY(normalizedError(twice, doubled) < 1e-6);
    }
    if (config.contains("dropout")) {
        // Some units dropped, some kept and scaled by 1 / (1 - p).
        const std::vector<float> xv = be.downloadF32(x), yv = be.downloadF32(y);
        int dropped = 0, kept = 0;
        for (std::size_t i = 0; i < xv.size(); ++i) {
            if (yv[i] == 0.0f) ++dropped;
            else if (std::abs(yv[i] - xv[i] / 0.6f) < 1e-5f) ++kept;
        }
        QVERIFY(dropped > 0);
        QCOMPARE(dropped + kept, static_cast<int>(xv.size()));
    }
}

// Embedding: ids have no gradient; the table's gradient is checked, with repeated ids (scatter-add).
void TestGradcheck::embeddingBackward() {
    Backend& be = *cpuBackend();
    auto layer = makeLayer(nlohmann::json::parse(R"({"type":"embedding","num":7,"dim":4})"));
    Rng rng(3);
    layer->initialize(be, rng);
    Parameter* table = layer->parameters().at(0);
    table->grad = be.zeros(table->value.shape());
    const std::vector<std::int32_t> ids = {1, 4, 4, 0, 6, 1};
    Tensor x = be.uploadI32(ids, {2, 3});
    ForwardContext ctx;
    ctx.training = true;
    Tensor y = layer->forward(be, x, ctx);
    QCOMPARE(y.shape(), (Shape{2, 3, 4}));
    const std::vector<float> r = randomVector(24, 5);
    QVERIFY(!layer->backward(be, be.upload(r, y.shape())).defined());
    auto objective = [&]() { return dotDouble(be.downloadF32(layer->forward(be, x, ctx)), r); };
    const double err = normalizedError(be.downloadF32(table->grad), numericGradient(be, table->value, 1e-2, objective));
    QVERIFY2(err < 1e-3, qPrintable(QString("normalized error %1").arg(err)));
    // Rows 2, 3 and 5 are never looked up: their gradient is exactly zero.
    const std::vector<float> g = be.downloadF32(table->grad);
    for (int row : {2, 3, 5})
        for (int k = 0; k < 4; ++k) QCOMPARE(g[static_cast<std::size_t>(row * 4 + k)], 0.0f);
}

// Mean cross-entropy over the batch: dlogits with gradScale 1/N is the gradient of the mean loss.
// Tolerance as in layerBackward (smooth function, eps = 1e-2, truncation ~1e-5).
void TestGradcheck::softmaxCrossEntropy() {
    Backend& be = *cpuBackend();
    const std::int64_t n = 5, c = 7;
    Tensor logits = be.upload(randomVector(n * c, 41, -3.0f, 3.0f), {n, c});
    Tensor labels = be.uploadI32(randomLabels(n, c, 42), {n});
    Tensor losses = be.empty({n});
    Tensor dlogits = be.empty({n, c});
    be.softmaxCrossEntropy(logits, labels, losses, dlogits, 1.0f / n);
    const std::vector<float> analytic = be.downloadF32(dlogits);
    auto meanLoss = [&]() {
        Tensor l = be.empty({n});
        Tensor d = be.empty({n, c});
        be.softmaxCrossEntropy(logits, labels, l, d, 1.0f / n);
        const auto v = be.downloadF32(l);
        return std::accumulate(v.begin(), v.end(), 0.0) / n;
    };
    const double err = normalizedError(analytic, numericGradient(be, logits, 1e-2, meanLoss));
    QVERIFY2(err < 2e-3, qPrintable(QString("normalized error %1").arg(err)));
    // Each row of the gradient sums to zero (softmax minus a one-hot).
    for (std::int64_t i = 0; i < n; ++i) {
        double s = 0;
        for (std::int64_t j = 0; j < c; ++j) s += analytic[static_cast<std::size_t>(i * c + j)];
        QVERIFY(std::abs(s) < 1e-6);
    }
}

void TestGradcheck::wholeModel_data() {
    QTest::addColumn<QString>("architecture");
    QTest::addColumn<int>("batch");
    // The zoo MLP's layer sequence at a small width.
    QTest::newRow("mlp") << QString(R"({"name":"mlp-small","input":{"shape":[1,4,4],"scale":1,"mean":0,"std":1},
        "classes":5,"layers":[{"type":"flatten"},{"type":"linear","in":16,"out":12},{"type":"relu"},
        {"type":"linear","in":12,"out":8},{"type":"relu"},{"type":"linear","in":8,"out":5}]})")
                         << 6;
    // The zoo CNN's layer sequence (conv, relu, pool twice, flatten, linear, relu, dropout, linear), tiny.
    QTest::newRow("cnn") << QString(R"({"name":"cnn-tiny","input":{"shape":[1,8,8],"scale":1,"mean":0,"std":1},
        "classes":4,"layers":[{"type":"conv2d","in":1,"out":2,"kernel":3,"padding":1},{"type":"relu"},
        {"type":"maxpool2d","kernel":2},{"type":"conv2d","in":2,"out":3,"kernel":3,"padding":1},{"type":"relu"},
        {"type":"maxpool2d","kernel":2},{"type":"flatten"},{"type":"linear","in":12,"out":6},{"type":"relu"},
        {"type":"dropout","p":0.25},{"type":"linear","in":6,"out":4}]})")
                         << 3;
    // The cnn-dws sequence (conv, pool, depthwise, pointwise, pool, linear), tiny.
    QTest::newRow("cnn-dws") << QString(R"({"name":"dws-tiny","input":{"shape":[1,8,8],"scale":1,"mean":0,"std":1},
        "classes":4,"layers":[{"type":"conv2d","in":1,"out":3,"kernel":3,"padding":1},{"type":"relu"},
        {"type":"maxpool2d","kernel":2},{"type":"conv2d","in":3,"out":3,"kernel":3,"padding":1,"groups":3},
        {"type":"relu"},{"type":"conv2d","in":3,"out":4,"kernel":1},{"type":"relu"},{"type":"maxpool2d","kernel":2},
        {"type":"flatten"},{"type":"linear","in":16,"out":4}]})")
                             << 3;
    // The cnn-bn sequence (conv without bias, batchnorm2d, relu, pool, twice), tiny, in training mode.
    QTest::newRow("cnn-bn") << QString(R"({"name":"bn-tiny","input":{"shape":[1,8,8],"scale":1,"mean":0,"std":1},
        "classes":4,"layers":[{"type":"conv2d","in":1,"out":3,"kernel":3,"padding":1,"bias":false},
        {"type":"batchnorm2d","features":3},{"type":"relu"},{"type":"maxpool2d","kernel":2},
        {"type":"conv2d","in":3,"out":4,"kernel":3,"padding":1,"bias":false},{"type":"batchnorm2d","features":4},
        {"type":"relu"},{"type":"maxpool2d","kernel":2},{"type":"flatten"},{"type":"linear","in":16,"out":4}]})")
                            << 4;
    // A residual MLP as a transformer block's feed-forward half stacks them: blocks with nested sequences.
    QTest::newRow("residual-mlp") << QString(R"({"name":"residual-small","input":{"shape":[1,4,4],"scale":1,"mean":0,
        "std":1},"classes":5,"layers":[{"type":"flatten"},{"type":"linear","in":16,"out":8},
        {"type":"residual","layers":[{"type":"linear","in":8,"out":8},{"type":"relu"},{"type":"linear","in":8,"out":8}]},
        {"type":"relu"},{"type":"residual","layers":[{"type":"sequential","layers":[{"type":"linear","in":8,"out":8},
        {"type":"gelu"}]},{"type":"layernorm","dim":8}]},{"type":"linear","in":8,"out":5}]})")
                                  << 6;
}

// End to end: mean cross-entropy of the model's logits vs every parameter, eps = 1e-3. Float rounding of
// a loss of order 1 (~1e-7) over 2 eps gives gradient noise ~1e-4 against gradients of order 1e-2..1e-1.
// ReLU and max-pool kinks inside the model cannot all be steered away from; compareGradients() sets the
// few elements whose step crosses one aside (at most 2% of a tensor), and the rest must agree to 2e-2.
// That bound is set by the conv biases: a bias moves every spatial position of its channel, so its step
// crosses a few kinks by a little each (measured: 1e-2 on the first conv bias, 2e-3 or less on every
// weight tensor). A wrong backward (transposed weight, lost padding term, missing 1/N) is off by 1e-1 or more.
void TestGradcheck::wholeModel() {
    QFETCH(QString, architecture);
    QFETCH(int, batch);
    Backend& be = *cpuBackend();
    auto model = Model::fromArchitecture(nlohmann::json::parse(architecture.toStdString()));
    model->initialize(be, 17);
    Shape xs = {batch};
    xs.insert(xs.end(), model->inputShape().begin(), model->inputShape().end());
    Tensor x = be.upload(randomVector(static_cast<std::size_t>(numel(xs)), 19), xs);
    Tensor labels = be.uploadI32(randomLabels(static_cast<std::size_t>(batch), model->numClasses(), 20), {batch});
    const std::int64_t classes = model->numClasses();
    ForwardContext ctx;
    ctx.training = true;
    ctx.seed = 99;
    ctx.step = 1;

    auto meanLoss = [&](bool backward) {
        Tensor logits = model->forward(x, ctx);
        Tensor losses = be.empty({batch});
        Tensor dlogits = be.empty({batch, classes});
        be.softmaxCrossEntropy(logits, labels, losses, dlogits, 1.0f / static_cast<float>(batch));
        if (backward) model->backward(dlogits);
        const auto v = be.downloadF32(losses);
        return std::accumulate(v.begin(), v.end(), 0.0) / batch;
    };
    model->zeroGrad();
    meanLoss(true);
    std::size_t nonZero = 0;
    for (const auto& np : model->namedParameters()) {
        const auto a = be.downloadF32(np.param->grad);
        const auto num = numericGradient(be, np.param->value, 1e-3, [&] { return meanLoss(false); });
        const GradComparison c = compareGradients(a, num);
        const QString what = QString("%1: %2 of %3 elements off, normalized error of the rest %4")
                                 .arg(QString::fromStdString(np.name))
                                 .arg(c.outliers)
                                 .arg(c.count)
                                 .arg(c.inlierError);
        QVERIFY2(c.outliers <= std::max<std::size_t>(1, c.count / 50), qPrintable(what));
        QVERIFY2(c.inlierError < 2e-2, qPrintable(what));
        for (float g : a) nonZero += std::abs(g) > 1e-6f;
    }
    QVERIFY(nonZero > 0); // not trivially zero
}

QTEST_GUILESS_MAIN(TestGradcheck)
#include "test_gradcheck.moc"

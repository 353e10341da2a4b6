// Every CPU op checked against a naive double-precision reference written here, on seeded random
// inputs and several shapes (GEMM with each transpose, conv with stride/padding and groups, pooling, norms...).
#include "engine/backends/cpu/cpu_backend.h"
#include "engine/backends/csr.h"
#include "engine/core/errors.h"
#include "engine/core/rng.h"
#include "tests/support/test_support.h"

#include <QtTest>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <tuple>

Q_DECLARE_METATYPE(lathe::Shape)

using namespace lathe;
using lathe::test::maxAbsDiff;
using lathe::test::normalizedError;
using lathe::test::randomVector;

namespace {

// f32 results against double references: the error grows like sqrt(K) * 2^-24 for sums of K terms;
// 1e-5 leaves a wide margin for K up to a few thousand while catching any indexing mistake.
constexpr double kF32Tol = 1e-5;

std::vector<float> toF(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

double erfGelu(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }

} // namespace

class TestCpuOps : public QObject {
    Q_OBJECT
    std::shared_ptr<Backend> m_be = makeCpuBackend(2);

private slots:
    void gemm_data();
    void gemm();
    void gemmBetaZeroOverwritesNan();
    void spmmCsr_data();
    void spmmCsr();
    void spmmCsrRejectsBadInput();
    void biasAddAndGrad_data();
    void biasAddAndGrad();
    void elementwise();
    void activations_data();
    void activations();
    void dropoutMask_data();
    void dropoutMask();
    void softmaxAndCrossEntropy_data();
    void softmaxAndCrossEntropy();
    void crossEntropyRejectsBadLabels();
    void argmaxRows();
    void conv2d_data();
    void conv2d();
    void conv2dGrouped_data();
    void conv2dGrouped();
    void conv2dGroupedErrors_data();
    void conv2dGroupedErrors();
    void badGeometryThrows_data();
    void badGeometryThrows();
    void maxPool_data();
    void maxPool();
    void layerNorm_data();
    void layerNorm();
    void embedding();
};

void TestCpuOps::gemm_data() {
    QTest::addColumn<int>("m");
    QTest::addColumn<int>("n");
    QTest::addColumn<int>("k");
    QTest::addColumn<bool>("ta");
    QTest::addColumn<bool>("tb");
    QTest::addColumn<float>("alpha");
    QTest::addColumn<float>("beta");
    QTest::addColumn<int>("dtype");
    const int f32 = int(DType::F32), f16 = int(DType::F16), bf16 = int(DType::BF16);
    QTest::newRow("f32 NN 17x23x31") << 17 << 23 << 31 << false << false << 1.0f << 0.0f << f32;
    QTest::newRow("f32 NT 64x100x784 (linear)") << 64 << 100 << 784 << false << true << 1.0f << 0.0f << f32;
    QTest::newRow("f32 TN 33x65x129 beta") << 33 << 65 << 129 << true << false << 0.5f << 0.75f << f32;
    QTest::newRow("f32 TT 9x7x5") << 9 << 7 << 5 << true << true << -1.5f << 1.0f << f32;
    QTest::newRow("f32 m=1 NT (gemv)") << 1 << 256 << 784 << false << true << 1.0f << 0.0f << f32;
    QTest::newRow("f32 m=1 NN (gemv)") << 1 << 130 << 70 << false << false << 2.0f << 0.5f << f32;
    QTest::newRow("f32 m=1 TT (gemv)") << 1 << 40 << 30 << true << true << 1.0f << 0.0f << f32;
    QTest::newRow("f32 n=1 NN (gemv)") << 50 << 1 << 60 << false << false << 1.0f << 0.25f << f32;
    QTest::newRow("f32 n=1 TT (gemv)") << 50 << 1 << 60 << true << true << 1.0f << 0.0f << f32;
    QTest::newRow("f32 1x1x1") << 1 << 1 << 1 << false << false << 1.0f << 0.0f << f32;
    QTest::newRow("f32 k=0 scales c") << 4 << 5 << 0 << false << false << 1.0f << 0.5f << f32;
    QTest::newRow("f32 big 300x200x500") << 300 << 200 << 500 << false << true << 1.0f << 0.0f << f32;
    QTest::newRow("f16 NT 32x48x64") << 32 << 48 << 64 << false << true << 1.0f << 0.0f << f16;
    QTest::newRow("f16 TN beta 16x8x40") << 16 << 8 << 40 << true << false << 1.0f << 1.0f << f16;
    QTest::newRow("bf16 NN 20x30x50") << 20 << 30 << 50 << false << false << 1.0f << 0.0f << bf16;
    QTest::newRow("bf16 m=1 NT") << 1 << 64 << 96 << false << true << 1.0f << 0.0f << bf16;
}

void TestCpuOps::gemm() {
    QFETCH(int, m);
    QFETCH(int, n);
    QFETCH(int, k);
    QFETCH(bool, ta);
    QFETCH(bool, tb);
    QFETCH(float, alpha);
    QFETCH(float, beta);
    QFETCH(int, dtype);
    const DType dt = static_cast<DType>(dtype);
    const Shape sa = ta ? Shape{k, m} : Shape{m, k}, sb = tb ? Shape{n, k} : Shape{k, n};
    auto va = randomVector(static_cast<std::size_t>(m * k), 11), vb = randomVector(static_cast<std::size_t>(k * n), 12);
    auto vc = randomVector(static_cast<std::size_t>(m * n), 13);
    // The reference sees exactly the values the backend sees: inputs rounded to the dtype.
    const auto& tr = traits(dt);
    auto roundTo = [&](std::vector<float>& v) {
        if (v.empty()) return; // k = 0: nothing to round (and no pointer to hand to memcpy)
        std::vector<unsigned char> buf(storageBytes(dt, v.size()));
        tr.fromFloat(v.data(), buf.data(), v.size());
        tr.toFloat(buf.data(), v.data(), v.size());
    };
    roundTo(va), roundTo(vb), roundTo(vc);
    auto upload = [&](const std::vector<float>& v, const Shape& s) {
        Tensor f = m_be->upload(v, s);
        if (dt == DType::F32) return f;
        Tensor t = m_be->empty(s, dt);
        m_be->convert(f, t);
        return t;
    };
    Tensor a = upload(va, sa), b = upload(vb, sb), c = upload(vc, {m, n});
    m_be->gemm(a, ta ? Trans::Yes : Trans::No, b, tb ? Trans::Yes : Trans::No, c, alpha, beta);
    std::vector<double> ref(static_cast<std::size_t>(m * n));
    for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) {
            double s = 0;
            for (int p = 0; p < k; ++p) {
                const double x = ta ? va[p * m + i] : va[i * k + p];
                const double y = tb ? vb[j * k + p] : vb[p * n + j];
                s += x * y;
            }
            ref[i * n + j] = alpha * s + beta * vc[i * n + j];
        }
    // f16/bf16 round the f32-accumulated result once: relative error <= 2^-11 (f16), 2^-8 (bf16).
    const double tol = dt == DType::F32 ? kF32Tol : (dt == DType::F16 ? 1e-3 : 8e-3);
    const double err = normalizedError(m_be->downloadF32(c), toF(ref));
    QVERIFY2(err < tol, qPrintable(QString("normalized error %1 >= %2").arg(err).arg(tol)));
}

void TestCpuOps::gemmBetaZeroOverwritesNan() {
    // Fresh buffers from the allocator hold garbage; beta = 0 must overwrite NaN, not propagate it.
    for (int m : {1, 8}) {
        Tensor a = m_be->upload(randomVector(static_cast<std::size_t>(m) * 16, 1), {m, 16});
        Tensor b = m_be->upload(randomVector(16 * 8, 2), {8, 16});
        Tensor c = m_be->empty({m, 8});
        m_be->fill(c, std::numeric_limits<float>::quiet_NaN());
        m_be->gemm(a, Trans::No, b, Trans::Yes, c, 1.0f, 0.0f);
        for (float v : m_be->downloadF32(c)) QVERIFY(std::isfinite(v));
    }
}

void TestCpuOps::biasAddAndGrad_data() {
    QTest::addColumn<Shape>("shape");
    QTest::newRow("(1, 256)") << Shape{1, 256};
    QTest::newRow("(64, 10)") << Shape{64, 10};
    QTest::newRow("(3, 5, 4, 4)") << Shape{3, 5, 4, 4};
    QTest::newRow("(300, 300)") << Shape{300, 300};
    QTest::newRow("(64, 32, 28, 28)") << Shape{64, 32, 28, 28};
}

void TestCpuOps::biasAddAndGrad() {
    QFETCH(Shape, shape);
    const std::int64_t outer = shape[0], c = shape[1], inner = numel(shape) / (outer * c);
    auto vx = randomVector(static_cast<std::size_t>(numel(shape)), 21), vb = randomVector(static_cast<std::size_t>(c), 22);
    Tensor x = m_be->upload(vx, shape), bias = m_be->upload(vb, {c});
    m_be->biasAdd(x, bias);
    std::vector<double> ref(vx.size()), grad(static_cast<std::size_t>(c), 0.0);
    for (std::int64_t o = 0; o < outer; ++o)
        for (std::int64_t ch = 0; ch < c; ++ch)
            for (std::int64_t i = 0; i < inner; ++i) {
                const std::size_t idx = static_cast<std::size_t>((o * c + ch) * inner + i);
                ref[idx] = double(vx[idx]) + vb[ch];
                grad[ch] += vx[idx];
            }
    QVERIFY(normalizedError(m_be->downloadF32(x), toF(ref)) < kF32Tol);
    Tensor dy = m_be->upload(vx, shape), db = m_be->upload(vb, {c});
    m_be->biasGrad(dy, db, false);
    QVERIFY(normalizedError(m_be->downloadF32(db), toF(grad)) < kF32Tol);
    m_be->biasGrad(dy, db, true); // accumulates: twice the gradient
    for (auto& g : grad) g *= 2;
    QVERIFY(normalizedError(m_be->downloadF32(db), toF(grad)) < kF32Tol);
}

void TestCpuOps::elementwise() {
    for (std::int64_t n : {1, 7, 1000, 100003}) { // below and above the inline threshold
        auto va = randomVector(static_cast<std::size_t>(n), 31), vb = randomVector(static_cast<std::size_t>(n), 32);
        Tensor a = m_be->upload(va, {n}), b = m_be->upload(vb, {n}), out = m_be->empty({n});
        m_be->add(a, b, out);
        auto sum = m_be->downloadF32(out);
        m_be->mul(a, b, out);
        auto prod = m_be->downloadF32(out);
        m_be->axpy(-0.5f, a, b);
        auto ax = m_be->downloadF32(b);
        m_be->scale(a, 3.0f);
        auto sc = m_be->downloadF32(a);
        for (std::int64_t i = 0; i < n; ++i) {
            QCOMPARE(sum[i], va[i] + vb[i]);
            QCOMPARE(prod[i], va[i] * vb[i]);
            QVERIFY(std::abs(ax[i] - (vb[i] - 0.5 * va[i])) < 1e-6);
            QCOMPARE(sc[i], va[i] * 3.0f);
        }
    }
    Tensor a = m_be->zeros({4}), b = m_be->zeros({5}), out = m_be->zeros({4});
    QVERIFY_THROWS_EXCEPTION(BackendError, m_be->add(a, b, out));
}

void TestCpuOps::activations_data() {
    QTest::addColumn<qint64>("n");
    QTest::newRow("small") << qint64(9);
    QTest::newRow("batch-1 hidden") << qint64(256);
    QTest::newRow("large (threaded)") << qint64(200001);
}

void TestCpuOps::activations() {
    QFETCH(qint64, n);
    auto vx = randomVector(static_cast<std::size_t>(n), 41, -4.0f, 4.0f), vdy = randomVector(static_cast<std::size_t>(n), 42);
    Tensor x = m_be->upload(vx, {n}), dy = m_be->upload(vdy, {n}), y = m_be->empty({n}), dx = m_be->empty({n});
    std::vector<double> relu(vx.size()), drelu(vx.size()), gelu(vx.size()), dgelu(vx.size());
    for (std::size_t i = 0; i < vx.size(); ++i) {
        const double v = vx[i];
        relu[i] = v > 0 ? v : 0;
        drelu[i] = v > 0 ? vdy[i] : 0;
        gelu[i] = erfGelu(v);
        const double pdf = std::exp(-0.5 * v * v) / std::sqrt(2.0 * M_PI);
        dgelu[i] = vdy[i] * (0.5 * (1.0 + std::erf(v / std::sqrt(2.0))) + v * pdf);
    }
    m_be->relu(x, y);
    QCOMPARE(normalizedError(m_be->downloadF32(y), toF(relu)), 0.0);
    m_be->reluBackward(x, dy, dx);
    QCOMPARE(normalizedError(m_be->downloadF32(dx), toF(drelu)), 0.0);
    m_be->gelu(x, y);
    QVERIFY(normalizedError(m_be->downloadF32(y), toF(gelu)) < kF32Tol);
    m_be->geluBackward(x, dy, dx);
    QVERIFY(normalizedError(m_be->downloadF32(dx), toF(dgelu)) < kF32Tol);
}

void TestCpuOps::dropoutMask_data() {
    QTest::addColumn<float>("p");
    QTest::addColumn<qint64>("n");
    QTest::newRow("p=0") << 0.0f << qint64(1000);
    QTest::newRow("p=0.3 large") << 0.3f << qint64(300000);
    QTest::newRow("p=0.9") << 0.9f << qint64(5000);
    QTest::newRow("p=1") << 1.0f << qint64(100);
}

void TestCpuOps::dropoutMask() {
    QFETCH(float, p);
    QFETCH(qint64, n);
    const std::uint64_t seed = 1234;
    auto vx = randomVector(static_cast<std::size_t>(n), 51);
    Tensor x = m_be->upload(vx, {n}), y = m_be->empty({n}), mask = m_be->empty({n});
    m_be->dropout(x, y, mask, p, seed);
    auto vy = m_be->downloadF32(y), vm = m_be->downloadF32(mask);
    std::int64_t kept = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        const bool keep = hashUniform(seed, static_cast<std::uint64_t>(i)) >= p;
        const float m = keep ? 1.0f / (1.0f - p) : 0.0f;
        QCOMPARE(vm[i], m);
        QCOMPARE(vy[i], vx[i] * m);
        kept += keep;
    }
    // The kept fraction is 1 - p within 5 standard deviations of a binomial.
    const double sd = std::sqrt(n * p * (1.0 - p));
    QVERIFY(std::abs(kept - n * (1.0 - p)) <= 5 * sd + 1e-9);
    QVERIFY_THROWS_EXCEPTION(BackendError, m_be->dropout(x, y, mask, 1.5f, seed));
}

void TestCpuOps::softmaxAndCrossEntropy_data() {
    QTest::addColumn<int>("n");
    QTest::addColumn<int>("c");
    QTest::addColumn<float>("range");
    QTest::newRow("1x10") << 1 << 10 << 3.0f;
    QTest::newRow("7x3") << 7 << 3 << 1.0f;
    QTest::newRow("64x1000") << 64 << 1000 << 5.0f;
    QTest::newRow("large logits 16x10") << 16 << 10 << 200.0f; // exp would overflow without the max shift
}

void TestCpuOps::softmaxAndCrossEntropy() {
    QFETCH(int, n);
    QFETCH(int, c);
    QFETCH(float, range);
    auto vx = randomVector(static_cast<std::size_t>(n * c), 61, -range, range);
    auto labels = lathe::test::randomLabels(static_cast<std::size_t>(n), c, 62);
    const float gradScale = 1.0f / static_cast<float>(n);
    std::vector<double> sm(vx.size()), loss(static_cast<std::size_t>(n)), dl(vx.size());
    for (int r = 0; r < n; ++r) {
        double mx = -INFINITY, s = 0;
        for (int j = 0; j < c; ++j) mx = std::max(mx, double(vx[r * c + j]));
        for (int j = 0; j < c; ++j) s += std::exp(double(vx[r * c + j]) - mx);
        for (int j = 0; j < c; ++j) {
            sm[r * c + j] = std::exp(double(vx[r * c + j]) - mx) / s;
            dl[r * c + j] = (sm[r * c + j] - (j == labels[r] ? 1.0 : 0.0)) * gradScale;
        }
        loss[r] = mx + std::log(s) - vx[r * c + labels[r]];
    }
    Tensor x = m_be->upload(vx, {n, c}), y = m_be->empty({n, c});
    m_be->softmax(x, y);
    QVERIFY(normalizedError(m_be->downloadF32(y), toF(sm)) < kF32Tol);
    Tensor lab = m_be->uploadI32(labels, {n}), losses = m_be->empty({n}), dlogits = m_be->empty({n, c});
    m_be->softmaxCrossEntropy(x, lab, losses, dlogits, gradScale);
    const auto got = m_be->downloadF32(losses);
    for (int r = 0; r < n; ++r) QVERIFY(std::isfinite(got[r]));
    // Loss: absolute error relative to the logit range (a loss may be close to 0).
    QVERIFY(maxAbsDiff(got, toF(loss)) < 1e-5 * std::max(1.0f, range));
    QVERIFY(normalizedError(m_be->downloadF32(dlogits), toF(dl)) < kF32Tol);
}

void TestCpuOps::crossEntropyRejectsBadLabels() {
    Tensor x = m_be->upload(randomVector(20, 1), {4, 5}), losses = m_be->empty({4}), d = m_be->empty({4, 5});
    for (std::int32_t bad : {-1, 5}) {
        Tensor lab = m_be->uploadI32({0, 1, bad, 2}, {4});
        QVERIFY_THROWS_EXCEPTION(BackendError, m_be->softmaxCrossEntropy(x, lab, losses, d, 1.0f));
    }
}

void TestCpuOps::argmaxRows() {
    const int n = 50, c = 13;
    auto vx = randomVector(n * c, 71);
    vx[3 * c + 4] = vx[3 * c + 9] = 5.0f; // a tie: the first index wins
    Tensor x = m_be->upload(vx, {n, c}), out = m_be->empty({n}, DType::I32);
    m_be->argmaxRows(x, out);
    Tensor host = m_be->download(out);
    for (int r = 0; r < n; ++r) {
        int best = 0;
        for (int j = 1; j < c; ++j)
            if (vx[r * c + j] > vx[r * c + best]) best = j;
        QCOMPARE(host.ptr<std::int32_t>()[r], best);
    }
    QCOMPARE(host.ptr<std::int32_t>()[3], 4);
}

void TestCpuOps::conv2d_data() {
    QTest::addColumn<QList<int>>("geo"); // N C H W K KH KW SH SW PH PW
    QTest::newRow("3x3 same padding") << QList<int>{2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1};
    QTest::newRow("stride 2x1, asymmetric kernel") << QList<int>{3, 2, 9, 9, 5, 3, 2, 2, 1, 0, 1};
    QTest::newRow("5x5 pad 2 (cnn-2conv first layer)") << QList<int>{2, 1, 28, 28, 8, 5, 5, 1, 1, 2, 2};
    QTest::newRow("1x1 kernel") << QList<int>{4, 6, 5, 5, 3, 1, 1, 1, 1, 0, 0};
    QTest::newRow("stride 2 pad 1") << QList<int>{2, 2, 8, 8, 3, 3, 3, 2, 2, 1, 1};
    QTest::newRow("single image, kernel = input") << QList<int>{1, 2, 4, 4, 3, 4, 4, 1, 1, 0, 0};
    // ~0.6 MB of columns per image: 20 images span three chunks of 6 and one of 2.
    QTest::newRow("several image chunks") << QList<int>{20, 16, 32, 32, 4, 3, 3, 1, 1, 1, 1};
    // ~9 MB of columns per image: one image per chunk (written straight into y).
    QTest::newRow("one image per chunk") << QList<int>{3, 64, 64, 64, 2, 3, 3, 1, 1, 1, 1};
}

namespace {

// Dense (groups = 1) convolution of x (N, C, H, W) with w (K, C, KH, KW) in double: y, and for an output
// gradient dy the input gradient dx and the weight gradient dw.
struct ConvReference {
    std::vector<double> y, dx, dw;
};

ConvReference denseConvReference(const Conv2dGeometry& g, const std::vector<float>& vx, const std::vector<float>& vw,
                                 const std::vector<float>& vdy) {
    const std::int64_t oh = g.outH(), ow = g.outW();
    ConvReference r;
    r.y.assign(static_cast<std::size_t>(g.batch * g.outChannels * oh * ow), 0.0);
    r.dx.assign(vx.size(), 0.0);
    r.dw.assign(vw.size(), 0.0);
    auto X = [&](std::int64_t n, std::int64_t c, std::int64_t i, std::int64_t j) {
        return ((n * g.inChannels + c) * g.height + i) * g.width + j;
    };
    auto W = [&](std::int64_t k, std::int64_t c, std::int64_t i, std::int64_t j) {
        return ((k * g.inChannels + c) * g.kernelH + i) * g.kernelW + j;
    };
    for (std::int64_t n = 0; n < g.batch; ++n)
        for (std::int64_t k = 0; k < g.outChannels; ++k)
            for (std::int64_t oy = 0; oy < oh; ++oy)
                for (std::int64_t ox = 0; ox < ow; ++ox) {
                    const std::size_t yi = static_cast<std::size_t>(((n * g.outChannels + k) * oh + oy) * ow + ox);
                    for (std::int64_t c = 0; c < g.inChannels; ++c)
                        for (std::int64_t ky = 0; ky < g.kernelH; ++ky)
                            for (std::int64_t kx = 0; kx < g.kernelW; ++kx) {
                                const std::int64_t iy = oy * g.strideH - g.padH + ky, ix = ox * g.strideW - g.padW + kx;
                                if (iy < 0 || iy >= g.height || ix < 0 || ix >= g.width) continue;
                                r.y[yi] += double(vx[X(n, c, iy, ix)]) * vw[W(k, c, ky, kx)];
                                r.dx[X(n, c, iy, ix)] += double(vw[W(k, c, ky, kx)]) * vdy[yi];
                                r.dw[W(k, c, ky, kx)] += double(vx[X(n, c, iy, ix)]) * vdy[yi];
                            }
                }
    return r;
}

// The channels [c0, c0 + count) of an (N, channels, plane) tensor, as an (N, count, plane) one.
template <class T>
std::vector<T> channelSlice(const std::vector<T>& v, std::int64_t n, std::int64_t channels, std::int64_t plane,
                            std::int64_t c0, std::int64_t count) {
    std::vector<T> out;
    out.reserve(static_cast<std::size_t>(n * count * plane));
    for (std::int64_t i = 0; i < n; ++i) {
        const auto first = v.begin() + (i * channels + c0) * plane;
        out.insert(out.end(), first, first + count * plane);
    }
    return out;
}

// Writes an (N, count, plane) slice back at channels [c0, c0 + count) of an (N, channels, plane) tensor.
template <class T>
void putChannelSlice(std::vector<T>& v, const std::vector<T>& slice, std::int64_t n, std::int64_t channels,
                     std::int64_t plane, std::int64_t c0, std::int64_t count) {
    for (std::int64_t i = 0; i < n; ++i)
        std::copy(slice.begin() + i * count * plane, slice.begin() + (i + 1) * count * plane,
                  v.begin() + (i * channels + c0) * plane);
}

Conv2dGeometry geometryOf(const QList<int>& geo) { // N C H W K KH KW SH SW PH PW [G]
    Conv2dGeometry g;
    g.batch = geo[0], g.inChannels = geo[1], g.height = geo[2], g.width = geo[3], g.outChannels = geo[4];
    g.kernelH = geo[5], g.kernelW = geo[6], g.strideH = geo[7], g.strideW = geo[8], g.padH = geo[9], g.padW = geo[10];
    if (geo.size() > 11) g.groups = geo[11];
    return g;
}

} // namespace

void TestCpuOps::conv2d() {
    QFETCH(QList<int>, geo);
    const Conv2dGeometry g = geometryOf(geo);
    const std::int64_t oh = g.outH(), ow = g.outW();
    const Shape sx{g.batch, g.inChannels, g.height, g.width}, sw{g.outChannels, g.inChannels, g.kernelH, g.kernelW};
    const Shape sy{g.batch, g.outChannels, oh, ow};
    auto vx = randomVector(numel(sx), 81), vw = randomVector(numel(sw), 82), vdy = randomVector(numel(sy), 83);
    auto vdw0 = randomVector(numel(sw), 84);
    const ConvReference ref = denseConvReference(g, vx, vw, vdy);
    std::vector<double> dw = ref.dw;
    Tensor x = m_be->upload(vx, sx), w = m_be->upload(vw, sw), ty = m_be->empty(sy);
    m_be->conv2dForward(x, w, ty, g);
    QVERIFY(normalizedError(m_be->downloadF32(ty), toF(ref.y)) < kF32Tol);
    Tensor dy = m_be->upload(vdy, sy), tdx = m_be->upload(randomVector(numel(sx), 85), sx); // overwritten
    m_be->conv2dBackwardData(dy, w, tdx, g);
    QVERIFY(normalizedError(m_be->downloadF32(tdx), toF(ref.dx)) < kF32Tol);
    Tensor tdw = m_be->upload(vdw0, sw);
    m_be->conv2dBackwardWeight(x, dy, tdw, g, false);
    QVERIFY(normalizedError(m_be->downloadF32(tdw), toF(dw)) < kF32Tol);
    m_be->upload(vdw0, sw);
    tdw = m_be->upload(vdw0, sw);
    m_be->conv2dBackwardWeight(x, dy, tdw, g, true);
    for (std::size_t i = 0; i < dw.size(); ++i) dw[i] += vdw0[i];
    QVERIFY(normalizedError(m_be->downloadF32(tdw), toF(dw)) < kF32Tol);
    // A y of the wrong shape is an error naming the tensor.
    Tensor bad = m_be->empty({g.batch, g.outChannels, oh + 1, ow});
    QVERIFY_THROWS_EXCEPTION(BackendError, m_be->conv2dForward(x, w, bad, g));
}

void TestCpuOps::conv2dGrouped_data() {
    QTest::addColumn<QList<int>>("geo"); // N C H W K KH KW SH SW PH PW G
    QTest::newRow("groups 2, 3x3 pad 1") << QList<int>{2, 4, 7, 6, 6, 3, 3, 1, 1, 1, 1, 2};
    QTest::newRow("groups 3, odd shapes, stride 2x1, 3x2 kernel") << QList<int>{3, 6, 9, 7, 9, 3, 2, 2, 1, 0, 1, 3};
    QTest::newRow("groups 2, 1x1 kernel") << QList<int>{4, 6, 5, 5, 4, 1, 1, 1, 1, 0, 0, 2};
    // ~0.3 MB of one group's columns per image: 20 images span several chunks.
    QTest::newRow("groups 4, several image chunks") << QList<int>{20, 16, 32, 32, 8, 3, 3, 1, 1, 1, 1, 4};
    QTest::newRow("depthwise 3x3 pad 1") << QList<int>{2, 5, 8, 8, 5, 3, 3, 1, 1, 1, 1, 5};
    QTest::newRow("depthwise, channel multiplier 2, stride 2") << QList<int>{3, 4, 9, 11, 8, 3, 3, 2, 2, 1, 1, 4};
    QTest::newRow("depthwise 5x4 kernel, stride 1x2, pad 2x1") << QList<int>{2, 3, 7, 9, 3, 5, 4, 1, 2, 2, 1, 3};
    QTest::newRow("depthwise, kernel = input") << QList<int>{1, 2, 4, 4, 2, 4, 4, 1, 1, 0, 0, 2};
    QTest::newRow("depthwise, padding wider than the kernel reach") << QList<int>{2, 3, 3, 5, 3, 2, 2, 3, 2, 2, 2, 3};
    // The cnn-dws depthwise layer at a training batch: many planes, run over the thread pool.
    QTest::newRow("depthwise threaded (cnn-dws layer)") << QList<int>{64, 16, 14, 14, 16, 3, 3, 1, 1, 1, 1, 16};
}

// A grouped convolution is G independent dense convolutions over the channel slices: the reference runs
// the dense double-precision reference on each slice, and (for the GEMM path) the backend's own dense
// convolution on each slice, which must agree bit for bit since it is the same arithmetic. Depthwise
// convolutions take direct loops that sum in another order: those are held to kF32Tol.
void TestCpuOps::conv2dGrouped() {
    QFETCH(QList<int>, geo);
    const Conv2dGeometry g = geometryOf(geo);
    const std::int64_t G = g.groups, cg = g.inPerGroup(), kg = g.outPerGroup();
    const std::int64_t inPlane = g.height * g.width, outPlane = g.outH() * g.outW(), kk = g.kernelH * g.kernelW;
    const Shape sx{g.batch, g.inChannels, g.height, g.width}, sw{g.outChannels, cg, g.kernelH, g.kernelW};
    const Shape sy{g.batch, g.outChannels, g.outH(), g.outW()};
    const auto vx = randomVector(numel(sx), 91), vw = randomVector(numel(sw), 92), vdy = randomVector(numel(sy), 93);
    const auto vdw0 = randomVector(numel(sw), 94);

    ConvReference ref{std::vector<double>(numel(sy)), std::vector<double>(numel(sx)), std::vector<double>(numel(sw))};
    std::vector<float> denseY(numel(sy)), denseDx(numel(sx)), denseDw(numel(sw));
    Conv2dGeometry slice = g;
    slice.inChannels = cg, slice.outChannels = kg, slice.groups = 1;
    for (std::int64_t gi = 0; gi < G; ++gi) {
        const auto xs = channelSlice(vx, g.batch, g.inChannels, inPlane, gi * cg, cg);
        const auto ws = channelSlice(vw, 1, g.outChannels, cg * kk, gi * kg, kg);
        const auto dys = channelSlice(vdy, g.batch, g.outChannels, outPlane, gi * kg, kg);
        const ConvReference r = denseConvReference(slice, xs, ws, dys);
        putChannelSlice(ref.y, r.y, g.batch, g.outChannels, outPlane, gi * kg, kg);
        putChannelSlice(ref.dx, r.dx, g.batch, g.inChannels, inPlane, gi * cg, cg);
        putChannelSlice(ref.dw, r.dw, 1, g.outChannels, cg * kk, gi * kg, kg);
        Tensor tx = m_be->upload(xs, {g.batch, cg, g.height, g.width}), tw = m_be->upload(ws, {kg, cg, g.kernelH, g.kernelW});
        Tensor tdy = m_be->upload(dys, {g.batch, kg, g.outH(), g.outW()});
        Tensor ty = m_be->empty(tdy.shape()), tdx = m_be->empty(tx.shape()), tdw = m_be->empty(tw.shape());
        m_be->conv2dForward(tx, tw, ty, slice);
        m_be->conv2dBackwardData(tdy, tw, tdx, slice);
        m_be->conv2dBackwardWeight(tx, tdy, tdw, slice, false);
        putChannelSlice(denseY, m_be->downloadF32(ty), g.batch, g.outChannels, outPlane, gi * kg, kg);
        putChannelSlice(denseDx, m_be->downloadF32(tdx), g.batch, g.inChannels, inPlane, gi * cg, cg);
        putChannelSlice(denseDw, m_be->downloadF32(tdw), 1, g.outChannels, cg * kk, gi * kg, kg);
    }

    Tensor x = m_be->upload(vx, sx), w = m_be->upload(vw, sw), dy = m_be->upload(vdy, sy);
    Tensor y = m_be->empty(sy), dx = m_be->upload(randomVector(numel(sx), 95), sx); // dx is overwritten
    Tensor dw = m_be->upload(vdw0, sw);
    m_be->conv2dForward(x, w, y, g);
    m_be->conv2dBackwardData(dy, w, dx, g);
    m_be->conv2dBackwardWeight(x, dy, dw, g, false);
    const auto gotY = m_be->downloadF32(y), gotDx = m_be->downloadF32(dx), gotDw = m_be->downloadF32(dw);
    const double eY = normalizedError(gotY, toF(ref.y)), eDx = normalizedError(gotDx, toF(ref.dx));
    const double eDw = normalizedError(gotDw, toF(ref.dw));
    QVERIFY2(eY < kF32Tol, qPrintable(QString("y: normalized error %1").arg(eY)));
    QVERIFY2(eDx < kF32Tol, qPrintable(QString("dx: normalized error %1").arg(eDx)));
    QVERIFY2(eDw < kF32Tol, qPrintable(QString("dw: normalized error %1").arg(eDw)));
    if (cg > 1) { // the GEMM path: exactly the dense convolution of each slice
        QCOMPARE(gotY, denseY);
        QCOMPARE(gotDx, denseDx);
        QCOMPARE(gotDw, denseDw);
    }
    // Accumulating adds the same gradient to what dw held.
    Tensor acc = m_be->upload(vdw0, sw);
    m_be->conv2dBackwardWeight(x, dy, acc, g, true);
    std::vector<double> expected = ref.dw;
    for (std::size_t i = 0; i < expected.size(); ++i) expected[i] += vdw0[i];
    QVERIFY(normalizedError(m_be->downloadF32(acc), toF(expected)) < kF32Tol);
    // Results do not depend on the thread count.
    auto single = makeCpuBackend(1);
    Tensor y1 = single->empty(sy), dx1 = single->empty(sx), dw1 = single->empty(sw);
    Tensor x1 = single->upload(vx, sx), w1 = single->upload(vw, sw), dy1 = single->upload(vdy, sy);
    single->conv2dForward(x1, w1, y1, g);
    single->conv2dBackwardData(dy1, w1, dx1, g);
    single->conv2dBackwardWeight(x1, dy1, dw1, g, false);
    QCOMPARE(single->downloadF32(y1), gotY);
    QCOMPARE(single->downloadF32(dx1), gotDx);
    QCOMPARE(single->downloadF32(dw1), gotDw);
}

// Channels that groups do not divide, and a weight that is not (K, C/G, KH, KW), are refused by every
// conv op with a message naming the op and the shapes.
void TestCpuOps::conv2dGroupedErrors_data() {
    QTest::addColumn<QList<int>>("geo");      // N C H W K KH KW SH SW PH PW G
    QTest::addColumn<QList<int>>("weight");   // the w / dw handed over
    QTest::addColumn<QString>("expected");    // after "cpu <op>: "
    QTest::newRow("C not divisible") << QList<int>{1, 6, 5, 5, 8, 3, 3, 1, 1, 1, 1, 4} << QList<int>{8, 1, 3, 3}
                                     << "groups=4 must divide both the input channels (C=6) and the output channels (K=8)";
    QTest::newRow("K not divisible") << QList<int>{1, 4, 5, 5, 6, 3, 3, 1, 1, 1, 1, 4} << QList<int>{6, 1, 3, 3}
                                     << "groups=4 must divide both the input channels (C=4) and the output channels (K=6)";
    QTest::newRow("groups 0") << QList<int>{1, 4, 5, 5, 4, 3, 3, 1, 1, 1, 1, 0} << QList<int>{4, 4, 3, 3}
                              << "groups=0 must divide";
    QTest::newRow("weight with all input channels") << QList<int>{1, 4, 5, 5, 4, 3, 3, 1, 1, 1, 1, 2}
                                                    << QList<int>{4, 4, 3, 3}
                                                    << "is f32[4, 4, 3, 3] on cpu, expected shape [4, 2, 3, 3] (K, C/groups, "
                                                       "KH, KW) for C=4, K=4, groups=2";
    QTest::newRow("depthwise weight wrong") << QList<int>{2, 3, 5, 5, 3, 3, 3, 1, 1, 1, 1, 3} << QList<int>{3, 3, 3, 3}
                                            << "is f32[3, 3, 3, 3] on cpu, expected shape [3, 1, 3, 3] (K, C/groups, KH, KW) "
                                               "for C=3, K=3, groups=3";
}

void TestCpuOps::conv2dGroupedErrors() {
    QFETCH(QList<int>, geo);
    QFETCH(QList<int>, weight);
    QFETCH(QString, expected);
    const Conv2dGeometry g = geometryOf(geo);
    const Shape ws{weight[0], weight[1], weight[2], weight[3]};
    Tensor x = m_be->upload(randomVector(g.batch * g.inChannels * g.height * g.width, 96),
                            {g.batch, g.inChannels, g.height, g.width});
    Tensor w = m_be->upload(randomVector(numel(ws), 97), ws);
    Tensor y = m_be->empty({g.batch, g.outChannels, g.outH(), g.outW()});
    Tensor dx = m_be->empty(x.shape());
    const std::vector<std::pair<std::string, std::function<void()>>> ops = {
        {"conv2d_forward", [&] { m_be->conv2dForward(x, w, y, g); }},
        {"conv2d_backward_data", [&] { m_be->conv2dBackwardData(y, w, dx, g); }},
        {"conv2d_backward_weight", [&] { m_be->conv2dBackwardWeight(x, y, w, g, false); }}};
    for (const auto& [op, call] : ops) {
        try {
            call();
            QFAIL(qPrintable(QString::fromStdString(op) + " did not throw"));
        } catch (const BackendError& e) {
            const QString msg = e.what();
            QVERIFY2(msg.startsWith(QString::fromStdString("cpu " + op + ": ")), qPrintable(msg));
            QVERIFY2(msg.contains(expected), qPrintable(msg));
        }
    }
}

void TestCpuOps::maxPool_data() {
    QTest::addColumn<QList<int>>("geo"); // N C H W KH KW SH SW PH PW
    QTest::newRow("2x2 stride 2") << QList<int>{2, 3, 8, 8, 2, 2, 2, 2, 0, 0};
    QTest::newRow("3x3 stride 2 pad 1, odd input") << QList<int>{1, 2, 7, 9, 3, 3, 2, 2, 1, 1};
    QTest::newRow("overlapping 3x2 stride 1") << QList<int>{2, 1, 5, 5, 3, 2, 1, 1, 0, 1};
    QTest::newRow("large (threaded)") << QList<int>{32, 16, 28, 28, 2, 2, 2, 2, 0, 0};
}

void TestCpuOps::maxPool() {
    QFETCH(QList<int>, geo);
    Pool2dGeometry g;
    g.batch = geo[0], g.channels = geo[1], g.height = geo[2], g.width = geo[3], g.kernelH = geo[4], g.kernelW = geo[5];
    g.strideH = geo[6], g.strideW = geo[7], g.padH = geo[8], g.padW = geo[9];
    const std::int64_t oh = g.outH(), ow = g.outW(), plane = g.height * g.width;
    const Shape sx{g.batch, g.channels, g.height, g.width}, sy{g.batch, g.channels, oh, ow};
    auto vx = randomVector(numel(sx), 91), vdy = randomVector(numel(sy), 92);
    std::vector<float> y(numel(sy));
    std::vector<std::int32_t> arg(numel(sy));
    std::vector<double> dx(numel(sx), 0.0);
    for (std::int64_t pl = 0; pl < g.batch * g.channels; ++pl)
        for (std::int64_t oy = 0; oy < oh; ++oy)
            for (std::int64_t ox = 0; ox < ow; ++ox) {
                float best = -INFINITY;
                std::int32_t bi = -1;
                for (std::int64_t ky = 0; ky < g.kernelH; ++ky)
                    for (std::int64_t kx = 0; kx < g.kernelW; ++kx) {
                        const std::int64_t iy = oy * g.strideH - g.padH + ky, ix = ox * g.strideW - g.padW + kx;
                        if (iy < 0 || iy >= g.height || ix < 0 || ix >= g.width) continue;
                        const float v = vx[pl * plane + iy * g.width + ix];
                        if (bi < 0 || v > best) best = v, bi = static_cast<std::int32_t>(iy * g.width + ix);
                    }
                const std::size_t o = static_cast<std::size_t>((pl * oh + oy) * ow + ox);
                y[o] = best;
                arg[o] = bi;
                dx[pl * plane + bi] += vdy[o];
            }
    Tensor x = m_be->upload(vx, sx), ty = m_be->empty(sy), targ = m_be->empty(sy, DType::I32);
    m_be->maxPool2dForward(x, ty, targ, g);
    QCOMPARE(m_be->downloadF32(ty), y);
    Tensor harg = m_be->download(targ);
    QCOMPARE(std::vector<std::int32_t>(harg.ptr<std::int32_t>(), harg.ptr<std::int32_t>() + arg.size()), arg);
    Tensor dy = m_be->upload(vdy, sy), tdx = m_be->upload(randomVector(numel(sx), 93), sx);
    m_be->maxPool2dBackward(dy, targ, tdx, g);
    QVERIFY(normalizedError(m_be->downloadF32(tdx), toF(dx)) < kF32Tol);
}

void TestCpuOps::layerNorm_data() {
    QTest::addColumn<int>("n");
    QTest::addColumn<int>("d");
    QTest::newRow("1x7") << 1 << 7;
    QTest::newRow("5x64") << 5 << 64;
    QTest::newRow("33x300") << 33 << 300;
    QTest::newRow("512x128 (threaded)") << 512 << 128;
}

void TestCpuOps::layerNorm() {
    QFETCH(int, n);
    QFETCH(int, d);
    const float eps = 1e-5f;
    auto vx = randomVector(n * d, 101, -2.0f, 3.0f), vg = randomVector(d, 102, 0.5f, 1.5f), vb = randomVector(d, 103);
    auto vdy = randomVector(n * d, 104), vdg0 = randomVector(d, 105), vdb0 = randomVector(d, 106);
    std::vector<double> y(n * d), mean(n), rstd(n), dx(n * d), dg(d, 0.0), db(d, 0.0);
    for (int r = 0; r < n; ++r) {
        double mu = 0, var = 0;
        for (int j = 0; j < d; ++j) mu += vx[r * d + j];
        mu /= d;
        for (int j = 0; j < d; ++j) var += (vx[r * d + j] - mu) * (vx[r * d + j] - mu);
        var /= d;
        const double rs = 1.0 / std::sqrt(var + eps);
        mean[r] = mu, rstd[r] = rs;
        double sg = 0, sgx = 0;
        for (int j = 0; j < d; ++j) {
            const double xh = (vx[r * d + j] - mu) * rs;
            y[r * d + j] = xh * vg[j] + vb[j];
            const double gj = double(vdy[r * d + j]) * vg[j];
            sg += gj, sgx += gj * xh;
            dg[j] += vdy[r * d + j] * xh;
            db[j] += vdy[r * d + j];
        }
        for (int j = 0; j < d; ++j) {
            const double xh = (vx[r * d + j] - mu) * rs;
            dx[r * d + j] = rs * (double(vdy[r * d + j]) * vg[j] - sg / d - xh * sgx / d);
        }
    }
    Tensor x = m_be->upload(vx, {n, d}), gamma = m_be->upload(vg, {d}), beta = m_be->upload(vb, {d});
    Tensor ty = m_be->empty({n, d}), tm = m_be->empty({n}), tr = m_be->empty({n});
    m_be->layerNormForward(x, gamma, beta, ty, tm, tr, eps);
    QVERIFY(normalizedError(m_be->downloadF32(ty), toF(y)) < kF32Tol);
    QVERIFY(maxAbsDiff(m_be->downloadF32(tm), toF(mean)) < 1e-6);
    QVERIFY(normalizedError(m_be->downloadF32(tr), toF(rstd)) < kF32Tol);
    Tensor dy = m_be->upload(vdy, {n, d}), tdx = m_be->empty({n, d});
    Tensor tdg = m_be->upload(vdg0, {d}), tdb = m_be->upload(vdb0, {d});
    m_be->layerNormBackward(dy, x, gamma, tm, tr, tdx, tdg, tdb, true);
    QVERIFY(normalizedError(m_be->downloadF32(tdx), toF(dx)) < 1e-4); // dx cancels terms: a looser bound
    std::vector<double> dgAcc(d), dbAcc(d);
    for (int j = 0; j < d; ++j) dgAcc[j] = dg[j] + vdg0[j], dbAcc[j] = db[j] + vdb0[j];
    QVERIFY(normalizedError(m_be->downloadF32(tdg), toF(dgAcc)) < kF32Tol);
    QVERIFY(normalizedError(m_be->downloadF32(tdb), toF(dbAcc)) < kF32Tol);
    m_be->layerNormBackward(dy, x, gamma, tm, tr, tdx, tdg, tdb, false);
    QVERIFY(normalizedError(m_be->downloadF32(tdg), toF(dg)) < kF32Tol);
    QVERIFY(normalizedError(m_be->downloadF32(tdb), toF(db)) < kF32Tol);
}

void TestCpuOps::embedding() {
    const int v = 50, d = 24, n = 40;
    auto table = randomVector(v * d, 111), vdy = randomVector(n * d, 112), dt0 = randomVector(v * d, 113);
    auto ids = lathe::test::randomLabels(n, v, 114);
    ids[5] = ids[6] = ids[30] = 7; // repeated ids accumulate
    Tensor tt = m_be->upload(table, {v, d}), tid = m_be->uploadI32(ids, {n}), ty = m_be->empty({n, d});
    m_be->embeddingForward(tid, tt, ty);
    auto y = m_be->downloadF32(ty);
    for (int r = 0; r < n; ++r)
        for (int j = 0; j < d; ++j) QCOMPARE(y[r * d + j], table[ids[r] * d + j]);
    Tensor dy = m_be->upload(vdy, {n, d}), dt = m_be->upload(dt0, {v, d});
    m_be->embeddingBackward(tid, dy, dt, true);
    std::vector<double> ref(dt0.begin(), dt0.end());
    for (int r = 0; r < n; ++r)
        for (int j = 0; j < d; ++j) ref[ids[r] * d + j] += vdy[r * d + j];
    QVERIFY(normalizedError(m_be->downloadF32(dt), toF(ref)) < kF32Tol);
    m_be->embeddingBackward(tid, dy, dt, false);
    std::vector<double> fresh(v * d, 0.0);
    for (int r = 0; r < n; ++r)
        for (int j = 0; j < d; ++j) fresh[ids[r] * d + j] += vdy[r * d + j];
    QVERIFY(normalizedError(m_be->downloadF32(dt), toF(fresh)) < kF32Tol);
    for (std::int32_t bad : {-1, v}) {
        auto badIds = ids;
        badIds[11] = bad;
        Tensor tb = m_be->uploadI32(badIds, {n});
        QVERIFY_THROWS_EXCEPTION(BackendError, m_be->embeddingForward(tb, tt, ty));
        QVERIFY_THROWS_EXCEPTION(BackendError, m_be->embeddingBackward(tb, dy, dt, true));
    }
}

// spmm_csr against the dense GEMM of the same weight (zeros included) and against a double reference.
// The CSR kernel sums a row's nonzeros in another order than OpenBLAS sums the dense row, so the two
// agree to f32 rounding: kF32Tol, the same bound as the GEMM's own check.
void TestCpuOps::spmmCsr_data() {
    QTest::addColumn<int>("n");
    QTest::addColumn<int>("in");
    QTest::addColumn<int>("out");
    QTest::addColumn<double>("density");
    QTest::newRow("b1 784x256 10%") << 1 << 784 << 256 << 0.10;
    QTest::newRow("b3 gather path") << 3 << 100 << 37 << 0.25;
    QTest::newRow("b5 transposed path") << 5 << 100 << 37 << 0.25;
    QTest::newRow("b64 one full tile") << 64 << 256 << 128 << 0.05;
    QTest::newRow("b200 partial tile") << 200 << 784 << 256 << 0.05;
    QTest::newRow("odd 33x17x45") << 33 << 17 << 45 << 0.3;
    QTest::newRow("mostly empty rows") << 70 << 50 << 60 << 0.01;
    QTest::newRow("fully empty") << 9 << 40 << 11 << 0.0;
    QTest::newRow("dense") << 17 << 31 << 13 << 1.0;
    QTest::newRow("one input") << 8 << 1 << 5 << 0.5;
}

void TestCpuOps::spmmCsr() {
    QFETCH(int, n);
    QFETCH(int, in);
    QFETCH(int, out);
    QFETCH(double, density);
    auto w = randomVector(static_cast<std::size_t>(out * in), 41); // (out, in)
    const auto keep = randomVector(w.size(), 42, 0.0f, 1.0f);
    for (std::size_t i = 0; i < w.size(); ++i)
        if (keep[i] >= density) w[i] = 0.0f;
    w[0] = density > 0 ? 0.5f : 0.0f; // a "fully empty" row stays fully empty
    const HostCsr c = csrFromDense(w.data(), out, in);
    const auto vx = randomVector(static_cast<std::size_t>(n * in), 43); // (N, in)
    Tensor x = m_be->upload(vx, {n, in});
    Tensor y = m_be->upload(randomVector(static_cast<std::size_t>(n * out), 44), {n, out}); // overwritten
    m_be->spmmCsr(x, m_be->uploadI32(c.rowPtr, {out + 1}), m_be->uploadI32(c.colIdx, {c.nnz()}),
                  m_be->upload(c.values, {c.nnz()}), y);
    Tensor yDense = m_be->empty({n, out});
    m_be->gemm(x, Trans::No, m_be->upload(w, {out, in}), Trans::Yes, yDense);
    std::vector<double> ref(static_cast<std::size_t>(n * out), 0.0);
    for (int r = 0; r < n; ++r)
        for (int o = 0; o < out; ++o)
            for (int j = 0; j < in; ++j) ref[r * out + o] += double(vx[r * in + j]) * w[o * in + j];
    const auto got = m_be->downloadF32(y), dense = m_be->downloadF32(yDense);
    QVERIFY2(normalizedError(got, toF(ref)) <= kF32Tol, qPrintable(QString::number(normalizedError(got, toF(ref)))));
    QVERIFY2(normalizedError(got, dense) <= kF32Tol, qPrintable(QString::number(normalizedError(got, dense))));
    if (density == 0.0) QCOMPARE(maxAbsDiff(got, std::vector<float>(got.size(), 0.0f)), 0.0);
}

void TestCpuOps::spmmCsrRejectsBadInput() {
    // W (3, 4) with nonzeros at (0, 1), (2, 3).
    Tensor x = m_be->upload(randomVector(8, 45), {2, 4});
    Tensor y = m_be->empty({2, 3});
    auto run = [&](std::vector<std::int32_t> rowPtr, std::vector<std::int32_t> col, Tensor& yy) {
        const auto nnz = static_cast<std::int64_t>(col.size());
        m_be->spmmCsr(x, m_be->uploadI32(rowPtr, {std::int64_t(rowPtr.size())}), m_be->uploadI32(col, {nnz}),
                      m_be->upload(std::vector<float>(col.size(), 1.0f), {nnz}), yy);
    };
    run({0, 1, 1, 2}, {1, 3}, y); // well-formed
    auto expectError = [&](const char* what, auto fn) {
        try {
            fn();
            QFAIL(qPrintable(QString("no BackendError for ") + what));
        } catch (const BackendError& e) {
            QVERIFY2(QString(e.what()).contains("spmm_csr"), e.what());
        }
    };
    expectError("a column out of range", [&] { run({0, 1, 1, 2}, {1, 4}, y); });
    expectError("a negative column", [&] { run({0, 1, 1, 2}, {-1, 3}, y); });
    expectError("decreasing row pointers", [&] { run({0, 2, 1, 2}, {1, 3}, y); });
    expectError("row pointers not ending at nnz", [&] { run({0, 1, 1, 1}, {1, 3}, y); });
    Tensor wrongY = m_be->empty({2, 4});
    expectError("a y of the wrong shape", [&] { run({0, 1, 1, 2}, {1, 3}, wrongY); });
}

// The shared geometry checks (backend.h), which the CUDA backend runs too: kernel or stride 0, negative
// padding, pooling padding over half the kernel and an input smaller than the kernel are refused by every
// conv and pool op with the op named, before outH() divides by the stride.
void TestCpuOps::badGeometryThrows_data() {
    QTest::addColumn<int>("kernel");
    QTest::addColumn<int>("stride");
    QTest::addColumn<int>("pad");
    QTest::addColumn<int>("size");
    QTest::addColumn<bool>("convOk"); // pooling only: padding over half the kernel is fine for a convolution
    QTest::newRow("stride 0") << 3 << 0 << 1 << 6 << false;
    QTest::newRow("kernel 0") << 0 << 1 << 0 << 6 << false;
    QTest::newRow("negative padding") << 3 << 1 << -1 << 6 << false;
    QTest::newRow("input smaller than the kernel") << 5 << 2 << 0 << 3 << false;
    QTest::newRow("pool padding over half the kernel") << 3 << 1 << 2 << 6 << true;
}

void TestCpuOps::badGeometryThrows() {
    QFETCH(int, kernel);
    QFETCH(int, stride);
    QFETCH(int, pad);
    QFETCH(int, size);
    QFETCH(bool, convOk);
    Conv2dGeometry g;
    g.batch = 1, g.inChannels = 2, g.height = g.width = size, g.outChannels = 3;
    g.kernelH = g.kernelW = kernel, g.strideH = g.strideW = stride, g.padH = g.padW = pad;
    Pool2dGeometry pg;
    pg.batch = 1, pg.channels = 2, pg.height = pg.width = size;
    pg.kernelH = pg.kernelW = kernel, pg.strideH = pg.strideW = stride, pg.padH = pg.padW = pad;
    Tensor x = m_be->upload(std::vector<float>(static_cast<std::size_t>(2 * size * size), 1.0f), {1, 2, size, size});
    Tensor w = m_be->zeros({3, 2, 3, 3}), y = m_be->empty({1, 3, 4, 4}), cols = m_be->empty({16, 18});
    Tensor py = m_be->empty({1, 2, 2, 2}), am = m_be->zeros({1, 2, 2, 2}, DType::I32);
    const std::vector<std::tuple<QString, QString, std::function<void()>>> ops = {
        {"conv2d_forward", "convolution", [&] { m_be->conv2dForward(x, w, y, g); }},
        {"conv2d_backward_data", "convolution", [&] { m_be->conv2dBackwardData(y, w, x, g); }},
        {"conv2d_backward_weight", "convolution", [&] { m_be->conv2dBackwardWeight(x, y, w, g, false); }},
        {"im2col_rows", "convolution", [&] { m_be->im2colRows(x, cols, g); }},
        {"maxpool2d_forward", "pooling", [&] { m_be->maxPool2dForward(x, py, am, pg); }},
        {"maxpool2d_backward", "pooling", [&] { m_be->maxPool2dBackward(py, am, x, pg); }}};
    for (const auto& [op, kind, call] : ops) {
        if (convOk && kind == "convolution") {
            QVERIFY_THROWS_NO_EXCEPTION(checkConvGeometry(g, op.toStdString()));
            continue;
        }
        try {
            call();
            QFAIL(qPrintable(op + " did not throw"));
        } catch (const BackendError& e) {
            const QString msg = QString::fromStdString(e.what());
            QVERIFY2(msg.startsWith("cpu " + op + ": invalid " + kind + " geometry"), qPrintable(msg));
        }
    }
}

QTEST_GUILESS_MAIN(TestCpuOps)
#include "test_cpu_ops.moc"

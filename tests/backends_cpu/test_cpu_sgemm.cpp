// The CPU backend's own f32 GEMM (cpu_sgemm.h), every transpose with and without accumulation: exact on small
// integers (every sum exact in f32, so any misplaced, missing or doubled product shows) over shapes that leave
// every edge of its tiles and panels (M % 12, N % 32, N % 16, K % 16, strided rows), the bias and the activations
// in its epilogue, the same bits
// whatever the split between threads, a double-precision reference on float inputs, and the backend's choice
// between it and OpenBLAS. Skipped on a CPU without AVX-512F.
#include "engine/backends/cpu/cpu_backend.h"
#include "engine/backends/cpu/cpu_sgemm.h"
#include "engine/core/errors.h"
#include "engine/core/rng.h"
#include "engine/nn/quantized_linear.h"
#include "tests/support/test_support.h"

#include <QtTest>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

using namespace lathe;
using lathe::test::randomVector;

Q_DECLARE_METATYPE(Activation)

namespace {

using ChunkRunner = std::function<void(std::int64_t, const std::function<void(std::int64_t)>&)>;

const ChunkRunner inOrder = [](std::int64_t count, const std::function<void(std::int64_t)>& fn) {
    for (std::int64_t i = 0; i < count; ++i)
        fn(i);
};
// Chunks last to first: a split whose result depended on the order of the chunks would show.
const ChunkRunner reversed = [](std::int64_t count, const std::function<void(std::int64_t)>& fn) {
    for (std::int64_t i = count - 1; i >= 0; --i)
        fn(i);
};

// Each chunk on a thread of its own: what the caller's thread holds (its packing buffer) must reach the tasks.
const ChunkRunner onOtherThreads = [](std::int64_t count, const std::function<void(std::int64_t)>& fn) {
    for (std::int64_t i = 0; i < count; ++i) std::thread([&fn, i] { fn(i); }).join();
};

std::vector<float> smallIntegers(std::size_t n, std::uint64_t seed) {
    Rng rng(seed);
    std::vector<float> v(n);
    for (auto& x : v)
        x = static_cast<float>(static_cast<int>(rng.below(17)) - 8);
    return v;
}

float geluRef(float v) {
    return 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752440f));
}

struct Problem {
    std::int64_t m, n, k, ldx, ldw, ldy;
    std::vector<float> x, w, bias, y;
};

Problem makeProblem(std::int64_t m, std::int64_t n, std::int64_t k, std::int64_t pad, bool integers) {
    Problem p{m, n, k, k + pad, k + 2 * pad, n + pad, {}, {}, {}, {}};
    const auto draw = [&](std::size_t count, std::uint64_t seed) {
        return integers ? smallIntegers(count, seed) : randomVector(count, seed, -1.0f, 1.0f);
    };
    p.x = draw(static_cast<std::size_t>(m * p.ldx), 100 + m + k);
    p.w = draw(static_cast<std::size_t>(n * p.ldw), 200 + n + k);
    p.bias = draw(static_cast<std::size_t>(n), 300 + n);
    p.y.assign(static_cast<std::size_t>(m * p.ldy), -12345.0f); // the padding must keep this
    return p;
}

void run(Problem& p, bool withBias, Activation act, const ChunkRunner& chunks) {
    cpu::sgemmOwn(false, true, p.m, p.n, p.k, p.x.data(), p.ldx, p.w.data(), p.ldw, false, p.y.data(), p.ldy,
                  withBias ? p.bias.data() : nullptr, act, chunks);
}

// The same product with op(A) and op(B) stored each way: A as x (M, K) or transposed (K, M) with row stride M + 1;
// B as W (N, K) or transposed (K, N) with row stride N + 2 (padding that must not reach the result, holding 1e30).
// accumulate: y is added to (beta = 1).
void runOwn(Problem& p, bool ta, bool tb, bool accumulate, bool withBias, Activation act, const ChunkRunner& chunks) {
    // src (rows, K) with row stride ld -> (K, rows) with row stride ldOut, the padding 1e30.
    const auto transposed = [&](const std::vector<float>& src, std::int64_t rows, std::int64_t ld, std::int64_t ldOut) {
        std::vector<float> out(static_cast<std::size_t>(p.k * ldOut), 1e30f);
        for (std::int64_t t = 0; t < p.k; ++t)
            for (std::int64_t i = 0; i < rows; ++i) out[t * ldOut + i] = src[i * ld + t];
        return out;
    };
    std::vector<float> at, bt;
    const float* a = p.x.data();
    std::int64_t lda = p.ldx;
    if (ta) {
        lda = p.m + 1;
        at = transposed(p.x, p.m, p.ldx, lda);
        a = at.data();
    }
    const float* b = p.w.data();
    std::int64_t ldb = p.ldw;
    if (!tb) {
        ldb = p.n + 2;
        bt = transposed(p.w, p.n, p.ldw, ldb);
        b = bt.data();
    }
    cpu::sgemmOwn(ta, tb, p.m, p.n, p.k, a, lda, b, ldb, accumulate, p.y.data(), p.ldy,
                  withBias ? p.bias.data() : nullptr, act, chunks);
}

} // namespace

class TestCpuSgemm : public QObject {
    Q_OBJECT

  private slots:
    void init() {
        if (!cpu::ownSgemmAvailable()) QSKIP("this CPU has no AVX-512F: the backend runs OpenBLAS for every GEMM");
    }

    // Integers in [-8, 8]: |sum| <= 64 K + 8 < 2^24, so every f32 sum is exact whatever its order.
    void exactOnIntegers_data() {
        QTest::addColumn<qint64>("m");
        QTest::addColumn<qint64>("n");
        QTest::addColumn<qint64>("k");
        QTest::addColumn<qint64>("pad");
        QTest::addColumn<Activation>("act");
        QTest::addColumn<bool>("withBias");
        struct S {
            std::int64_t m, n, k;
        };
        // Rows 2..9 (each tile height, a full tile and one over), 65 and 130 rows (several row tasks), columns
        // on and off the 16- and 32-wide edges and several panel tasks (N 300: 10 panels), K below, on and off
        // the 16-deep transposed blocks; the MLP's layers.
        const S shapes[] = {{2, 1, 1},      {3, 5, 7},       {7, 16, 16},     {8, 17, 31},
                            {9, 31, 33},    {5, 32, 15},     {6, 33, 48},     {65, 64, 17},
                            {130, 300, 70}, {256, 256, 784}, {256, 128, 256}, {256, 10, 128}};
        for (const S& s : shapes)
            for (std::int64_t pad : {0, 3})
                for (Activation act : {Activation::None, Activation::Relu})
                    for (bool withBias : {true, false})
                        QTest::addRow("%lldx%lldx%lld/pad%lld/%s/%s", static_cast<long long>(s.m),
                                      static_cast<long long>(s.n), static_cast<long long>(s.k),
                                      static_cast<long long>(pad), activationName(act), withBias ? "bias" : "no-bias")
                            << qint64(s.m) << qint64(s.n) << qint64(s.k) << qint64(pad) << act << withBias;
    }
    void exactOnIntegers() {
        QFETCH(qint64, m);
        QFETCH(qint64, n);
        QFETCH(qint64, k);
        QFETCH(qint64, pad);
        QFETCH(Activation, act);
        QFETCH(bool, withBias);
        Problem p = makeProblem(m, n, k, pad, true);
        std::vector<long long> sums(static_cast<std::size_t>(m * n));
        for (std::int64_t i = 0; i < m; ++i)
            for (std::int64_t j = 0; j < n; ++j) {
                long long sum = withBias ? static_cast<long long>(p.bias[j]) : 0;
                for (std::int64_t t = 0; t < k; ++t)
                    sum += static_cast<long long>(p.x[i * p.ldx + t]) * static_cast<long long>(p.w[j * p.ldw + t]);
                sums[static_cast<std::size_t>(i * n + j)] = sum;
            }
        const auto start = smallIntegers(static_cast<std::size_t>(m * p.ldy), 400 + m); // y before, when accumulating
        for (int variant = 0; variant < 8; ++variant) {
            const bool ta = variant & 1, tb = variant & 2, accumulate = variant & 4;
            const QString name = QString("%1%2%3").arg(ta ? "T" : "N").arg(tb ? "T" : "N").arg(accumulate ? " +y" : "");
            for (std::int64_t i = 0; i < m; ++i)
                for (std::int64_t j = 0; j < p.ldy; ++j)
                    p.y[i * p.ldy + j] = j < n && accumulate ? start[i * p.ldy + j] : -12345.0f;
            runOwn(p, ta, tb, accumulate, withBias, act, inOrder);
            for (std::int64_t i = 0; i < m; ++i) {
                for (std::int64_t j = 0; j < n; ++j) {
                    long long expected = sums[static_cast<std::size_t>(i * n + j)];
                    if (accumulate) expected += static_cast<long long>(start[i * p.ldy + j]);
                    if (act == Activation::Relu) expected = std::max(expected, 0LL);
                    const float got = p.y[i * p.ldy + j];
                    if (got != static_cast<float>(expected))
                        QFAIL(qPrintable(QString("%1: y[%2][%3] = %4, expected %5")
                                             .arg(name).arg(i).arg(j).arg(double(got)).arg(expected)));
                }
                for (std::int64_t j = n; j < p.ldy; ++j) // row padding kept
                    QCOMPARE(p.y[i * p.ldy + j], -12345.0f);
            }
        }
    }

    // Floats against a double reference, per output relative to sum |x||w| + |bias|: sequential f32 sums of K
    // products round at most K times by 2^-24 of that (4.7e-5 for K = 784); GELU's erff adds a few ulp.
    void matchesDoubleReference_data() {
        QTest::addColumn<qint64>("m");
        QTest::addColumn<qint64>("n");
        QTest::addColumn<qint64>("k");
        QTest::addColumn<Activation>("act");
        for (Activation act : {Activation::None, Activation::Relu, Activation::Gelu}) {
            QTest::addRow("256x256x784/%s", activationName(act)) << qint64(256) << qint64(256) << qint64(784) << act;
            QTest::addRow("37x45x129/%s", activationName(act)) << qint64(37) << qint64(45) << qint64(129) << act;
        }
    }
    void matchesDoubleReference() {
        QFETCH(qint64, m);
        QFETCH(qint64, n);
        QFETCH(qint64, k);
        QFETCH(Activation, act);
        Problem p = makeProblem(m, n, k, 0, false);
        run(p, true, act, inOrder);
        double worst = 0.0;
        for (std::int64_t i = 0; i < m; ++i)
            for (std::int64_t j = 0; j < n; ++j) {
                double sum = p.bias[j], scale = std::fabs(p.bias[j]);
                for (std::int64_t t = 0; t < k; ++t) {
                    sum += double(p.x[i * k + t]) * double(p.w[j * k + t]);
                    scale += std::fabs(double(p.x[i * k + t]) * double(p.w[j * k + t]));
                }
                double expected = sum;
                if (act == Activation::Relu) expected = std::max(sum, 0.0);
                if (act == Activation::Gelu) expected = geluRef(static_cast<float>(sum));
                worst = std::max(worst, std::fabs(p.y[i * n + j] - expected) / scale);
            }
        QVERIFY2(worst <= double(k) * 0x1p-24 + 1e-6, qPrintable(QString("worst relative error %1").arg(worst)));
    }

    // The same bits whatever the order of the chunks and the thread count of the backend; and A^T stored
    // transposed with B read in place gives x @ W^T's bits (the same sums in the same order).
    void independentOfTheSplit() {
        for (Activation act : {Activation::None, Activation::Gelu}) {
            Problem a = makeProblem(200, 300, 100, 1, false), b = a, c = a, d = a;
            run(a, true, act, inOrder);
            run(b, true, act, reversed);
            run(c, true, act, onOtherThreads);
            runOwn(d, true, false, false, true, act, reversed);
            for (const Problem* other : {&b, &c, &d})
                QVERIFY(std::memcmp(a.y.data(), other->y.data(), a.y.size() * sizeof(float)) == 0);
        }
        const auto x = randomVector(256 * 784, 7), w = randomVector(256 * 784, 8);
        std::vector<std::vector<float>> results;
        for (int threads : {1, 2}) {
            auto be = makeCpuBackend(threads);
            Tensor y = be->empty({256, 256});
            be->gemm(be->upload(x, {256, 784}), Trans::No, be->upload(w, {256, 784}), Trans::Yes, y);
            results.push_back(be->downloadF32(y));
        }
        QVERIFY(results[0] == results[1]);
    }

    // The backend's gemm takes the kernel where enabled and OpenBLAS otherwise, for x @ W^T (a Linear's forward),
    // x @ B (its input gradient) and dy^T @ x accumulated into a gradient (its weight gradient, beta 1): with the
    // kernel the backend's result is a direct call's bits, and the two paths agree within the sums' rounding.
    void backendChoosesIt() {
        const bool before = cpu::ownSgemmEnabled();
        auto be = makeCpuBackend(1);
        // c (m, n) = op(a) @ op(b) (+ c0 when given), a and b host data of the shapes their transposes imply.
        const auto check = [&](const char* what, bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k,
                               std::uint64_t seed, bool accumulate) {
            const auto a = randomVector(static_cast<std::size_t>(m * k), seed);
            const auto b = randomVector(static_cast<std::size_t>(k * n), seed + 1);
            const auto c0 = accumulate ? randomVector(static_cast<std::size_t>(m * n), seed + 2)
                                       : std::vector<float>(static_cast<std::size_t>(m * n), 0.0f);
            const Tensor at = be->upload(a, ta ? Shape{k, m} : Shape{m, k});
            const Tensor bt = be->upload(b, tb ? Shape{n, k} : Shape{k, n});
            std::vector<std::vector<float>> got;
            for (bool enabled : {true, false}) {
                cpu::setOwnSgemmEnabled(enabled);
                QCOMPARE(cpu::ownSgemmEnabled(), enabled);
                Tensor c = be->upload(c0, {m, n});
                be->gemm(at, ta ? Trans::Yes : Trans::No, bt, tb ? Trans::Yes : Trans::No, c, 1.0f,
                         accumulate ? 1.0f : 0.0f);
                got.push_back(be->downloadF32(c));
            }
            cpu::setOwnSgemmEnabled(before);
            std::vector<float> direct = c0;
            cpu::sgemmOwn(ta, tb, m, n, k, a.data(), ta ? m : k, b.data(), tb ? k : n, accumulate, direct.data(), n,
                          nullptr, Activation::None, inOrder);
            QVERIFY2(got[0] == direct, what);
            double worst = 0.0;
            for (std::size_t i = 0; i < direct.size(); ++i)
                worst = std::max(worst, double(std::fabs(got[0][i] - got[1][i])));
            QVERIFY2(worst < 1e-4, qPrintable(QString("%1: kernel and OpenBLAS differ by %2").arg(what).arg(worst)));
        };
        check("x @ W^T", false, true, 64, 96, 300, 11, false);
        check("x @ B", false, false, 64, 96, 300, 14, false);
        check("dy^T @ x + g", true, false, 96, 300, 64, 17, true);
    }
};

LATHE_TEST_GUILESS_MAIN(TestCpuSgemm)
#include "test_cpu_sgemm.moc"

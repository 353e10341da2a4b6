// The CPU backend's gemm_bias_act (the f32 Linear with its bias and activation in the GEMM's epilogue) against
// the ops it replaces, gemm + bias_add + relu / gelu, and a double-precision reference: batch 1 (the GEMV), the
// MLP's layers, shapes split into row panels and into column panels (the bias offset per panel), K = 0; every
// activation, with and without a bias, on 1 and 2 threads; and the argument errors naming the op and tensor. The
// same from a weight prepacked for inference (prepackGemmWeight, gemm_bias_act_packed): bit for bit the same results,
// f16 and bf16 weights too (widened in registers).
#include "engine/backends/cpu/cpu_backend.h"
#include "engine/backends/cpu/cpu_sgemm.h"
#include "engine/core/errors.h"
#include "engine/nn/quantized_linear.h"
#include "tests/support/test_support.h"

#include <QtTest>

#include <cmath>

using namespace lathe;
using lathe::test::randomVector;

Q_DECLARE_METATYPE(Activation)

namespace {

// Against the double reference, per output relative to sum_k |x_k| |w_k| + |bias|: OpenBLAS's f32 sums of K
// products round at most about K / 16 + 16 times by 2^-24 of that sum (4e-6 for K = 784, the largest here), and
// erff adds a few ulp. 1e-5 leaves a margin of 2.5; a missing or misplaced bias (|bias| up to 1) is far above it.
constexpr double kReferenceTol = 1e-5;

struct Shape3 {
    std::int64_t m, k, n;
};

// The backend's own GEMM switched on for a test, and the process-wide switch put back as the environment left it
// (LATHE_CPU_SGEMM) whatever happens; a test may switch it off in between.
struct OwnSgemmOn {
    bool was = cpu::ownSgemmEnabled();
    OwnSgemmOn() { cpu::setOwnSgemmEnabled(true); }
    ~OwnSgemmOn() { cpu::setOwnSgemmEnabled(was); }
};

// The first output of y (M, N) that is further from act(x W^T + bias) in double precision than kReferenceTol (plus
// `relative` of x W^T, for a product rounded before the bias) allows, as a message; empty when all agree. bias may
// be empty (none).
QString firstOffReference(const std::vector<float>& y, const std::vector<float>& xv, const std::vector<float>& wv,
                          const std::vector<float>& bv, std::int64_t m, std::int64_t n, std::int64_t k,
                          Activation act, double relative = 0.0) {
    for (std::int64_t r = 0; r < m; ++r)
        for (std::int64_t c = 0; c < n; ++c) {
            double product = 0.0, scale = bv.empty() ? 0.0 : std::fabs(bv[c]);
            for (std::int64_t i = 0; i < k; ++i) {
                product += double(xv[r * k + i]) * double(wv[c * k + i]);
                scale += std::fabs(double(xv[r * k + i]) * double(wv[c * k + i]));
            }
            const double sum = product + (bv.empty() ? 0.0 : bv[c]);
            const double want = act == Activation::Relu   ? std::max(sum, 0.0)
                                : act == Activation::Gelu ? 0.5 * sum * (1.0 + std::erf(sum / std::sqrt(2.0)))
                                                          : sum;
            const double got = y[static_cast<std::size_t>(r * n + c)];
            if (std::fabs(got - want) > kReferenceTol * std::max(scale, 1e-3) + relative * std::fabs(product))
                return QString("y[%1][%2] = %3, reference %4").arg(r).arg(c).arg(got, 0, 'g', 9).arg(want, 0, 'g', 9);
        }
    return {};
}

} // namespace

class TestGemmBiasAct : public QObject {
    Q_OBJECT

  private slots:
    void matchesUnfusedOps_data() {
        QTest::addColumn<int>("threads");
        QTest::addColumn<qint64>("m");
        QTest::addColumn<qint64>("k");
        QTest::addColumn<qint64>("n");
        QTest::addColumn<Activation>("act");
        QTest::addColumn<bool>("withBias");
        // batch 1 (GEMV), the MLP's three layers at batch 256 (row panels; the last one single call), a shape
        // split into column panels (M < N, both beyond one panel), odd small shapes, one output, K = 0.
        const Shape3 shapes[] = {{1, 784, 256}, {1, 128, 10},  {256, 784, 256}, {256, 256, 128}, {256, 128, 10},
                                 {130, 300, 520}, {3, 5, 7},   {1, 1, 1},       {300, 17, 1},    {5, 0, 4}};
        for (int threads : {1, 2})
            for (const Shape3& s : shapes)
                for (Activation act : {Activation::None, Activation::Relu, Activation::Gelu})
                    for (bool withBias : {true, false})
                        QTest::addRow("t%d/%lldx%lldx%lld/%s/%s", threads, static_cast<long long>(s.m),
                                      static_cast<long long>(s.k), static_cast<long long>(s.n), activationName(act),
                                      withBias ? "bias" : "no-bias")
                            << threads << qint64(s.m) << qint64(s.k) << qint64(s.n) << act << withBias;
    }

    void matchesUnfusedOps() {
        QFETCH(int, threads);
        QFETCH(qint64, m);
        QFETCH(qint64, k);
        QFETCH(qint64, n);
        QFETCH(Activation, act);
        QFETCH(bool, withBias);
        auto be = makeCpuBackend(threads);
        QVERIFY(be->supports(OpDesc::uniform(Op::GemmBiasAct, DType::F32)));
        const auto xv = randomVector(static_cast<std::size_t>(m * k), 11, -2.0f, 2.0f);
        const auto wv = randomVector(static_cast<std::size_t>(n * k), 12);
        const auto bv = randomVector(static_cast<std::size_t>(n), 13);
        const Tensor x = be->upload(xv, {m, k}); // (M, K)
        const Tensor w = be->upload(wv, {n, k}); // (N, K)
        const Tensor bias = be->upload(bv, {n}); // (N)
        Tensor y = be->upload(randomVector(static_cast<std::size_t>(m * n), 14), {m, n}); // (M, N), overwritten
        be->gemmBiasAct(x, w, withBias ? &bias : nullptr, act, y);
        const std::vector<float> fused = be->downloadF32(y);

        // From W prepacked for inference: the same kernel over the same panels (or, at one row, the same GEMV), so
        // the same bits. Without the own kernel there is no layout, and the op runs gemm_bias_act itself.
        const Tensor packed = be->prepackGemmWeight(w);
        QCOMPARE(packed.defined(), cpu::ownSgemmEnabled());
        Tensor yp = be->upload(randomVector(static_cast<std::size_t>(m * n), 15), {m, n});
        be->gemmBiasActPacked(x, w, packed, withBias ? &bias : nullptr, act, yp);
        QVERIFY(be->downloadF32(yp) == fused);

        // The unfused ops: the same OpenBLAS calls on the same panels, the same f32 additions and the same
        // activation arithmetic, so the results must agree bit for bit.
        Tensor z = be->empty({m, n}), a = be->empty({m, n});
        be->gemm(x, Trans::No, w, Trans::Yes, z);
        if (withBias) be->biasAdd(z, bias);
        if (act == Activation::Relu) be->relu(z, a);
        else if (act == Activation::Gelu) be->gelu(z, a);
        else a = z;
        const std::vector<float> unfused = be->downloadF32(a);
        QCOMPARE(fused.size(), unfused.size());
        for (std::size_t i = 0; i < fused.size(); ++i)
            if (fused[i] != unfused[i])
                QFAIL(qPrintable(QString("output %1: fused %2, unfused %3").arg(i).arg(double(fused[i]), 0, 'g', 9)
                                     .arg(double(unfused[i]), 0, 'g', 9)));

        // And both against double precision.
        const QString off = firstOffReference(fused, xv, wv, withBias ? bv : std::vector<float>(), m, n, k, act);
        QVERIFY2(off.isEmpty(), qPrintable(off));
    }

    // The panel split depends on the shape only, so one and two threads give the same bits.
    void threadCountDoesNotChangeTheResult() {
        auto one = makeCpuBackend(1), two = makeCpuBackend(2);
        std::vector<std::vector<float>> results;
        for (auto* be : {one.get(), two.get()}) {
            const Tensor x = be->upload(randomVector(256 * 784, 21), {256, 784});
            const Tensor w = be->upload(randomVector(520 * 784, 22), {520, 784});
            const Tensor bias = be->upload(randomVector(520, 23), {520});
            Tensor y = be->empty({256, 520});
            be->gemmBiasAct(x, w, &bias, Activation::Gelu, y);
            results.push_back(be->downloadF32(y));
        }
        QVERIFY(results[0] == results[1]);
    }

    // A W over the size the per-call GEMM packs (kSgemmNtMaxPacked floats) is packed whole for inference: its
    // product against the double reference; the layout follows the own kernel being switched off (none made, and
    // one made before is left unread).
    void prepackedLargeWeightAndTheOwnKernelSwitchedOff() {
        if (!cpu::ownSgemmAvailable()) QSKIP("this CPU has no AVX-512F: there is no prepacked layout to test");
        const OwnSgemmOn own;
        auto be = makeCpuBackend(2);
        const std::int64_t m = 5, n = 2100, k = 2048; // 2112 x 2048 packed floats > 2^22
        QVERIFY(cpu::sgemmNtPackedFloats(n, k) > cpu::kSgemmNtMaxPacked);
        const auto xv = randomVector(static_cast<std::size_t>(m * k), 31, -2.0f, 2.0f);
        const auto wv = randomVector(static_cast<std::size_t>(n * k), 32);
        const auto bv = randomVector(static_cast<std::size_t>(n), 33);
        const Tensor x = be->upload(xv, {m, k}), w = be->upload(wv, {n, k}), bias = be->upload(bv, {n});
        const Tensor packed = be->prepackGemmWeight(w);
        QVERIFY(packed.defined());
        Tensor y = be->empty({m, n});
        be->gemmBiasActPacked(x, w, packed, &bias, Activation::Relu, y);
        const QString off = firstOffReference(be->downloadF32(y), xv, wv, bv, m, n, k, Activation::Relu);
        QVERIFY2(off.isEmpty(), qPrintable(off));

        cpu::setOwnSgemmEnabled(false);
        const Tensor none = be->prepackGemmWeight(w);
        Tensor viaOpenBlas = be->empty({m, n}), stalePacked = be->empty({m, n});
        be->gemmBiasAct(x, w, &bias, Activation::Relu, viaOpenBlas);
        be->gemmBiasActPacked(x, w, packed, &bias, Activation::Relu, stalePacked);
        QVERIFY(!none.defined());
        QVERIFY(be->downloadF32(stalePacked) == be->downloadF32(viaOpenBlas));
    }

    // A 16-bit weight (f16, bf16) prepacked: its panels keep the 16-bit elements and the kernel widens them as it
    // loads them and rounds each sum to the format in its epilogue, so from two rows the bits of the separate ops a
    // 16-bit Linear runs (at one row, where OpenBLAS's GEMV sums in another order: against the double reference).
    // Without the own kernel the op runs those ops itself.
    void sixteenBitWeightPrepacked_data() {
        QTest::addColumn<int>("dtype");
        QTest::addColumn<qint64>("m");
        QTest::addColumn<qint64>("k");
        QTest::addColumn<qint64>("n");
        for (DType dt : {DType::F16, DType::BF16})
            for (const Shape3& s : {Shape3{1, 784, 256}, Shape3{2, 784, 256}, Shape3{256, 256, 128},
                                    Shape3{130, 300, 520}, Shape3{3, 5, 7}, Shape3{300, 17, 1}})
                QTest::addRow("%s/%lldx%lldx%lld", dtypeName(dt), static_cast<long long>(s.m),
                              static_cast<long long>(s.k), static_cast<long long>(s.n))
                    << int(dt) << qint64(s.m) << qint64(s.k) << qint64(s.n);
    }

    void sixteenBitWeightPrepacked() {
        QFETCH(int, dtype);
        QFETCH(qint64, m);
        QFETCH(qint64, k);
        QFETCH(qint64, n);
        const auto dt = static_cast<DType>(dtype);
        if (!cpu::ownSgemmAvailable()) QSKIP("this CPU has no AVX-512F: there is no prepacked layout to test");
        const OwnSgemmOn own;
        auto be = makeCpuBackend(2);
        const auto xv = randomVector(static_cast<std::size_t>(m * k), 41, -2.0f, 2.0f);
        const Tensor x = be->upload(xv, {m, k});
        Tensor w = be->empty({n, k}, dt), w32 = be->empty({n, k});
        be->convert(be->upload(randomVector(static_cast<std::size_t>(n * k), 42), {n, k}), w);
        be->convert(w, w32); // the 16-bit values, exactly
        const auto bv = randomVector(static_cast<std::size_t>(n), 43);
        const Tensor bias = be->upload(bv, {n});
        const Tensor packed = be->prepackGemmWeight(w);
        QVERIFY(packed.defined());
        QCOMPARE(packed.dtype(), dt);
        // What a 16-bit Linear computes as separate ops: the f32 product with the widened weight, rounded to the
        // weight's format, then the bias and the activation.
        const auto unfused = [&] {
            Tensor z = be->empty({m, n}), z16 = be->empty({m, n}, dt), out = be->empty({m, n});
            be->gemm(x, Trans::No, w32, Trans::Yes, z);
            be->convert(z, z16);
            be->convert(z16, z);
            be->biasAdd(z, bias);
            be->relu(z, out);
            return be->downloadF32(out);
        };
        Tensor y = be->empty({m, n});
        be->gemmBiasActPacked(x, w, packed, &bias, Activation::Relu, y);
        const std::vector<float> got = be->downloadF32(y);
        if (m >= 2) QVERIFY(got == unfused()); // one row: OpenBLAS's GEMV sums in another order
        // Against double precision, allowing the product's rounding to the 16-bit format (at most 2^-11 of it for
        // f16, 2^-8 for bf16) on top of the f32 sums' tolerance.
        const QString off = firstOffReference(got, xv, be->downloadF32(w32), bv, m, n, k, Activation::Relu,
                                              dt == DType::F16 ? 0x1p-11 : 0x1p-8);
        QVERIFY2(off.isEmpty(), qPrintable(off));
        cpu::setOwnSgemmEnabled(false);
        Tensor switchedOff = be->empty({m, n});
        be->gemmBiasActPacked(x, w, packed, &bias, Activation::Relu, switchedOff);
        QVERIFY(be->downloadF32(switchedOff) == unfused());
        QVERIFY(!be->prepackGemmWeight(w).defined());
    }

    void badArgumentsThrowNamingTheTensor() {
        auto be = makeCpuBackend(1);
        const Tensor x = be->zeros({4, 8}), w = be->zeros({3, 8}), bias = be->zeros({3});
        Tensor y = be->zeros({4, 3});
        auto expect = [&](const char* what, auto&& call) {
            try {
                call();
                QFAIL(qPrintable(QString("no error for a wrong ") + what));
            } catch (const BackendError& e) {
                const QString msg = QString::fromUtf8(e.what());
                QVERIFY2(msg.contains("gemm_bias_act") && msg.contains(what), qPrintable(msg));
            }
        };
        const Tensor wrongW = be->zeros({3, 7}), wrongBias = be->zeros({4});
        Tensor wrongY = be->zeros({4, 4});
        expect("w", [&] { be->gemmBiasAct(x, wrongW, &bias, Activation::Relu, y); });
        expect("bias", [&] { be->gemmBiasAct(x, w, &wrongBias, Activation::Relu, y); });
        expect("y", [&] { be->gemmBiasAct(x, w, &bias, Activation::Relu, wrongY); });
        // A layout of another W's shape, or of another dtype.
        if (cpu::ownSgemmEnabled()) {
            const Tensor otherPacked = be->prepackGemmWeight(be->zeros({40, 8}));
            const Tensor halfPacked = be->prepackGemmWeight(be->zeros({3, 8}, DType::F16));
            for (const Tensor* wrong : {&otherPacked, &halfPacked}) {
                try {
                    be->gemmBiasActPacked(x, w, *wrong, &bias, Activation::Relu, y);
                    QFAIL("no error for a packed weight of another shape or dtype");
                } catch (const BackendError& e) {
                    const QString msg = QString::fromUtf8(e.what());
                    QVERIFY2(msg.contains("gemm_bias_act_packed") && msg.contains("packedW"), qPrintable(msg));
                }
            }
        }
        QVERIFY_THROWS_EXCEPTION(BackendError, be->prepackGemmWeight(be->zeros({3, 8}, DType::I32)));
        // A dtype without the op is refused by the table, naming the descriptor.
        const Tensor x16 = be->zeros({4, 8}, DType::F16), w16 = be->zeros({3, 8}, DType::F16);
        Tensor y16 = be->zeros({4, 3}, DType::F16);
        QVERIFY(!be->supports(OpDesc::uniform(Op::GemmBiasAct, DType::F16)));
        expect("f16", [&] { be->gemmBiasAct(x16, w16, nullptr, Activation::None, y16); });
    }
};

QTEST_MAIN(TestGemmBiasAct)
#include "test_gemm_bias_act.moc"

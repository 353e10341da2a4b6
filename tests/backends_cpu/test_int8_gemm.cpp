// The CPU backend's W8A8 ops: quantize_rows against a scalar reference (zero rows, exact .5 boundaries,
// clamping, dynamic and static scales), and gemm_int8's int32 sums against a naive int64 reference on
// every kernel this CPU runs (scalar, AVX2, AVX512-VNNI), on shapes whose K and N are not multiples of
// the kernels' groups and panels, then its epilogue (scales, bias, activations) and its refusals.
#include "engine/backends/cpu/cpu_backend.h"
#include "engine/core/errors.h"
#include "engine/core/quant_matrix.h"
#include "engine/core/rng.h"
#include "tests/support/test_support.h"

#include <QtTest>

#include <cmath>
#include <limits>
#include <cstring>

using namespace lathe;

namespace {

constexpr float kInvSqrt2 = 0.70710678118654752440f;

std::vector<CpuInt8Path> pathsOfThisCpu() {
    std::vector<CpuInt8Path> paths;
    for (CpuInt8Path p : {CpuInt8Path::Scalar, CpuInt8Path::Avx2, CpuInt8Path::Avx512Vnni})
        if (cpuInt8PathAvailable(p)) paths.push_back(p);
    return paths;
}

// Codes drawn from the whole int8 range [-128, 127] (quantize_rows never writes -128, but W may hold it).
std::vector<std::int8_t> randomCodes(std::size_t n, std::uint64_t seed) {
    Rng rng(seed);
    std::vector<std::int8_t> v(n);
    for (auto& c : v) c = static_cast<std::int8_t>(static_cast<int>(rng.below(256)) - 128);
    return v;
}

Tensor i8Tensor(Backend& be, const std::vector<std::int8_t>& values, const Shape& shape) {
    Tensor t = be.empty(shape, DType::I8);
    be.copyFromHost(t, values.data());
    return t;
}

// acc (M, N) = sum over k of x (M, K) * w (N, K), in int64.
std::vector<std::int64_t> referenceSums(const std::vector<std::int8_t>& x, const std::vector<std::int8_t>& w,
                                        std::int64_t m, std::int64_t n, std::int64_t k) {
    std::vector<std::int64_t> acc(static_cast<std::size_t>(m * n), 0);
    for (std::int64_t r = 0; r < m; ++r)
        for (std::int64_t c = 0; c < n; ++c) {
            std::int64_t s = 0;
            for (std::int64_t i = 0; i < k; ++i) s += std::int64_t{x[r * k + i]} * w[c * k + i];
            acc[r * n + c] = s;
        }
    return acc;
}

// The epilogue as the op defines it: fma(float(acc) * xs, ws, b), then the activation (GELU through erf, as
// the gelu op computes it).
float epilogue(std::int64_t acc, float xs, float ws, float b, Activation act) {
    const float v = std::fma(static_cast<float>(acc) * xs, ws, b);
    if (act == Activation::Relu) return v > 0.0f ? v : 0.0f;
    if (act == Activation::Gelu) return 0.5f * v * (1.0f + std::erf(v * kInvSqrt2));
    return v;
}

// quantize_rows' definition: q = clamp(round(x / s), -127, 127), halves away from zero (std::round); NaN -> 0.
std::int8_t quantizeReference(float x, float s) {
    if (s == 0.0f) return 0;
    const float q = x / s;
    if (std::isnan(q)) return 0;
    return static_cast<std::int8_t>(std::clamp(std::round(q), -127.0f, 127.0f));
}

QString shapeName(std::int64_t m, std::int64_t k, std::int64_t n) {
    return QString("M%1 K%2 N%3").arg(m).arg(k).arg(n);
}

} // namespace

class TestInt8Gemm : public QObject {
    Q_OBJECT
    // Two threads: the large shapes below go through the threaded split, batch 1 through the GEMV.
    std::shared_ptr<Backend> m_be = makeCpuBackend(2);

    // y (M, N) of gemm_int8 on `path`.
    std::vector<float> runGemm(CpuInt8Path path, const Tensor& xq, const Tensor& xScale, const Tensor& packed,
                               const Tensor& wScale, const Tensor* bias, Activation act, std::int64_t m,
                               std::int64_t n) {
        setCpuInt8Path(*m_be, path);
        Tensor y = m_be->upload(std::vector<float>(static_cast<std::size_t>(m * n), 99.0f), {m, n}); // overwritten
        m_be->gemmInt8(xq, xScale, packed, wScale, bias, act, y);
        return m_be->downloadF32(y);
    }

private slots:
    void initTestCase() {
        QString names;
        for (CpuInt8Path p : pathsOfThisCpu()) names += QString(" ") + cpuInt8PathName(p);
        qInfo("int8 kernels this CPU runs:%s", qPrintable(names));
        QVERIFY(m_be->supports(int8GemmDesc()));
        QVERIFY(m_be->supports(OpDesc::uniform(Op::QuantizeRows, DType::F32)));
    }

    // With unit scales, no bias and no activation y is float(acc), and every |acc| here is below 2^24
    // (784 * 128 * 128 = 12.8e6), where float holds integers exactly: y == the int64 reference, bit for bit,
    // shows the int32 sums are exact. Rows of x at +127 and -128 against a row of W at -128 reach the
    // largest magnitudes; K and N off the kernels' multiples of 4 and 16 exercise the padding.
    void sumsAreExact_data() {
        QTest::addColumn<int>("m");
        QTest::addColumn<int>("k");
        QTest::addColumn<int>("n");
        for (int m : {1, 2, 3, 7, 64, 257})
            for (int k : {1, 3, 4, 5, 17, 784})
                for (int n : {1, 5, 16, 17, 33, 256}) QTest::newRow(qPrintable(shapeName(m, k, n))) << m << k << n;
    }
    void sumsAreExact() {
        QFETCH(int, m);
        QFETCH(int, k);
        QFETCH(int, n);
        auto x = randomCodes(static_cast<std::size_t>(m * k), 1000 + m * 7 + k);
        auto w = randomCodes(static_cast<std::size_t>(n * k), 2000 + n * 5 + k);
        std::fill(x.begin(), x.begin() + k, std::int8_t{127});
        if (m > 1) std::fill(x.begin() + k, x.begin() + 2 * k, std::int8_t{-128});
        std::fill(w.begin(), w.begin() + k, std::int8_t{-128});
        const auto ref = referenceSums(x, w, m, n, k);
        const Tensor xq = i8Tensor(*m_be, x, {m, k});
        const Tensor packed = m_be->prepackInt8(i8Tensor(*m_be, w, {n, k}));
        const Tensor one = m_be->upload(std::vector<float>{1.0f}, {1});
        for (CpuInt8Path path : pathsOfThisCpu()) {
            const auto y = runGemm(path, xq, one, packed, one, nullptr, Activation::None, m, n);
            for (std::int64_t i = 0; i < m * n; ++i)
                if (y[i] != static_cast<float>(ref[i]))
                    QFAIL(qPrintable(QString("%1: y[%2, %3] = %4, the exact sum is %5")
                                         .arg(cpuInt8PathName(path)).arg(i / n).arg(i % n)
                                         .arg(double(y[i]), 0, 'f', 1).arg(ref[i])));
        }
    }

    // Every path computes fma(float(acc) * xs, ws, b) with the fused multiply-add written out (never left to
    // the compiler's contraction) and GELU through the gelu op's own expression, so y equals the reference
    // evaluated on the exact sums with tolerance 0: any other rounding order is a bug worth seeing.
    void epilogueMatches_data() {
        QTest::addColumn<int>("act");
        QTest::addColumn<bool>("withBias");
        QTest::addColumn<bool>("perChannel");
        QTest::addColumn<bool>("perRow");
        const char* actNames[] = {"none", "relu", "gelu"};
        for (int act = 0; act < 3; ++act)
            for (bool withBias : {false, true})
                for (bool perChannel : {false, true})
                    for (bool perRow : {false, true})
                        QTest::newRow(qPrintable(QString("%1, %2, w %3, x %4")
                                                     .arg(actNames[act], withBias ? "bias" : "no bias",
                                                          perChannel ? "per channel" : "per tensor",
                                                          perRow ? "per row" : "per tensor")))
                            << act << withBias << perChannel << perRow;
    }
    void epilogueMatches() {
        QFETCH(int, act);
        QFETCH(bool, withBias);
        QFETCH(bool, perChannel);
        QFETCH(bool, perRow);
        const Activation activation = static_cast<Activation>(act);
        struct Case { std::int64_t m, k, n; };
        for (const Case c : {Case{1, 5, 17}, Case{7, 17, 33}, Case{64, 784, 256}}) {
            const auto x = randomCodes(static_cast<std::size_t>(c.m * c.k), 3000 + c.k);
            const auto w = randomCodes(static_cast<std::size_t>(c.n * c.k), 4000 + c.k);
            const auto ref = referenceSums(x, w, c.m, c.n, c.k);
            const auto xs = lathe::test::randomVector(static_cast<std::size_t>(perRow ? c.m : 1), 5000, 1e-3f, 5e-2f);
            const auto ws = lathe::test::randomVector(static_cast<std::size_t>(perChannel ? c.n : 1), 5001, 1e-3f, 2e-2f);
            const auto b = lathe::test::randomVector(static_cast<std::size_t>(c.n), 5002, -2.0f, 2.0f);
            const Tensor xScale = m_be->upload(xs, {static_cast<std::int64_t>(xs.size())});
            const Tensor wScale = m_be->upload(ws, {static_cast<std::int64_t>(ws.size())});
            const Tensor bias = m_be->upload(b, {c.n});
            const Tensor xq = i8Tensor(*m_be, x, {c.m, c.k});
            const Tensor packed = m_be->prepackInt8(i8Tensor(*m_be, w, {c.n, c.k}));
            for (CpuInt8Path path : pathsOfThisCpu()) {
                const auto y = runGemm(path, xq, xScale, packed, wScale, withBias ? &bias : nullptr, activation, c.m,
                                       c.n);
                for (std::int64_t r = 0; r < c.m; ++r)
                    for (std::int64_t j = 0; j < c.n; ++j) {
                        const float expected = epilogue(ref[r * c.n + j], xs[perRow ? r : 0], ws[perChannel ? j : 0],
                                                        withBias ? b[j] : 0.0f, activation);
                        const float got = y[r * c.n + j];
                        if (got != expected)
                            QFAIL(qPrintable(QString("%1, %2: y[%3, %4] = %5, expected %6")
                                                 .arg(cpuInt8PathName(path), shapeName(c.m, c.k, c.n)).arg(r).arg(j)
                                                 .arg(double(got), 0, 'g', 9).arg(double(expected), 0, 'g', 9)));
                    }
            }
        }
    }

    // Rows: a zero row (scale 0, codes 0); a row whose maximum 127 makes s exactly 1, holding halves that
    // must round away from zero and the largest float below one half; random rows of widths that leave a
    // tail after the 8-, 16- and 64-lane loops; a NaN and an infinity (row 2); a batch of 300 x 784 that goes
    // through the threaded split.
    void quantizeRowsMatchesReference_data() {
        QTest::addColumn<int>("rows");
        QTest::addColumn<int>("cols");
        QTest::addColumn<bool>("dynamic");
        for (bool dynamic : {true, false}) {
            const char* kind = dynamic ? "dynamic" : "static";
            QTest::newRow(qPrintable(QString("%1, 4 x 37").arg(kind))) << 4 << 37 << dynamic;
            QTest::newRow(qPrintable(QString("%1, 4 x 16").arg(kind))) << 4 << 16 << dynamic;
            QTest::newRow(qPrintable(QString("%1, 3 x 64").arg(kind))) << 3 << 64 << dynamic;
            QTest::newRow(qPrintable(QString("%1, 3 x 100").arg(kind))) << 3 << 100 << dynamic;
            QTest::newRow(qPrintable(QString("%1, 5 x 200").arg(kind))) << 5 << 200 << dynamic;
            QTest::newRow(qPrintable(QString("%1, 300 x 784").arg(kind))) << 300 << 784 << dynamic;
        }
    }
    void quantizeRowsMatchesReference() {
        QFETCH(int, rows);
        QFETCH(int, cols);
        QFETCH(bool, dynamic);
        auto x = lathe::test::randomVector(static_cast<std::size_t>(rows * cols), 6000 + cols, -3.0f, 3.0f);
        std::fill(x.begin(), x.begin() + cols, 0.0f); // row 0: zeros
        const std::vector<float> halves{127.0f, 2.5f, -2.5f, 0.5f, -0.5f, 1.5f, -1.5f, 126.5f, -126.5f,
                                        0.49999997f, -0.49999997f, 3.4999998f, -127.0f, 0.0f, 64.5f, -0.75f};
        for (int i = 0; i < cols; ++i) x[cols + i] = halves[i % halves.size()]; // row 1: s = 127 / 127 = 1
        // Static: s = 0.5 doubles the values, so the halves of row 1 become integers (and the rest clamps),
        // while row 2 scaled by 1/0.5 meets its own halves at x = 1.25, -1.75.
        x[2 * cols] = 1.25f;
        x[2 * cols + 1] = -1.75f;
        x[2 * cols + 2] = 1000.0f; // clamps to 127
        x[2 * cols + 3] = -1000.0f;
        x[2 * cols + 4] = std::numeric_limits<float>::quiet_NaN(); // -> 0; the row's maximum leaves it out
        x[2 * cols + 5] = -std::numeric_limits<float>::infinity(); // -> -127 (static); the dynamic scale is inf
        const float staticScale = 0.5f;
        std::vector<float> s(static_cast<std::size_t>(dynamic ? rows : 1), staticScale);
        if (dynamic)
            for (int r = 0; r < rows; ++r) {
                float mx = 0.0f;
                for (int i = 0; i < cols; ++i) mx = std::max(mx, std::fabs(x[r * cols + i])); // NaN left out
                s[r] = mx / 127.0f;
            }
        QCOMPARE(dynamic ? s[1] : 1.0f, 1.0f);
        const Tensor xt = m_be->upload(x, {rows, cols});
        for (CpuInt8Path path : pathsOfThisCpu()) {
            setCpuInt8Path(*m_be, path);
            Tensor xq = m_be->empty({rows, cols}, DType::I8);
            Tensor scale = m_be->upload(dynamic ? std::vector<float>(rows, -1.0f) : std::vector<float>{staticScale},
                                        {dynamic ? rows : 1});
            m_be->quantizeRows(xt, xq, scale, dynamic);
            const auto got = m_be->downloadF32(scale);
            const Tensor codes = m_be->download(xq);
            const auto* q = codes.ptr<const std::int8_t>();
            for (std::size_t r = 0; r < s.size(); ++r)
                QVERIFY2(got[r] == s[r], qPrintable(QString("%1: scale[%2] = %3, expected %4")
                                                        .arg(cpuInt8PathName(path)).arg(r).arg(got[r]).arg(s[r])));
            for (int r = 0; r < rows; ++r)
                for (int i = 0; i < cols; ++i) {
                    const std::int8_t expected = quantizeReference(x[r * cols + i], s[dynamic ? r : 0]);
                    if (q[r * cols + i] != expected)
                        QFAIL(qPrintable(QString("%1: x[%2, %3] = %4 quantized to %5, expected %6")
                                             .arg(cpuInt8PathName(path)).arg(r).arg(i).arg(double(x[r * cols + i]), 0, 'g', 9)
                                             .arg(int(q[r * cols + i])).arg(int(expected))));
                }
            // The halves themselves, spelled out (s = 1 in the dynamic rows).
            if (dynamic) {
                QCOMPARE(int(q[cols + 1]), 3);
                QCOMPARE(int(q[cols + 2]), -3);
                QCOMPARE(int(q[cols + 3]), 1);
                QCOMPARE(int(q[cols + 4]), -1);
                QCOMPARE(int(q[cols + 9]), 0);
                QCOMPARE(int(q[cols + 7]), 127);
            }
            for (int i = 0; i < cols; ++i) QCOMPARE(int(q[i]), 0);
        }
    }

    // quantize_rows then gemm_int8 against the f32 GEMM they approximate: a check of the conventions (x W^T,
    // per-row x scales, per-channel w scales) rather than of rounding. Symmetric int8 on both sides leaves
    // errors near (1/127) * sqrt(2/3) relative per product; over sums of 784 that is about 1e-2 of the output
    // norm, so 3e-2 passes a correct product and fails a transposed or mis-scaled one by far.
    void approximatesTheF32Gemm() {
        const std::int64_t m = 33, k = 784, n = 40;
        const auto xf = lathe::test::randomVector(static_cast<std::size_t>(m * k), 7000);
        const auto wf = lathe::test::randomVector(static_cast<std::size_t>(n * k), 7001);
        // Per-channel symmetric codes, as quantize.int8 stores a Linear weight.
        const HostQuantMatrix q = quantizeMatrix(wf.data(), n, k, QuantSpec{WeightFormat::Int8, k, true});
        const Tensor x = m_be->upload(xf, {m, k}), w = m_be->upload(wf, {n, k});
        Tensor yRef = m_be->empty({m, n});
        m_be->gemm(x, Trans::No, w, Trans::Yes, yRef);
        const auto ref = m_be->downloadF32(yRef);
        Tensor wq = m_be->empty({n, k}, DType::I8);
        m_be->copyFromHost(wq, q.packed.data());
        const Tensor packed = m_be->prepackInt8(wq);
        const Tensor wScale = m_be->upload(q.scales, {n});
        for (CpuInt8Path path : pathsOfThisCpu()) {
            setCpuInt8Path(*m_be, path);
            Tensor xq = m_be->empty({m, k}, DType::I8), xScale = m_be->empty({m});
            m_be->quantizeRows(x, xq, xScale, true);
            Tensor y = m_be->empty({m, n});
            m_be->gemmInt8(xq, xScale, packed, wScale, nullptr, Activation::None, y);
            const double err = lathe::test::normalizedError(m_be->downloadF32(y), ref);
            QVERIFY2(err < 3e-2, qPrintable(QString("%1: normalized error %2").arg(cpuInt8PathName(path)).arg(err)));
        }
    }

    void rejectsBadInput() {
        const std::int64_t m = 3, k = 6, n = 5;
        const Tensor x = m_be->upload(lathe::test::randomVector(m * k, 8000), {m, k});
        Tensor xq = m_be->empty({m, k}, DType::I8), xScale = m_be->empty({m});
        m_be->quantizeRows(x, xq, xScale, true); // well-formed
        const Tensor w = i8Tensor(*m_be, randomCodes(n * k, 8001), {n, k});
        const Tensor packed = m_be->prepackInt8(w);
        const Tensor wScale = m_be->upload(std::vector<float>(n, 0.01f), {n});
        const Tensor bias = m_be->upload(std::vector<float>(n, 0.5f), {n});
        Tensor y = m_be->empty({m, n});
        m_be->gemmInt8(xq, xScale, packed, wScale, &bias, Activation::Relu, y); // well-formed

        auto expectError = [&](const char* what, const char* op, const char* needle, auto fn) {
            const std::string msg = lathe::test::errorOf<BackendError>(fn);
            QVERIFY2(msg.find(op) != std::string::npos && msg.find(needle) != std::string::npos,
                     qPrintable(QString(what) + ": " + QString::fromStdString(msg)));
        };
        // quantize_rows
        Tensor xqU8 = m_be->empty({m, k}, DType::U8), scale1 = m_be->empty({1});
        Tensor xqNarrow = m_be->empty({m, k - 1}, DType::I8);
        expectError("x of a dtype without the op", "quantize_rows", "i32",
                    [&] { m_be->quantizeRows(m_be->empty({m, k}, DType::I32), xq, xScale, true); });
        expectError("xq of the wrong dtype", "quantize_rows", "xq", [&] { m_be->quantizeRows(x, xqU8, xScale, true); });
        expectError("xq of the wrong shape", "quantize_rows", "xq", [&] { m_be->quantizeRows(x, xqNarrow, xScale, true); });
        expectError("a dynamic scale of one value", "quantize_rows", "scale",
                    [&] { m_be->quantizeRows(x, xq, scale1, true); });
        expectError("a static scale of M values", "quantize_rows", "scale",
                    [&] { m_be->quantizeRows(x, xq, xScale, false); });
        Tensor zeroScale = m_be->upload(std::vector<float>{0.0f}, {1});
        expectError("a static scale of 0", "quantize_rows", "static scale",
                    [&] { m_be->quantizeRows(x, xq, zeroScale, false); });
        // prepack_int8
        expectError("an f32 weight", "prepack_int8", "wq", [&] { m_be->prepackInt8(m_be->empty({n, k})); });
        expectError("a 1-D weight", "prepack_int8", "wq", [&] { m_be->prepackInt8(m_be->empty({k}, DType::I8)); });
        // gemm_int8
        auto gemm = [&](const Tensor& a, const Tensor& as, const Tensor& pw, const Tensor& bs, const Tensor* b,
                        Tensor& out) { m_be->gemmInt8(a, as, pw, bs, b, Activation::None, out); };
        const Tensor xqWide = m_be->empty({m, k + 1}, DType::I8);
        expectError("xq whose K is not the weight's", "gemm_int8", "xq", [&] { gemm(xqWide, xScale, packed, wScale, nullptr, y); });
        expectError("an f32 xq", "gemm_int8", "xq", [&] { gemm(x, xScale, packed, wScale, nullptr, y); });
        const Tensor badXScale = m_be->empty({m + 1});
        expectError("xScale of M + 1 values", "gemm_int8", "xScale",
                    [&] { gemm(xq, badXScale, packed, wScale, nullptr, y); });
        const Tensor badWScale = m_be->empty({n - 1});
        expectError("wScale of N - 1 values", "gemm_int8", "wScale",
                    [&] { gemm(xq, xScale, packed, badWScale, nullptr, y); });
        const Tensor badBias = m_be->empty({n + 1});
        expectError("a bias of N + 1 values", "gemm_int8", "bias", [&] { gemm(xq, xScale, packed, wScale, &badBias, y); });
        Tensor badY = m_be->empty({m, n + 1});
        expectError("y of the wrong shape", "gemm_int8", "y is", [&] { gemm(xq, xScale, packed, wScale, nullptr, badY); });
        const Tensor notPacked = m_be->uploadU8(std::vector<std::uint8_t>(200, 7), {200});
        expectError("a weight that prepack_int8 did not pack", "gemm_int8", "packedW",
                    [&] { gemm(xq, xScale, notPacked, wScale, nullptr, y); });
        expectError("the unpacked I8 weight", "gemm_int8", "packedW", [&] { gemm(xq, xScale, w, wScale, nullptr, y); });
    }
};

QTEST_GUILESS_MAIN(TestInt8Gemm)
#include "test_int8_gemm.moc"

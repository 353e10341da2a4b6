// Weight-only quantized matrices (quant_matrix.h) and the CPU backend's gemm_weight_only: the host codecs'
// layout and rounding on odd shapes (K not a multiple of the group, odd K, one group per row), then the
// GEMM against a double-precision reference built from dequantizeMatrix's floats, for every format, bias and
// activation, with each instruction set and both the fused GEMV and the tiled path forced; and the
// argument errors naming the op and the tensor.
#include "engine/backends/cpu/cpu_backend.h"
#include "engine/backends/cpu/cpu_weight_only.h"
#include "engine/backends/quantized_weights.h"
#include "engine/core/errors.h"
#include "engine/core/quant_blocks.h"
#include "engine/core/quant_matrix.h"
#include "tests/support/test_support.h"

#include <QtTest>

#include <algorithm>
#include <cmath>

using namespace lathe;
using lathe::cpu::WeightOnlyDispatch;
using lathe::cpu::WeightOnlyIsa;
using lathe::cpu::WeightOnlyPath;
using lathe::test::randomVector;

namespace {

// The GEMM's error per output, relative to sum_k |x_k| |w_k| + |bias|: f32 sums of K products, 16 lanes at a
// time and group by group (or in OpenBLAS's blocks), round at most about (K / 16 + 16) times by 2^-24 of
// that sum (5e-6 for K = 784, the largest here), and erff/the scale multiply add a few ulp. 2e-5 leaves a
// margin of 4; one wrong code moves an output by about scale * |x_k|, above 1e-3 of the sum in these shapes.
constexpr double kWeightOnlyTol = 2e-5;

// A weight whose rows mix signs and magnitudes, with exact zeros (every 7th value) that asymmetric int4
// must keep at 0.
std::vector<float> randomWeight(std::int64_t rows, std::int64_t cols, std::uint64_t seed) {
    auto w = randomVector(static_cast<std::size_t>(rows * cols), seed);
    for (std::size_t i = 0; i < w.size(); i += 7) w[i] = 0.0f;
    // One row entirely non-negative, so an asymmetric group can have min(w, 0) = 0.
    if (rows > 1)
        for (std::int64_t k = 0; k < cols; ++k) w[static_cast<std::size_t>(cols + k)] = std::fabs(w[cols + k]);
    return w;
}

struct Variant {
    const char* name;
    QuantSpec spec; // group filled in per row
};
const Variant kVariants[] = {
    {"int8", {WeightFormat::Int8, 0, true}},
    {"int4-sym", {WeightFormat::Int4, 0, true}},
    {"int4-asym", {WeightFormat::Int4, 0, false}},
    {"nf4", {WeightFormat::Nf4, 0, true}},
    {"nf4-dq", {WeightFormat::Nf4, 0, true, true}}, // double-quantized absmax
    {"fp8", {WeightFormat::Fp8, 0, true}},
};

const char* activationName(Activation a) {
    switch (a) {
    case Activation::None: return "none";
    case Activation::Relu: return "relu";
    case Activation::Gelu: return "gelu";
    }
    return "?";
}

double activate(double v, Activation a) {
    switch (a) {
    case Activation::None: return v;
    case Activation::Relu: return v > 0 ? v : 0.0;
    case Activation::Gelu: return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
    }
    return v;
}

} // namespace

Q_DECLARE_METATYPE(lathe::QuantSpec)
Q_DECLARE_METATYPE(lathe::Activation)

class TestWeightOnlyGemm : public QObject {
    Q_OBJECT
    std::shared_ptr<Backend> m_be = makeCpuBackend(2);

    // Every kernel this CPU can run: each instruction set with each path.
    static std::vector<WeightOnlyDispatch> kernels() {
        std::vector<WeightOnlyDispatch> out;
        for (WeightOnlyIsa isa : {WeightOnlyIsa::Scalar, WeightOnlyIsa::Avx2, WeightOnlyIsa::Avx512})
            if (cpu::weightOnlyIsaAvailable(isa))
                for (WeightOnlyPath path : {WeightOnlyPath::Gemv, WeightOnlyPath::Tiled}) out.push_back({isa, path});
        return out;
    }

private slots:
    void cleanup() { cpu::setWeightOnlyDispatch({}); }

    void layoutOfAHandPackedRow() {
        // One row, K = 5, one group: absmax 0.7 -> int4 symmetric scale 0.1, codes q - 8 = round(w / 0.1).
        const std::vector<float> w{0.7f, -0.7f, 0.0f, 0.2f, -0.1f};
        const HostQuantMatrix q = quantizeMatrix(w.data(), 1, 5, {WeightFormat::Int4, 128, true});
        // k even in the low nibble, odd K ends on a byte whose high nibble is 0.
        QCOMPARE(q.packed, (std::vector<std::uint8_t>{0x1F, 0xA8, 0x07}));
        QCOMPARE(q.scales.size(), std::size_t(1));
        QVERIFY(q.zeros.empty());
        QCOMPARE(quantCode(q, 0, 1), 1);
        QCOMPARE(q.bytes(), std::size_t(3 + 4));
    }

    void roundTrip_data() {
        QTest::addColumn<QuantSpec>("spec");
        QTest::addColumn<int>("cols");
        for (const Variant& v : kVariants)
            for (int cols : {1, 3, 31, 33, 127, 130, 784})
                for (std::int64_t group : {32, 64, 128, 5, 1000}) { // 1000 >= K: one group per row
                    QuantSpec s = v.spec;
                    s.group = group;
                    QTest::addRow("%s K%d g%lld", v.name, cols, static_cast<long long>(group)) << s << cols;
                }
    }
    // Sizes, the zero high nibble at the end of an odd row, each value within half a step of its input
    // (nf4: no other codebook entry nearer), asymmetric int4 keeping 0 exact.
    void roundTrip() {
        QFETCH(QuantSpec, spec);
        QFETCH(int, cols);
        const std::int64_t rows = 5;
        const auto w = randomWeight(rows, cols, 61);
        const HostQuantMatrix q = quantizeMatrix(w.data(), rows, cols, spec);
        const std::int64_t groups = quantGroups(cols, spec.group), rowBytes = packedRowBytes(spec.format, cols);
        QCOMPARE(std::int64_t(q.packed.size()), rows * rowBytes);
        QCOMPARE(std::int64_t(q.scales.size()), rows * groups);
        QCOMPARE(std::int64_t(q.zeros.size()), q.hasZeros() ? rows * groups : 0);
        std::vector<float> back(w.size());
        dequantizeMatrix(q, back.data());
        for (std::int64_t r = 0; r < rows; ++r) {
            if (packedDType(spec.format) == DType::U8 && cols % 2 == 1)
                QCOMPARE(q.packed[static_cast<std::size_t>(r * rowBytes + rowBytes - 1)] >> 4, 0);
            for (std::int64_t k = 0; k < cols; ++k) {
                const std::size_t i = static_cast<std::size_t>(r * cols + k);
                const float scale = q.scales[static_cast<std::size_t>(r * groups + k / spec.group)];
                const QString where = QString("row %1, k %2: w %3, back %4, scale %5").arg(r).arg(k).arg(w[i]).arg(back[i]).arg(scale);
                if (spec.format == WeightFormat::Nf4 && spec.doubleQuant) {
                    // The codes are plain nf4's (chosen with the exact absmax); the absmax decode to within
                    // half a step of the dynamic map (at most 0.9 / 64 / 2 of the block's largest deviation).
                    const HostQuantMatrix plain = quantizeMatrix(w.data(), rows, cols, {spec.format, spec.group, true});
                    QVERIFY2(quantCode(q, r, k) == quantCode(plain, r, k), qPrintable(where));
                    const std::size_t g = static_cast<std::size_t>(r * groups + k / spec.group);
                    const float block = q.scaleAbsmax[g / kDoubleQuantBlock];
                    QVERIFY2(std::fabs(scale - plain.scales[g]) <= 0.0071f * block + 1e-7f, qPrintable(where));
                    QVERIFY2(back[i] == kNf4Codebook[static_cast<std::size_t>(quantCode(q, r, k))] * scale,
                             qPrintable(where));
                } else if (spec.format == WeightFormat::Fp8) {
                    // E4M3 keeps 3 mantissa bits: within half a step, 2^-4 of |w|, or half the subnormal step
                    // 2^-9 of the scale (values below 2^-6 of it).
                    QVERIFY2(back[i] == fp8E4M3ToFloat(static_cast<std::uint8_t>(quantCode(q, r, k))) * scale,
                             qPrintable(where));
                    QVERIFY2(std::fabs(back[i] - w[i]) <= std::max(0.0625f * std::fabs(w[i]), 0.5f * 0x1p-9f * scale) *
                                                              (1.0f + 1e-5f) + 1e-9f,
                             qPrintable(where));
                } else if (spec.format == WeightFormat::Nf4) {
                    // back = codebook[q] * absmax: no other entry is nearer to w / absmax (float slack 1e-6).
                    const float t = scale > 0 ? w[i] / scale : 0.0f;
                    const float chosen = std::fabs(t - kNf4Codebook[static_cast<std::size_t>(quantCode(q, r, k))]);
                    for (float c : kNf4Codebook) QVERIFY2(chosen <= std::fabs(t - c) + 1e-6f, qPrintable(where));
                    QVERIFY2(std::fabs(back[i] - kNf4Codebook[static_cast<std::size_t>(quantCode(q, r, k))] * scale) == 0.0f,
                             qPrintable(where));
                } else {
                    QVERIFY2(std::fabs(back[i] - w[i]) <= 0.5f * scale * (1.0f + 1e-5f) + 1e-7f, qPrintable(where));
                }
                if (q.hasZeros() && w[i] == 0.0f) QVERIFY2(back[i] == 0.0f, qPrintable(where));
            }
        }
    }

    void gemmMatchesTheReference_data() {
        QTest::addColumn<QuantSpec>("spec");
        QTest::addColumn<int>("m");
        QTest::addColumn<int>("n");
        QTest::addColumn<int>("k");
        QTest::addColumn<bool>("withBias");
        QTest::addColumn<Activation>("act");
        // Every (M, N) with every format; K, group, bias and activation cycle so that each format meets each
        // of them: K 1 and 3 (shorter than a chunk), 33 and 127 (odd, partial groups), 130, 784 (the MLP's).
        const int ks[] = {784, 33, 130, 1, 127, 3, 256};
        const std::int64_t groupsOf[] = {128, 32, 64, 5, 1 << 20};
        const Activation acts[] = {Activation::None, Activation::Relu, Activation::Gelu};
        int i = 0;
        for (const Variant& v : kVariants)
            for (int m : {1, 2, 3, 8, 64, 257})
                for (int n : {1, 7, 16, 33, 256}) {
                    QuantSpec s = v.spec;
                    s.group = groupsOf[i % 5];
                    const int k = ks[i % 7];
                    const bool bias = (i / 3) % 2 == 0;
                    const Activation act = acts[i % 3];
                    QTest::addRow("%s g%lld M%d N%d K%d %s %s", v.name, static_cast<long long>(s.group), m, n, k,
                                  bias ? "bias" : "no-bias", activationName(act))
                        << s << m << n << k << bias << act;
                    ++i;
                }
    }
    void gemmMatchesTheReference() {
        QFETCH(QuantSpec, spec);
        QFETCH(int, m);
        QFETCH(int, n);
        QFETCH(int, k);
        QFETCH(bool, withBias);
        QFETCH(Activation, act);
        const auto w = randomWeight(n, k, 62);
        const HostQuantMatrix hq = quantizeMatrix(w.data(), n, k, spec);
        std::vector<float> wq(w.size());
        dequantizeMatrix(hq, wq.data()); // (N, K): exactly what the kernels multiply by
        const auto vx = randomVector(static_cast<std::size_t>(m * k), 63);  // (M, K)
        const auto vb = randomVector(static_cast<std::size_t>(n), 64);      // (N)
        std::vector<double> ref(static_cast<std::size_t>(m * n)), bound(ref.size());
        for (int r = 0; r < m; ++r)
            for (int o = 0; o < n; ++o) {
                double acc = withBias ? vb[o] : 0.0, mag = withBias ? std::fabs(vb[o]) : 0.0;
                for (int j = 0; j < k; ++j) {
                    acc += double(vx[r * k + j]) * wq[o * k + j];
                    mag += std::fabs(double(vx[r * k + j]) * wq[o * k + j]);
                }
                ref[r * n + o] = activate(acc, act);
                bound[r * n + o] = mag;
            }
        const QuantizedWeights qw = uploadQuantizedWeights(*m_be, hq);
        const Tensor x = m_be->upload(vx, {m, k});
        const Tensor bias = m_be->upload(vb, {n});
        for (const WeightOnlyDispatch& d : kernels()) {
            cpu::setWeightOnlyDispatch(d);
            Tensor y = m_be->upload(randomVector(static_cast<std::size_t>(m * n), 65), {m, n}); // overwritten
            m_be->gemmWeightOnly(x, qw, withBias ? &bias : nullptr, act, y);
            const auto got = m_be->downloadF32(y);
            double worst = 0;
            std::size_t at = 0;
            for (std::size_t i = 0; i < got.size(); ++i) {
                const double e = std::fabs(got[i] - ref[i]) / std::max(bound[i], 1e-30);
                if (e > worst) {
                    worst = e;
                    at = i;
                }
            }
            QVERIFY2(worst <= kWeightOnlyTol,
                     qPrintable(QString("%1/%2: output %3: got %4, reference %5, error %6 of sum|x||w|")
                                    .arg(cpu::weightOnlyIsaName(d.isa))
                                    .arg(d.path == WeightOnlyPath::Gemv ? "gemv" : "tiled")
                                    .arg(at).arg(got[at]).arg(ref[at]).arg(worst)));
        }
    }

    // A wide layer in parallel (both paths split N over the pool) against the calling-thread result.
    void threadedMatchesOneThread() {
        const int m = 3, n = 1000, k = 512;
        const auto w = randomWeight(n, k, 66);
        auto one = makeCpuBackend(1);
        for (const Variant& v : kVariants) {
            QuantSpec s = v.spec;
            s.group = 64;
            const HostQuantMatrix hq = quantizeMatrix(w.data(), n, k, s);
            const auto vx = randomVector(static_cast<std::size_t>(m * k), 67);
            for (WeightOnlyPath path : {WeightOnlyPath::Gemv, WeightOnlyPath::Tiled}) {
                cpu::setWeightOnlyDispatch({WeightOnlyIsa::Auto, path});
                std::vector<float> results[2];
                int i = 0;
                for (Backend* be : {m_be.get(), one.get()}) {
                    Tensor y = be->empty({m, n});
                    be->gemmWeightOnly(be->upload(vx, {m, k}), uploadQuantizedWeights(*be, hq), nullptr,
                                       Activation::None, y);
                    results[i++] = be->downloadF32(y);
                }
                QCOMPARE(results[0], results[1]); // the same sums, only spread over threads
            }
        }
    }

    // bitsandbytes' create_dynamic_map(signed=True): 127 negative values, 0, 128 positive ones ending at 1; the
    // extremes (1 - 0.9 / 64 / 2 and 10^-6 * 0.55) as that function's linspace midpoints give them.
    void dynamicMapIsBitsandbytes() {
        const auto& map = dynamicMap8();
        QVERIFY(std::is_sorted(map.begin(), map.end()));
        QCOMPARE(std::count_if(map.begin(), map.end(), [](float v) { return v < 0; }), 127L);
        QCOMPARE(std::count(map.begin(), map.end(), 0.0f), 1L);
        QCOMPARE(map[255], 1.0f);
        QVERIFY(std::fabs(map[0] + 0.99296875f) < 1e-6f);
        QVERIFY(std::fabs(map[128] - 0.55e-6f) < 1e-12f);
        for (std::size_t i = 0; i < 256; ++i) QCOMPARE(int(dynamicMap8Code(map[i])), int(i));
    }

    // Double quantization stores a byte per absmax instead of four, plus an f32 per 256 and the offset.
    void doubleQuantBytes() {
        const auto w = randomWeight(256, 784, 75);
        const HostQuantMatrix plain = quantizeMatrix(w.data(), 256, 784, {WeightFormat::Nf4, 64, true});
        const HostQuantMatrix dq = quantizeMatrix(w.data(), 256, 784, {WeightFormat::Nf4, 64, true, true});
        const std::size_t scales = 256 * 13;
        QCOMPARE(plain.bytes(), std::size_t(256 * 392) + scales * 4);
        QCOMPARE(dq.bytes(), std::size_t(256 * 392) + scales + ((scales + 255) / 256) * 4 + 4);
        QCOMPARE(dq.packed, plain.packed);
    }

    // The FP8 GEMM's numerics on the CPU (Fp8Mode::Emulated): act(sx * sum e4m3(x / sx) * w~ + b) with sx the
    // per-tensor scale, against a double reference over the same E4M3 values, on every kernel; the native FP8
    // GEMM is not in the CPU's table and is refused naming its descriptor.
    void fp8GemmEmulated_data() {
        QTest::addColumn<int>("m");
        QTest::addColumn<int>("n");
        QTest::addColumn<int>("k");
        QTest::addColumn<Activation>("act");
        QTest::newRow("1x256x784 relu") << 1 << 256 << 784 << Activation::Relu;
        QTest::newRow("64x10x128 none") << 64 << 10 << 128 << Activation::None;
        QTest::newRow("257x33x47 gelu") << 257 << 33 << 47 << Activation::Gelu;
    }
    void fp8GemmEmulated() {
        QFETCH(int, m);
        QFETCH(int, n);
        QFETCH(int, k);
        QFETCH(Activation, act);
        const auto w = randomWeight(n, k, 76);
        const HostQuantMatrix hq = quantizeMatrix(w.data(), n, k, {WeightFormat::Fp8, k, true});
        std::vector<float> wq(w.size());
        dequantizeMatrix(hq, wq.data());
        auto vx = randomVector(static_cast<std::size_t>(m * k), 77);
        vx[0] = 3.5f; // the tensor's absmax, so the scale is not 1/448
        const auto vb = randomVector(static_cast<std::size_t>(n), 78);
        const float sx = fp8TensorScale(3.5f);
        std::vector<double> ref(static_cast<std::size_t>(m * n)), bound(ref.size());
        for (int r = 0; r < m; ++r)
            for (int o = 0; o < n; ++o) {
                double acc = vb[o], mag = std::fabs(vb[o]);
                for (int j = 0; j < k; ++j) {
                    const double xv = double(sx) * fp8E4M3ToFloat(floatToFp8E4M3(vx[r * k + j] / sx));
                    acc += xv * wq[o * k + j];
                    mag += std::fabs(xv * wq[o * k + j]);
                }
                ref[r * n + o] = activate(acc, act);
                bound[r * n + o] = mag;
            }
        const QuantizedWeights qw = uploadQuantizedWeights(*m_be, hq);
        QCOMPARE(qw.packed.dtype(), DType::F8E4M3);
        const Tensor x = m_be->upload(vx, {m, k});
        const Tensor bias = m_be->upload(vb, {n});
        for (const WeightOnlyDispatch& d : kernels()) {
            cpu::setWeightOnlyDispatch(d);
            Tensor y = m_be->empty({m, n});
            m_be->gemmFp8(x, qw, &bias, act, Fp8Mode::Emulated, y);
            const auto got = m_be->downloadF32(y);
            for (std::size_t i = 0; i < got.size(); ++i)
                QVERIFY2(std::fabs(got[i] - ref[i]) <= kWeightOnlyTol * bound[i],
                         qPrintable(QString("%1: output %2: got %3, reference %4").arg(cpu::weightOnlyIsaName(d.isa))
                                        .arg(i).arg(got[i]).arg(ref[i])));
        }
        QVERIFY(!m_be->supports(fp8GemmDesc(Fp8Mode::Native)));
        Tensor y = m_be->empty({m, n});
        const std::string msg = lathe::test::errorOf<BackendError>(
            [&] { m_be->gemmFp8(x, qw, &bias, act, Fp8Mode::Native, y); });
        QVERIFY2(msg.find("gemm f8e4m3 x f8e4m3") != std::string::npos, msg.c_str());
    }

    // Double-quantized nf4 weights lacking one of their scale tensors: BackendError naming it.
    void doubleQuantNeedsItsScaleTensors() {
        const auto w = randomWeight(4, 64, 79);
        const QuantizedWeights good =
            uploadQuantizedWeights(*m_be, quantizeMatrix(w.data(), 4, 64, {WeightFormat::Nf4, 32, true, true}));
        QVERIFY(!good.scales.defined());
        Tensor x = m_be->upload(randomVector(2 * 64, 80), {2, 64});
        Tensor y = m_be->empty({2, 4});
        m_be->gemmWeightOnly(x, good, nullptr, Activation::None, y);
        for (Tensor QuantizedWeights::*member :
             {&QuantizedWeights::scaleCodes, &QuantizedWeights::scaleAbsmax, &QuantizedWeights::scaleOffset}) {
            QuantizedWeights bad = good;
            bad.*member = Tensor();
            const std::string msg =
                lathe::test::errorOf<BackendError>([&] { m_be->gemmWeightOnly(x, bad, nullptr, Activation::None, y); });
            QVERIFY2(msg.find("double-quantized nf4 weights need scale_") != std::string::npos, msg.c_str());
        }
    }

    void forcingAnIsaTheCpuLacksThrows() {
        for (WeightOnlyIsa isa : {WeightOnlyIsa::Avx2, WeightOnlyIsa::Avx512})
            if (!cpu::weightOnlyIsaAvailable(isa)) {
                const std::string msg = lathe::test::errorOf<BackendError>([&] { cpu::setWeightOnlyDispatch({isa, {}}); });
                QVERIFY2(msg.find(cpu::weightOnlyIsaName(isa)) != std::string::npos, msg.c_str());
            }
        QVERIFY(cpu::weightOnlyIsaAvailable(WeightOnlyIsa::Scalar));
    }

    void epilogueOnATile() {
        // y (2, 3) inside a row stride of 5: only the tile changes.
        std::vector<float> y{-1, 0, 2, 9, 9, 0.5f, -3, 1, 9, 9};
        const std::vector<float> bias{1, 0.5f, -1};
        cpu::applyBiasActivation(y.data(), 2, 3, 5, bias.data(), Activation::Relu);
        QCOMPARE(y, (std::vector<float>{0, 0.5f, 1, 9, 9, 1.5f, 0, 0, 9, 9}));
        std::vector<float> g{1.0f};
        cpu::applyBiasActivation(g.data(), 1, 1, 1, nullptr, Activation::Gelu);
        QVERIFY(std::fabs(g[0] - 0.8413447f) < 1e-6f); // x Phi(x) at 1
    }

    // K = 0: no codes, y = act(bias) on every path (the tiled one would size its tiles by K).
    void emptyRowsGiveTheBias() {
        QuantizedWeights w;
        w.spec = {WeightFormat::Int4, 32, true};
        w.rows = 3;
        w.packed = m_be->empty({3, 0}, DType::U8);
        w.scales = m_be->empty({3, 0});
        Tensor x = m_be->empty({20, 0});
        Tensor bias = m_be->upload({-1.0f, 0.5f, 2.0f}, {3});
        for (WeightOnlyPath path : {WeightOnlyPath::Gemv, WeightOnlyPath::Tiled}) {
            cpu::setWeightOnlyDispatch({WeightOnlyIsa::Auto, path});
            Tensor y = m_be->upload(randomVector(60, 74), {20, 3});
            m_be->gemmWeightOnly(x, w, &bias, Activation::Relu, y);
            const auto got = m_be->downloadF32(y);
            for (int r = 0; r < 20; ++r) QCOMPARE((std::vector<float>(got.begin() + 3 * r, got.begin() + 3 * r + 3)),
                                                  (std::vector<float>{0.0f, 0.5f, 2.0f}));
        }
    }

    void rejectsBadArguments() {
        const int m = 2, n = 3, k = 10;
        const auto w = randomWeight(n, k, 68);
        const HostQuantMatrix asym = quantizeMatrix(w.data(), n, k, {WeightFormat::Int4, 4, false}); // 3 groups
        const QuantizedWeights good = uploadQuantizedWeights(*m_be, asym);
        Tensor x = m_be->upload(randomVector(m * k, 69), {m, k});
        Tensor y = m_be->empty({m, n});
        m_be->gemmWeightOnly(x, good, nullptr, Activation::None, y); // well-formed
        auto expectError = [&](const char* what, const char* needle, auto fn) {
            const std::string msg = lathe::test::errorOf<BackendError>(fn);
            QVERIFY2(msg.find("gemm_weight_only") != std::string::npos && msg.find(needle) != std::string::npos,
                     qPrintable(QString(what) + ": " + QString::fromStdString(msg)));
        };
        Tensor xWide = m_be->upload(randomVector(m * (k + 1), 70), {m, k + 1});
        expectError("x of another K", "x is", [&] { m_be->gemmWeightOnly(xWide, good, nullptr, Activation::None, y); });
        Tensor yWrong = m_be->empty({m, n + 1});
        expectError("y of the wrong shape", "y is", [&] { m_be->gemmWeightOnly(x, good, nullptr, Activation::None, yWrong); });
        QuantizedWeights badScales = good;
        badScales.scales = m_be->upload(randomVector(n * 2, 71), {n, 2});
        expectError("scales of the wrong size", "scales is",
                    [&] { m_be->gemmWeightOnly(x, badScales, nullptr, Activation::None, y); });
        QuantizedWeights noZeros = good;
        noZeros.zeros = Tensor();
        expectError("asymmetric int4 without zeros", "zeros",
                    [&] { m_be->gemmWeightOnly(x, noZeros, nullptr, Activation::None, y); });
        QuantizedWeights f32Zeros = good;
        f32Zeros.zeros = m_be->upload(randomVector(n * 3, 72), {n, 3});
        expectError("zeros of the wrong dtype", "zeros is",
                    [&] { m_be->gemmWeightOnly(x, f32Zeros, nullptr, Activation::None, y); });
        QuantizedWeights i8Codes = good;
        i8Codes.packed = m_be->zeros({n, k / 2}, DType::I8);
        expectError("4-bit codes in an i8 tensor", "packed is",
                    [&] { m_be->gemmWeightOnly(x, i8Codes, nullptr, Activation::None, y); });
        QuantizedWeights shortCodes = good;
        shortCodes.packed = m_be->zeros({n, k / 2 - 1}, DType::U8);
        expectError("codes of the wrong width", "packed is",
                    [&] { m_be->gemmWeightOnly(x, shortCodes, nullptr, Activation::None, y); });
        Tensor x16 = m_be->zeros({m, k}, DType::F16);
        expectError("f16 activations", "x is", [&] { m_be->gemmWeightOnly(x16, good, nullptr, Activation::None, y); });
        Tensor shortBias = m_be->upload(randomVector(n - 1, 73), {n - 1});
        expectError("a bias of the wrong size", "bias is",
                    [&] { m_be->gemmWeightOnly(x, good, &shortBias, Activation::None, y); });
        // Int8 codes must be i8.
        const HostQuantMatrix q8 = quantizeMatrix(w.data(), n, k, {WeightFormat::Int8, 4, true});
        QuantizedWeights u8Codes = uploadQuantizedWeights(*m_be, q8);
        u8Codes.packed = m_be->zeros({n, k}, DType::U8);
        expectError("int8 codes in a u8 tensor", "packed is",
                    [&] { m_be->gemmWeightOnly(x, u8Codes, nullptr, Activation::None, y); });
    }
};

QTEST_GUILESS_MAIN(TestWeightOnlyGemm)
#include "test_weight_only_gemm.moc"

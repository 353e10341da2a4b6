// The CPU backend beyond single ops: what it says it supports (and throws for the rest), memory
// accounting and the caching allocator, dtype conversions at their edges, optimizer steps against
// PyTorch's formulas, and identical results with one or two threads.
#include "engine/backends/cpu/cpu_backend.h"
#include "engine/backends/cpu/cpu_sgemm.h"
#include "engine/core/errors.h"
#include "tests/support/test_support.h"

#include <QtTest>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

using namespace lathe;
using lathe::test::normalizedError;
using lathe::test::randomVector;

Q_DECLARE_METATYPE(lathe::OpDesc)

namespace {

std::uint32_t bitsOf(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

} // namespace

class TestCpuBackend : public QObject {
    Q_OBJECT
    std::shared_ptr<Backend> m_be = makeCpuBackend(2);

private slots:
    void info();
    void supportsIsTruthful_data();
    void supportsIsTruthful();
    void unsupportedPairThrows();
    void memoryAccounting();
    void allocatorReusesBlocks();
    void timerMeasuresSleep();
    void fillAllDTypes();
    void convertF16Edges_data();
    void convertF16Edges();
    void convertBf16Edges_data();
    void convertBf16Edges();
    void convertRoundTripsEveryHalfPattern();
    void convertI32();
    void convertBlockFormats_data();
    void convertBlockFormats();
    void convertBetweenBlockFormats();
    void rowConvertersAcceptEmptyRows();
    void sgd_data();
    void sgd();
    void adam_data();
    void adam();
    void oneVersusTwoThreads();
    void maxPoolMatchesItsRule_data();
    void maxPoolMatchesItsRule();
};

void TestCpuBackend::info() {
    const DeviceInfo d = m_be->info();
    QCOMPARE(QString::fromStdString(d.backend), QString("cpu"));
    QCOMPARE(d.threads, 2);
    QVERIFY(d.available);
    QVERIFY(d.name.find("(2 threads)") != std::string::npos);
    QVERIFY(d.memoryTotalBytes > 0);
    QVERIFY(d.memoryFreeBytes <= d.memoryTotalBytes);
    QVERIFY2(d.runtimeVersion.find("OpenBLAS") != std::string::npos, d.runtimeVersion.c_str());
    // The kernels the figures are measured with, in the run's environment.
    const std::string gemm = cpu::ownSgemmEnabled() ? "f32 GEMM: lathe avx512" : "f32 GEMM: openblas";
    QVERIFY2(d.libraryVersion.find(gemm) != std::string::npos, d.libraryVersion.c_str());
    QVERIFY2(d.libraryVersion.find(std::string("int8: ") + cpuInt8PathName(cpuInt8Path(*m_be))) != std::string::npos,
             d.libraryVersion.c_str());
    if (cpu::ownSgemmAvailable()) {
        const bool before = cpu::ownSgemmEnabled();
        cpu::setOwnSgemmEnabled(!before);
        const std::string other = m_be->info().libraryVersion;
        cpu::setOwnSgemmEnabled(before);
        QVERIFY2(other.find(before ? "f32 GEMM: openblas" : "f32 GEMM: lathe avx512") != std::string::npos,
                 other.c_str());
    }
    QCOMPARE(QString::fromStdString(m_be->name()), QString("cpu"));
}

void TestCpuBackend::supportsIsTruthful_data() {
    QTest::addColumn<OpDesc>("desc");
    QTest::addColumn<bool>("expected");
    auto row = [](const OpDesc& d, bool e) { QTest::newRow(d.toString().c_str()) << d << e; };
    for (int o = 0; o < int(Op::Count); ++o)
        row(OpDesc::uniform(static_cast<Op>(o), DType::F32), true); // quantize_rows f32 -> i8 included
    for (DType dt : {DType::F16, DType::BF16, DType::I8, DType::I32, DType::U8, DType::F8E4M3, DType::Q4_0, DType::NF4}) {
        row(OpDesc::uniform(Op::Fill, dt), true);
        row(OpDesc::uniform(Op::Copy, dt), true);
        row(OpDesc::convert(DType::F32, dt), true);
        row(OpDesc::convert(dt, DType::F32), true);
        row(OpDesc::uniform(Op::Relu, dt), false);
        row(OpDesc::uniform(Op::Conv2dForward, dt), false);
        row(OpDesc::uniform(Op::AdamStep, dt), false);
    }
    row(OpDesc::convert(DType::Q4_0, DType::NF4), true);
    row(OpDesc::uniform(Op::Gemm, DType::F16), true);
    row(OpDesc::uniform(Op::Gemm, DType::BF16), true);
    row(OpDesc::uniform(Op::Gemm, DType::I8), false);
    row(OpDesc::uniform(Op::Im2colRows, DType::I8), true); // a static-scale W8A8 convolution's codes
    row(OpDesc::uniform(Op::Im2colRows, DType::F16), false);
    row(OpDesc::uniform(Op::Gemm, DType::I32), false);
    // The W8A8 GEMM (cpu_int8.cpp); the other mixed-type GEMMs are not claimed before they exist.
    row(OpDesc::gemm(DType::I8, DType::I8, DType::F32, DType::I32), true);
    row(OpDesc::gemm(DType::I8, DType::I8, DType::I32, DType::I32), false);
    row(OpDesc::gemm(DType::F32, DType::Q4_0, DType::F32, DType::F32, OpLayout::BlockQuantizedWeights), false);
    row(OpDesc::gemm(DType::F32, DType::F16, DType::F32, DType::F32), false);
    // f16 sums in f32; a descriptor asking for f16 accumulation is another op.
    row(OpDesc::gemm(DType::F16, DType::F16, DType::F16, DType::F16), false);
    // The weight-only GEMMs over group-wise int8 / int4 / nf4 weights (cpu_weight_only.cpp).
    for (WeightFormat f : {WeightFormat::Int8, WeightFormat::Int4, WeightFormat::Nf4}) row(weightOnlyGemmDesc(f), true);
}

void TestCpuBackend::supportsIsTruthful() {
    QFETCH(OpDesc, desc);
    QFETCH(bool, expected);
    QCOMPARE(m_be->supports(desc), expected);
    const auto all = m_be->supportedOps();
    QCOMPARE(std::find(all.begin(), all.end(), desc) != all.end(), expected);
}

void TestCpuBackend::unsupportedPairThrows() {
    Tensor a8 = m_be->zeros({4, 4}, DType::I8), b8 = m_be->zeros({4, 4}, DType::I8), c8 = m_be->zeros({4, 4}, DType::I8);
    try {
        m_be->gemm(a8, Trans::No, b8, Trans::No, c8, 1.0f, 0.0f);
        QFAIL("gemm with i8 did not throw");
    } catch (const BackendError& e) {
        // The message names the whole descriptor that is missing.
        QCOMPARE(QString(e.what()), QString("cpu does not support gemm i8 x i8 -> i8 (acc i32)"));
    }
    Tensor h = m_be->zeros({8}, DType::F16), h2 = m_be->zeros({8}, DType::F16);
    QVERIFY_THROWS_EXCEPTION(BackendError, m_be->relu(h, h2));
    QVERIFY_THROWS_EXCEPTION(BackendError, m_be->scale(h, 2.0f));
    Tensor b16 = m_be->zeros({1, 1, 4, 4}, DType::BF16), w16 = m_be->zeros({1, 1, 3, 3}, DType::BF16);
    Tensor y16 = m_be->zeros({1, 1, 2, 2}, DType::BF16);
    Conv2dGeometry g;
    g.height = g.width = 4, g.kernelH = g.kernelW = 3;
    QVERIFY_THROWS_EXCEPTION(BackendError, m_be->conv2dForward(b16, w16, y16, g));
    // Mixed dtypes in a gemm are refused rather than converted behind the caller's back.
    Tensor a = m_be->zeros({2, 2}), hb = m_be->zeros({2, 2}, DType::F16), c = m_be->zeros({2, 2});
    QCOMPARE(QString::fromStdString(test::errorOf<BackendError>([&] { m_be->gemm(a, Trans::No, hb, Trans::No, c, 1.0f, 0.0f); })),
             QString("cpu does not support gemm f32 x f16 -> f32"));
}

void TestCpuBackend::memoryAccounting() {
    auto be = makeCpuBackend(1);
    QCOMPARE(be->currentAllocatedBytes(), std::uint64_t(0));
    {
        Tensor a = be->empty({1000});           // 4000 bytes
        Tensor b = be->empty({10, 10}, DType::F16); // 200 bytes
        QCOMPARE(be->currentAllocatedBytes(), std::uint64_t(4200));
        QCOMPARE(be->peakAllocatedBytes(), std::uint64_t(4200));
        Tensor view = a.view({10, 100}); // a view shares storage: no new bytes
        QCOMPARE(be->currentAllocatedBytes(), std::uint64_t(4200));
    }
    QCOMPARE(be->currentAllocatedBytes(), std::uint64_t(0));
    QCOMPARE(be->peakAllocatedBytes(), std::uint64_t(4200));
    be->resetPeakAllocated();
    QCOMPARE(be->peakAllocatedBytes(), std::uint64_t(0));
    Tensor c = be->empty({16});
    QCOMPARE(be->peakAllocatedBytes(), std::uint64_t(64));
    // The peak counts bytes held by live tensors, not the allocator's cache.
    c = Tensor();
    Tensor d = be->empty({16});
    QCOMPARE(be->peakAllocatedBytes(), std::uint64_t(64));
}

void TestCpuBackend::allocatorReusesBlocks() {
    auto be = makeCpuBackend(1);
    void* first = nullptr;
    {
        Tensor a = be->empty({256});
        first = a.data();
        QCOMPARE(reinterpret_cast<std::uintptr_t>(first) % 64, std::uintptr_t(0));
    }
    Tensor b = be->empty({256});
    QCOMPARE(b.data(), first); // same size class: the cached block comes back
    Tensor c = be->empty({256});
    QVERIFY(c.data() != first);
    // Storage outlives the backend that made it (the pool is shared with the storage).
    Tensor survivor = be->upload(randomVector(64, 3), {64});
    be.reset();
    QCOMPARE(survivor.numel(), std::int64_t(64));
    QVERIFY(std::isfinite(survivor.ptr<float>()[63]));
}

void TestCpuBackend::timerMeasuresSleep() {
    auto t = m_be->createTimer();
    t->start();
    QThread::msleep(20);
    t->stop();
    const double ms = t->elapsedMs();
    QVERIFY2(ms >= 19.0 && ms < 2000.0, qPrintable(QString::number(ms)));
}

void TestCpuBackend::fillAllDTypes() {
    struct Case {
        DType dt;
        float value;
        float expected;
    };
    for (const Case& c : {Case{DType::F32, 1.25f, 1.25f}, Case{DType::F16, 0.1f, halfToFloat(floatToHalf(0.1f))},
                          Case{DType::BF16, 3.3f, bf16ToFloat(floatToBf16(3.3f))}, Case{DType::I32, 2.5f, 3.0f},
                          Case{DType::I8, -300.0f, -128.0f}, Case{DType::U8, 7.0f, 7.0f}}) {
        Tensor t = m_be->empty({100003}, c.dt); // above the inline threshold
        m_be->fill(t, c.value);
        for (float v : m_be->downloadF32(t)) QCOMPARE(v, c.expected);
    }
}

void TestCpuBackend::convertF16Edges_data() {
    QTest::addColumn<float>("in");
    QTest::addColumn<quint16>("bits");
    const float inf = std::numeric_limits<float>::infinity();
    QTest::newRow("zero") << 0.0f << quint16(0x0000);
    QTest::newRow("negative zero") << -0.0f << quint16(0x8000);
    QTest::newRow("one") << 1.0f << quint16(0x3c00);
    QTest::newRow("max") << 65504.0f << quint16(0x7bff);
    QTest::newRow("rounds to max") << 65519.0f << quint16(0x7bff);
    QTest::newRow("overflow to inf") << 65520.0f << quint16(0x7c00);
    QTest::newRow("inf") << inf << quint16(0x7c00);
    QTest::newRow("-inf") << -inf << quint16(0xfc00);
    QTest::newRow("smallest normal") << std::ldexp(1.0f, -14) << quint16(0x0400);
    QTest::newRow("largest subnormal") << std::ldexp(1023.0f, -24) << quint16(0x03ff);
    QTest::newRow("smallest subnormal") << std::ldexp(1.0f, -24) << quint16(0x0001);
    QTest::newRow("half the smallest subnormal: tie to even 0") << std::ldexp(1.0f, -25) << quint16(0x0000);
    QTest::newRow("1.5 x smallest subnormal: tie to even 2") << std::ldexp(3.0f, -25) << quint16(0x0002);
    QTest::newRow("underflow") << 1e-9f << quint16(0x0000);
    QTest::newRow("tie 1 + 2^-11 -> 1") << 1.0f + std::ldexp(1.0f, -11) << quint16(0x3c00);
    QTest::newRow("tie 1 + 3*2^-11 -> 1 + 2^-9") << 1.0f + std::ldexp(3.0f, -11) << quint16(0x3c02);
    QTest::newRow("above tie rounds up") << 1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20) << quint16(0x3c01);
    QTest::newRow("-2") << -2.0f << quint16(0xc000);
}

void TestCpuBackend::convertF16Edges() {
    QFETCH(float, in);
    QFETCH(quint16, bits);
    Tensor src = m_be->upload(std::vector<float>{in}, {1}), h = m_be->empty({1}, DType::F16);
    m_be->convert(src, h);
    Tensor host = m_be->download(h);
    QCOMPARE(host.ptr<std::uint16_t>()[0], bits);
    Tensor back = m_be->empty({1});
    m_be->convert(h, back);
    QCOMPARE(m_be->downloadF32(back)[0], halfToFloat(bits));
}

void TestCpuBackend::convertBf16Edges_data() {
    QTest::addColumn<float>("in");
    QTest::addColumn<quint16>("bits");
    const float inf = std::numeric_limits<float>::infinity();
    QTest::newRow("one") << 1.0f << quint16(0x3f80);
    QTest::newRow("tie 1 + 2^-8 -> 1") << 1.0f + std::ldexp(1.0f, -8) << quint16(0x3f80);
    QTest::newRow("tie 1 + 3*2^-8 -> 1 + 2^-6") << 1.0f + std::ldexp(3.0f, -8) << quint16(0x3f82);
    QTest::newRow("above tie rounds up") << 1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20) << quint16(0x3f81);
    QTest::newRow("inf") << inf << quint16(0x7f80);
    QTest::newRow("-inf") << -inf << quint16(0xff80);
    QTest::newRow("float max overflows to inf") << std::numeric_limits<float>::max() << quint16(0x7f80);
    QTest::newRow("subnormal kept") << std::ldexp(1.0f, -133) << quint16(0x0001);
    QTest::newRow("negative zero") << -0.0f << quint16(0x8000);
}

void TestCpuBackend::convertBf16Edges() {
    QFETCH(float, in);
    QFETCH(quint16, bits);
    Tensor src = m_be->upload(std::vector<float>{in}, {1}), h = m_be->empty({1}, DType::BF16);
    m_be->convert(src, h);
    QCOMPARE(m_be->download(h).ptr<std::uint16_t>()[0], bits);
}

void TestCpuBackend::convertRoundTripsEveryHalfPattern() {
    // f16 -> f32 -> f16 and bf16 -> f32 -> bf16 are exact for all 65536 patterns (NaN stays NaN).
    std::vector<std::uint16_t> all(65536);
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::uint16_t>(i);
    for (DType dt : {DType::F16, DType::BF16}) {
        Tensor h = m_be->empty({65536}, dt);
        m_be->copyFromHost(h, all.data());
        Tensor f = m_be->empty({65536}), back = m_be->empty({65536}, dt);
        m_be->convert(h, f);
        m_be->convert(f, back);
        Tensor hf = m_be->download(f), hb = m_be->download(back);
        for (std::size_t i = 0; i < all.size(); ++i) {
            const float v = hf.ptr<float>()[i];
            if (std::isnan(v)) {
                const std::uint16_t b = hb.ptr<std::uint16_t>()[i];
                QVERIFY(std::isnan(dt == DType::F16 ? halfToFloat(b) : bf16ToFloat(b)));
                continue;
            }
            QCOMPARE(hb.ptr<std::uint16_t>()[i], all[i]);
        }
    }
    // f32 -> f16 -> f32 on random values equals the scalar reference element by element.
    auto v = randomVector(10007, 7, -70000.0f, 70000.0f);
    Tensor f = m_be->upload(v, {10007}), h = m_be->empty({10007}, DType::F16), g = m_be->empty({10007});
    m_be->convert(f, h);
    m_be->convert(h, g);
    const auto got = m_be->downloadF32(g);
    for (std::size_t i = 0; i < v.size(); ++i) QCOMPARE(bitsOf(got[i]), bitsOf(halfToFloat(floatToHalf(v[i]))));
}

void TestCpuBackend::convertI32() {
    Tensor f = m_be->upload(std::vector<float>{2.5f, -2.5f, 0.49f, 3e9f, -3e9f, 7.0f}, {6}), i = m_be->empty({6}, DType::I32);
    m_be->convert(f, i);
    Tensor h = m_be->download(i);
    const std::vector<std::int32_t> expected{3, -3, 0, 2147483647, -2147483647 - 1, 7};
    QCOMPARE(std::vector<std::int32_t>(h.ptr<std::int32_t>(), h.ptr<std::int32_t>() + 6), expected);
    Tensor back = m_be->empty({6});
    m_be->convert(i, back);
    QCOMPARE(m_be->downloadF32(back)[5], 7.0f);
    Tensor wrong = m_be->empty({5}, DType::I32);
    QVERIFY_THROWS_EXCEPTION(BackendError, m_be->convert(f, wrong));
}

void TestCpuBackend::convertBlockFormats_data() {
    QTest::addColumn<int>("dtype");
    for (DType dt : {DType::F8E4M3, DType::Q4_0, DType::Q4_1, DType::NF4, DType::Q8_0})
        QTest::newRow(dtypeName(dt)) << int(dt);
}

void TestCpuBackend::convertBlockFormats() {
    // Regression (issue "Engine seams for the strategy families"): convert stepped through memory by
    // bits / 8, which is 0 for a 4-bit format. 2 x 8192 rows of 64 are large enough to be split over
    // the pool at offsets that are not multiples of 8 bytes; the backend must write exactly the bytes
    // the row codec writes for the whole buffer in one call, and read them back to the same floats.
    QFETCH(int, dtype);
    const DType dt = static_cast<DType>(dtype);
    const auto& tr = traits(dt);
    const Shape shape{2 * 8192, 64};
    const auto n = static_cast<std::size_t>(numel(shape));
    const auto values = randomVector(n, 31, -3.0f, 3.0f);
    std::vector<unsigned char> expectedBytes(storageBytes(dt, n));
    tr.fromFloat(values.data(), expectedBytes.data(), n);
    std::vector<float> expectedBack(n);
    tr.toFloat(expectedBytes.data(), expectedBack.data(), n);

    Tensor src = m_be->upload(values, shape), q = m_be->empty(shape, dt), back = m_be->empty(shape);
    QCOMPARE(q.bytes(), n / static_cast<std::size_t>(tr.blockSize) * tr.bytesPerBlock);
    m_be->convert(src, q);
    Tensor hq = m_be->download(q);
    QVERIFY(std::memcmp(hq.data(), expectedBytes.data(), expectedBytes.size()) == 0);
    m_be->convert(q, back);
    QVERIFY(m_be->downloadF32(back) == expectedBack);
    // The quantization is real: within half a step of the block's scale, far from exact.
    QVERIFY(normalizedError(expectedBack, values) > 1e-4);
    QVERIFY2(normalizedError(expectedBack, values) < 0.2, qPrintable(QString::number(normalizedError(expectedBack, values))));
}

void TestCpuBackend::convertBetweenBlockFormats() {
    // Two non-f32 formats with different block sizes (q4_0: 32, nf4: 64) go through f32 in tiles of
    // whole blocks of both; the result equals decoding, then encoding, on the host.
    const Shape shape{3, 4096};
    const auto n = static_cast<std::size_t>(numel(shape));
    const auto values = randomVector(n, 32);
    Tensor src = m_be->upload(values, shape), q4 = m_be->empty(shape, DType::Q4_0), nf4 = m_be->empty(shape, DType::NF4);
    m_be->convert(src, q4);
    m_be->convert(q4, nf4);
    std::vector<float> viaQ4(n);
    traits(DType::Q4_0).toFloat(m_be->download(q4).data(), viaQ4.data(), n);
    std::vector<unsigned char> expected(storageBytes(DType::NF4, n));
    traits(DType::NF4).fromFloat(viaQ4.data(), expected.data(), n);
    QVERIFY(std::memcmp(m_be->download(nf4).data(), expected.data(), expected.size()) == 0);
    // A shape that is not whole blocks is refused with the block size in the message.
    const std::string msg = test::errorOf<BackendError>([&] { (void)m_be->empty({4, 48}, DType::Q4_0); });
    QVERIFY2(msg.find("block size 32") != std::string::npos, msg.c_str());
}

// An empty tensor has no storage: the traits' row converters get null pointers with n = 0 (a
// zero-length memcpy from null is undefined; the asan preset's UBSan stops on it).
void TestCpuBackend::rowConvertersAcceptEmptyRows() {
    for (DType dt : {DType::F32, DType::F16, DType::BF16, DType::I8, DType::I32, DType::U8}) {
        const DTypeTraits& tr = traits(dt);
        tr.fromFloat(nullptr, nullptr, 0);
        tr.toFloat(nullptr, nullptr, 0);
        // And a real row still converts.
        const std::vector<float> in{1.0f, -2.0f, 3.0f, 0.5f};
        std::vector<unsigned char> buf(storageBytes(dt, in.size()));
        std::vector<float> out(in.size());
        tr.fromFloat(in.data(), buf.data(), in.size());
        tr.toFloat(buf.data(), out.data(), out.size());
        QVERIFY2(out[0] == 1.0f, tr.name);
    }
}

void TestCpuBackend::sgd_data() {
    QTest::addColumn<float>("momentum");
    QTest::addColumn<float>("weightDecay");
    QTest::addColumn<bool>("nesterov");
    QTest::newRow("plain") << 0.0f << 0.0f << false;
    QTest::newRow("weight decay") << 0.0f << 0.01f << false;
    QTest::newRow("momentum") << 0.9f << 0.0f << false;
    QTest::newRow("momentum + decay") << 0.9f << 5e-4f << false;
    QTest::newRow("nesterov") << 0.8f << 1e-3f << true;
}

void TestCpuBackend::sgd() {
    QFETCH(float, momentum);
    QFETCH(float, weightDecay);
    QFETCH(bool, nesterov);
    const std::size_t n = 50000; // threaded path
    SgdParams p;
    p.lr = 0.05f, p.momentum = momentum, p.weightDecay = weightDecay, p.nesterov = nesterov;
    auto w0 = randomVector(n, 121);
    std::vector<double> w(w0.begin(), w0.end()), buf(n, 0.0);
    Tensor tw = m_be->upload(w0, {std::int64_t(n)}), tv = m_be->zeros({std::int64_t(n)});
    for (int step = 1; step <= 3; ++step) {
        auto g = randomVector(n, 130 + step);
        // torch.optim.SGD: d = g + wd*w; buf = d (first) or mu*buf + d; d = d + mu*buf (nesterov) or buf.
        for (std::size_t i = 0; i < n; ++i) {
            double d = g[i] + double(weightDecay) * w[i];
            if (momentum != 0.0f) {
                buf[i] = step == 1 ? d : double(momentum) * buf[i] + d;
                d = nesterov ? d + double(momentum) * buf[i] : buf[i];
            }
            w[i] -= double(p.lr) * d;
        }
        Tensor tg = m_be->upload(g, {std::int64_t(n)});
        m_be->sgdStep(tw, tg, tv, p, step == 1);
    }
    QVERIFY(normalizedError(m_be->downloadF32(tw), std::vector<float>(w.begin(), w.end())) < 1e-6);
}

void TestCpuBackend::adam_data() {
    QTest::addColumn<float>("weightDecay");
    QTest::addColumn<bool>("decoupled");
    QTest::newRow("adam") << 0.0f << false;
    QTest::newRow("adam + L2") << 0.01f << false;
    QTest::newRow("adamw") << 0.1f << true;
}

void TestCpuBackend::adam() {
    QFETCH(float, weightDecay);
    QFETCH(bool, decoupled);
    const std::size_t n = 40000;
    AdamParams p;
    p.lr = 1e-2f, p.weightDecay = weightDecay, p.decoupled = decoupled;
    auto w0 = randomVector(n, 141);
    std::vector<double> w(w0.begin(), w0.end()), m(n, 0.0), v(n, 0.0);
    Tensor tw = m_be->upload(w0, {std::int64_t(n)}), tm = m_be->zeros({std::int64_t(n)}), tv = m_be->zeros({std::int64_t(n)});
    for (int step = 1; step <= 4; ++step) {
        auto g = randomVector(n, 150 + step);
        const double bc1 = 1 - std::pow(double(p.beta1), step), bc2 = 1 - std::pow(double(p.beta2), step);
        for (std::size_t i = 0; i < n; ++i) {
            // torch.optim.Adam / AdamW (PyTorch 1.13, single-tensor path).
            if (decoupled) w[i] *= 1.0 - double(p.lr) * weightDecay;
            const double gi = g[i] + (decoupled ? 0.0 : double(weightDecay) * w[i]);
            m[i] = p.beta1 * m[i] + (1 - double(p.beta1)) * gi;
            v[i] = p.beta2 * v[i] + (1 - double(p.beta2)) * gi * gi;
            const double denom = std::sqrt(v[i]) / std::sqrt(bc2) + p.eps;
            w[i] -= double(p.lr) / bc1 * m[i] / denom;
        }
        Tensor tg = m_be->upload(g, {std::int64_t(n)});
        m_be->adamStep(tw, tg, tm, tv, p, step);
    }
    QVERIFY(normalizedError(m_be->downloadF32(tw), std::vector<float>(w.begin(), w.end())) < 1e-6);
    QVERIFY(normalizedError(m_be->downloadF32(tm), std::vector<float>(m.begin(), m.end())) < 1e-5);
    Tensor tg = m_be->upload(randomVector(n, 9), {std::int64_t(n)});
    QVERIFY_THROWS_EXCEPTION(BackendError, m_be->adamStep(tw, tg, tm, tv, p, 0));
}

// max_pool2d's rule, written plainly: over the window in row order, the first maximum wins and the first
// NaN propagates (as torch.nn.MaxPool2d); argmax is the flat index in the input plane.
void TestCpuBackend::maxPoolMatchesItsRule_data() {
    QTest::addColumn<int>("height");
    QTest::addColumn<int>("width");
    QTest::addColumn<int>("kernel");
    QTest::addColumn<int>("stride");
    QTest::addColumn<int>("pad");
    QTest::newRow("2x2 stride 2 (the fast path), 28x28") << 28 << 28 << 2 << 2 << 0;
    QTest::newRow("2x2 stride 2, odd 7x9 (last row and column dropped)") << 7 << 9 << 2 << 2 << 0;
    QTest::newRow("2x2 stride 2, 40x70 (two rows of 16 outputs and a tail on AVX-512)") << 40 << 70 << 2 << 2 << 0;
    QTest::newRow("3x3 stride 2 pad 1 (the general loop)") << 14 << 14 << 3 << 2 << 1;
    QTest::newRow("2x2 stride 1 (the general loop)") << 6 << 6 << 2 << 1 << 0;
}

void TestCpuBackend::maxPoolMatchesItsRule() {
    QFETCH(int, height);
    QFETCH(int, width);
    QFETCH(int, kernel);
    QFETCH(int, stride);
    QFETCH(int, pad);
    Pool2dGeometry g;
    g.batch = 3, g.channels = 5, g.height = height, g.width = width;
    g.kernelH = g.kernelW = kernel, g.strideH = g.strideW = stride, g.padH = g.padW = pad;
    const std::int64_t planes = g.batch * g.channels, inPlane = g.height * g.width, oh = g.outH(), ow = g.outW();
    // Values on a coarse grid, so that windows hold ties; a few NaNs, in some windows two.
    auto x = randomVector(static_cast<std::size_t>(planes * inPlane), 91, -4.0f, 4.0f);
    for (float& v : x) v = std::round(v);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (std::size_t i = 17; i < x.size(); i += 97) x[i] = nan;
    for (std::size_t i = 18; i < x.size(); i += 193) x[i] = nan;
    Tensor xt = m_be->upload(x, {g.batch, g.channels, g.height, g.width});
    Tensor y = m_be->empty({g.batch, g.channels, oh, ow});
    Tensor argmax = m_be->empty({g.batch, g.channels, oh, ow}, DType::I32);
    m_be->maxPool2dForward(xt, y, argmax, g);
    const auto got = m_be->downloadF32(y);
    const Tensor a = m_be->download(argmax);
    const auto* gotArg = a.ptr<const std::int32_t>();
    int nanWindows = 0, tiedWindows = 0;
    for (std::int64_t pl = 0; pl < planes; ++pl)
        for (std::int64_t oy = 0; oy < oh; ++oy)
            for (std::int64_t ox = 0; ox < ow; ++ox) {
                float best = 0.0f;
                std::int64_t at = -1;
                int ties = 0;
                for (std::int64_t ky = 0; ky < kernel && !(at >= 0 && std::isnan(best)); ++ky)
                    for (std::int64_t kx = 0; kx < kernel; ++kx) {
                        const std::int64_t iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                        if (iy < 0 || iy >= height || ix < 0 || ix >= width) continue;
                        const float v = x[static_cast<std::size_t>(pl * inPlane + iy * width + ix)];
                        if (at < 0 || v > best || std::isnan(v)) {
                            best = v;
                            at = iy * width + ix;
                            if (std::isnan(v)) break;
                        } else if (v == best) {
                            ++ties;
                        }
                    }
                const std::size_t o = static_cast<std::size_t>(pl * oh * ow + oy * ow + ox);
                nanWindows += std::isnan(best) ? 1 : 0;
                tiedWindows += ties > 0 ? 1 : 0;
                const bool same = std::isnan(best) ? std::isnan(got[o]) : got[o] == best;
                if (!same || gotArg[o] != at)
                    QFAIL(qPrintable(QString("plane %1, output (%2, %3): %4 at %5, expected %6 at %7")
                                         .arg(pl).arg(oy).arg(ox).arg(double(got[o])).arg(gotArg[o]).arg(double(best)).arg(at)));
            }
    QVERIFY(nanWindows > 0);
    QVERIFY(tiedWindows > 0);
}

void TestCpuBackend::oneVersusTwoThreads() {
    // Every output element is computed on one thread in a fixed order, and GEMMs and convolutions
    // are cut into chunks that depend on the shape only (OpenBLAS itself runs single-threaded), so
    // the thread count must not change a single bit.
    auto one = makeCpuBackend(1), two = makeCpuBackend(2);
    struct Outputs {
        std::vector<std::vector<float>> exact, blas;
    };
    auto run = [](Backend& be) {
        Outputs out;
        Tensor a = be.upload(randomVector(256 * 784, 1), {256, 784}), w = be.upload(randomVector(300 * 784, 2), {300, 784});
        Tensor c = be.empty({256, 300});
        be.gemm(a, Trans::No, w, Trans::Yes, c, 1.0f, 0.0f);
        out.blas.push_back(be.downloadF32(c));
        Tensor a1 = be.upload(randomVector(784, 3), {1, 784}), c1 = be.empty({1, 300});
        be.gemm(a1, Trans::No, w, Trans::Yes, c1, 1.0f, 0.0f);
        out.blas.push_back(be.downloadF32(c1));
        Conv2dGeometry g;
        g.batch = 16, g.inChannels = 3, g.height = g.width = 20, g.outChannels = 8, g.kernelH = g.kernelW = 5;
        g.padH = g.padW = 2;
        Tensor x = be.upload(randomVector(16 * 3 * 400, 5), {16, 3, 20, 20});
        Tensor cw = be.upload(randomVector(8 * 3 * 25, 6), {8, 3, 5, 5}), y = be.empty({16, 8, 20, 20});
        be.conv2dForward(x, cw, y, g);
        out.blas.push_back(be.downloadF32(y));
        Tensor dy = be.upload(randomVector(16 * 8 * 400, 7), {16, 8, 20, 20});
        Tensor dx = be.empty({16, 3, 20, 20}), dw = be.empty({8, 3, 5, 5});
        be.conv2dBackwardData(dy, cw, dx, g);
        be.conv2dBackwardWeight(x, dy, dw, g, false);
        out.blas.push_back(be.downloadF32(dx));
        out.blas.push_back(be.downloadF32(dw));

        // Large enough that every loop below runs on both threads of `two`.
        Tensor h = be.upload(randomVector(256 * 300, 10, -3.0f, 3.0f), {256, 300});
        Tensor bias = be.upload(randomVector(300, 4), {300});
        be.biasAdd(h, bias);
        out.exact.push_back(be.downloadF32(h));
        Tensor r = be.empty({256, 300});
        be.relu(h, r);
        out.exact.push_back(be.downloadF32(r));
        be.gelu(h, r);
        out.exact.push_back(be.downloadF32(r));
        Tensor db = be.empty({300});
        be.biasGrad(h, db, false);
        out.exact.push_back(be.downloadF32(db));
        Tensor ln = be.empty({256, 300}), mean = be.empty({256}), rstd = be.empty({256});
        Tensor gamma = be.upload(randomVector(300, 7), {300}), beta = be.upload(randomVector(300, 8), {300});
        be.layerNormForward(h, gamma, beta, ln, mean, rstd, 1e-5f);
        out.exact.push_back(be.downloadF32(ln));
        Tensor dln = be.empty({256, 300}), dg = be.empty({300}), dbeta = be.empty({300});
        be.layerNormBackward(r, h, gamma, mean, rstd, dln, dg, dbeta, false);
        out.exact.push_back(be.downloadF32(dln));
        out.exact.push_back(be.downloadF32(dg));
        Tensor labels = be.uploadI32(lathe::test::randomLabels(256, 300, 9), {256});
        Tensor losses = be.empty({256}), dl = be.empty({256, 300});
        be.softmaxCrossEntropy(h, labels, losses, dl, 1.0f / 256);
        out.exact.push_back(be.downloadF32(losses));
        out.exact.push_back(be.downloadF32(dl));
        Pool2dGeometry pg;
        pg.batch = 64, pg.channels = 8, pg.height = pg.width = 16;
        Tensor px = be.upload(randomVector(64 * 8 * 256, 11), {64, 8, 16, 16});
        Tensor py = be.empty({64, 8, 8, 8}), parg = be.empty({64, 8, 8, 8}, DType::I32);
        be.maxPool2dForward(px, py, parg, pg);
        out.exact.push_back(be.downloadF32(py));
        Tensor table = be.upload(randomVector(1000 * 64, 12), {1000, 64}), dtab = be.empty({1000, 64});
        Tensor ids = be.uploadI32(lathe::test::randomLabels(4096, 1000, 13), {4096});
        Tensor dye = be.upload(randomVector(4096 * 64, 14), {4096, 64});
        be.embeddingBackward(ids, dye, dtab, false);
        out.exact.push_back(be.downloadF32(dtab));
        return out;
    };
    const Outputs r1 = run(*one), r2 = run(*two);
    for (std::size_t i = 0; i < r1.exact.size(); ++i)
        QVERIFY2(r1.exact[i] == r2.exact[i], qPrintable(QString("loop output %1 differs").arg(i)));
    for (std::size_t i = 0; i < r1.blas.size(); ++i)
        QVERIFY2(r1.blas[i] == r2.blas[i], qPrintable(QString("GEMM/conv output %1 differs").arg(i)));
}

QTEST_GUILESS_MAIN(TestCpuBackend)
#include "test_cpu_backend.moc"

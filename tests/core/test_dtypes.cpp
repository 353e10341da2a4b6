// The dtype traits table row by row (enum value, name, sizes), the block formats' sizes and codecs
// with exact round trips on their grids and their origins' rounding, and FP8 E4M3 encodings.
#include "engine/core/dtype.h"
#include "engine/core/errors.h"
#include "engine/core/quant_blocks.h"
#include "engine/core/rng.h"
#include "engine/core/tensor.h"
#include "tests/support/test_support.h"

#include <QtTest>

#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <vector>

using namespace lathe;

namespace {

// fromFloat then toFloat through the table row of dt.
std::vector<float> roundTrip(DType dt, const std::vector<float>& values, std::vector<unsigned char>* bytes = nullptr) {
    std::vector<unsigned char> buf(storageBytes(dt, values.size()));
    traits(dt).fromFloat(values.data(), buf.data(), values.size());
    std::vector<float> back(values.size());
    traits(dt).toFloat(buf.data(), back.data(), values.size());
    if (bytes) *bytes = buf;
    return back;
}

} // namespace

class TestDTypes : public QObject {
    Q_OBJECT

private slots:
    void everyRowCarriesItsEnumValue_data() {
        QTest::addColumn<int>("index");
        for (std::size_t i = 0; i < kDTypeCount; ++i) QTest::newRow(dtypeName(static_cast<DType>(i))) << int(i);
    }
    void everyRowCarriesItsEnumValue() {
        QFETCH(int, index);
        const DType dt = static_cast<DType>(index);
        const DTypeTraits& row = traits(dt);
        QCOMPARE(int(row.dtype), index);
        QCOMPARE(&dtypeTable()[static_cast<std::size_t>(index)], &row);
        QCOMPARE(dtypeFromName(row.name), dt);
        if (*row.safetensorsName) QCOMPARE(dtypeFromSafetensors(row.safetensorsName), dt);
        QCOMPARE(storageBytes(dt, static_cast<std::size_t>(row.blockSize)), row.bytesPerBlock);
        QCOMPARE(storageBytes(dt, 3 * static_cast<std::size_t>(row.blockSize)), 3 * row.bytesPerBlock);
        QVERIFY(static_cast<std::size_t>(row.bits * row.blockSize) <= row.bytesPerBlock * 8);
        QCOMPARE(row.isQuantized, row.blockSize > 1);
        // Every row converts: a constant block on the format's grid survives the round trip (1 for the
        // elementwise formats; 127/128 for the block formats, where q8_0's scale 1/128 is exact).
        const float onGrid = row.isQuantized ? 127.0f / 128.0f : 1.0f;
        const std::vector<float> block(static_cast<std::size_t>(row.blockSize), onGrid);
        QVERIFY(roundTrip(dt, block) == block);
    }

    void tableIsComplete() {
        QCOMPARE(dtypeTable().size(), kDTypeCount);
        std::set<std::string> names;
        for (const auto& row : dtypeTable()) QVERIFY2(names.insert(row.name).second, row.name);
        QVERIFY_THROWS_EXCEPTION(BackendError, traits(DType::Count));
        const std::string msg = test::errorOf<ConfigError>([] { dtypeFromName("int3"); });
        QVERIFY2(msg.find("q4_0") != std::string::npos && msg.find("nf4") != std::string::npos, msg.c_str());
        // Block formats have no safetensors dtype; "" must not match an empty name.
        DType out;
        QVERIFY(!dtypeFromSafetensors("", out));
    }

    // i64 (BatchNorm's num_batches_tracked in PyTorch files): rounds to nearest and saturates like the other
    // integer rows, at the largest double below 2^63 (2^63 itself is out of range).
    void i64ConvertsAndSaturates() {
        const std::vector<float> in = {3.6f, -2.5f, 1e30f, -1e30f, 16777216.0f};
        std::vector<std::int64_t> out(in.size());
        traits(DType::I64).fromFloat(in.data(), out.data(), in.size());
        QCOMPARE(out, (std::vector<std::int64_t>{4, -3, 9223372036854774784LL, std::numeric_limits<std::int64_t>::min(),
                                                 16777216}));
        QCOMPARE(traits(DType::I64).bytesPerBlock, sizeof(std::int64_t));
        DType dt;
        QVERIFY(dtypeFromSafetensors("I64", dt));
        QCOMPARE(dt, DType::I64);
    }

    void blockStructsMatchTheirRows() {
        QCOMPARE(traits(DType::Q4_0).bytesPerBlock, sizeof(BlockQ4_0));
        QCOMPARE(traits(DType::Q4_1).bytesPerBlock, sizeof(BlockQ4_1));
        QCOMPARE(traits(DType::NF4).bytesPerBlock, sizeof(BlockNf4));
        QCOMPARE(traits(DType::Q8_0).bytesPerBlock, sizeof(BlockQ8_0));
        QCOMPARE(traits(DType::Q4_0).blockSize, BlockQ4_0::kValues);
        QCOMPARE(traits(DType::Q4_1).blockSize, BlockQ4_1::kValues);
        QCOMPARE(traits(DType::NF4).blockSize, BlockNf4::kValues);
        QCOMPARE(traits(DType::Q8_0).blockSize, BlockQ8_0::kValues);
    }

    void blockTensorSizes() {
        // elements / block size * bytes per block: a 4096 x 4096 q4_0 weight is 4.5 bits per value.
        QCOMPARE(storageBytes(DType::Q4_0, 4096u * 4096u), std::size_t{4096u * 4096u / 32 * 18});
        QCOMPARE(storageBytes(DType::NF4, 128), std::size_t{72});
        QCOMPARE(storageBytes(DType::F8E4M3, 7), std::size_t{7});
        QCOMPARE(Tensor::host({3, 64}, DType::Q4_1).bytes(), std::size_t{3 * 2 * 20});
        QCOMPARE(Tensor::host({0, 32}, DType::Q4_0).bytes(), std::size_t{0});
        // Not whole blocks: refused, naming the format and the block size.
        std::string msg = test::errorOf<BackendError>([] { storageBytes(DType::Q4_0, 33); });
        QVERIFY2(msg.find("q4_0") != std::string::npos && msg.find("32") != std::string::npos, msg.c_str());
        // 96 elements are three blocks, but rows of 48 would split a block: the last dimension decides.
        msg = test::errorOf<BackendError>([] { Tensor::host({2, 48}, DType::Q4_0); });
        QVERIFY2(msg.find("[2, 48]") != std::string::npos && msg.find("block size 32") != std::string::npos,
                 msg.c_str());
        QVERIFY_THROWS_EXCEPTION(BackendError, Tensor::host({}, DType::NF4));
        // Rows of whole blocks slice by bytes.
        Tensor t = Tensor::host({4, 64}, DType::Q4_0);
        Tensor rows = t.slice0(1, 3);
        QCOMPARE(static_cast<char*>(rows.data()) - static_cast<char*>(t.data()), std::ptrdiff_t{2 * 18});
        QCOMPARE(rows.bytes(), std::size_t{2 * 2 * 18});
        QVERIFY_THROWS_EXCEPTION(BackendError, t.view({8, 32}).view({16, 16}));
    }

    // ---- FP8 E4M3 (OCP "e4m3fn"). The encodings were also checked against CUDA 12's host-side
    // __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3) over 44 million inputs.
    void fp8Encodings_data() {
        QTest::addColumn<float>("in");
        QTest::addColumn<int>("bits");
        const float inf = std::numeric_limits<float>::infinity();
        QTest::newRow("zero") << 0.0f << 0x00;
        QTest::newRow("negative zero") << -0.0f << 0x80;
        QTest::newRow("one") << 1.0f << 0x38;
        QTest::newRow("-1.5") << -1.5f << 0xbc;
        QTest::newRow("max 448") << 448.0f << 0x7e;
        QTest::newRow("-448") << -448.0f << 0xfe;
        QTest::newRow("smallest normal 2^-6") << std::ldexp(1.0f, -6) << 0x08;
        QTest::newRow("largest subnormal 7 x 2^-9") << std::ldexp(7.0f, -9) << 0x07;
        QTest::newRow("smallest subnormal 2^-9") << std::ldexp(1.0f, -9) << 0x01;
        QTest::newRow("half the smallest subnormal: tie to even 0") << std::ldexp(1.0f, -10) << 0x00;
        QTest::newRow("1.5 x smallest subnormal: tie to even 2") << std::ldexp(3.0f, -10) << 0x02;
        QTest::newRow("15.5 x 2^-10 rounds up to the smallest normal") << std::ldexp(15.5f, -10) << 0x08;
        QTest::newRow("tie 1 + 2^-4 -> 1") << 1.0625f << 0x38;
        QTest::newRow("tie 1 + 3 x 2^-4 -> 1.25") << 1.1875f << 0x3a;
        QTest::newRow("above tie rounds up") << std::nextafter(1.0625f, 2.0f) << 0x39;
        QTest::newRow("carry into the exponent: 1.9375 -> 2") << 1.9375f << 0x40;
        QTest::newRow("464 (tie) -> 448") << 464.0f << 0x7e;
        QTest::newRow("1000 saturates") << 1000.0f << 0x7e;
        QTest::newRow("inf saturates") << inf << 0x7e;
        QTest::newRow("-inf saturates") << -inf << 0xfe;
        QTest::newRow("nan") << std::numeric_limits<float>::quiet_NaN() << 0x7f;
    }
    void fp8Encodings() {
        QFETCH(float, in);
        QFETCH(int, bits);
        QCOMPARE(int(floatToFp8E4M3(in)), bits);
    }

    void fp8EveryCodeRoundTrips() {
        // All 256 codes: 254 values decode and encode back to themselves; S.1111.111 are the two NaNs.
        int nans = 0;
        for (int b = 0; b < 256; ++b) {
            const float v = fp8E4M3ToFloat(static_cast<std::uint8_t>(b));
            if (std::isnan(v)) {
                ++nans;
                QCOMPARE(b & 0x7f, 0x7f);
                continue;
            }
            QCOMPARE(int(floatToFp8E4M3(v)), b);
        }
        QCOMPARE(nans, 2);
        QCOMPARE(fp8E4M3ToFloat(0x7e), 448.0f);
        QCOMPARE(fp8E4M3ToFloat(0x01), std::ldexp(1.0f, -9));
    }

    // ---- f16 / bf16 rows: every instruction-set path of this CPU against the scalar conversions, bit for bit

    // Widened: every f16 and every bf16 value. Narrowed: every float that is a value of either format, the
    // midpoints between neighbours (where round-to-nearest-even decides) and the floats one ulp either side of
    // each, NaNs with payloads, the infinities, and a million random bit patterns. Lengths leave a tail for the
    // scalar loop. The slow test_half_rows_exhaustive narrows every float.
    void halfRowsMatchTheScalarConversions() {
        struct Restore {
            HalfRowPath was = halfRowPath();
            ~Restore() { setHalfRowPath(was); }
        } restore;
        std::vector<std::uint16_t> every(65536 + 7);
        for (std::size_t i = 0; i < every.size(); ++i) every[i] = static_cast<std::uint16_t>(i & 0xffff);
        std::vector<float> narrow;
        const auto around = [&](float f) {
            narrow.push_back(f);
            narrow.push_back(std::nextafter(f, std::numeric_limits<float>::infinity()));
            narrow.push_back(std::nextafter(f, -std::numeric_limits<float>::infinity()));
        };
        for (std::uint32_t h = 0; h < 65536; ++h) {
            for (const bool bf : {false, true}) {
                const auto code = static_cast<std::uint16_t>(h);
                const float f = bf ? bf16ToFloat(code) : halfToFloat(code);
                if (!std::isfinite(f)) {
                    narrow.push_back(f);
                    continue;
                }
                around(f);
                const auto next = static_cast<std::uint16_t>(h + 1);
                const float g = bf ? bf16ToFloat(next) : halfToFloat(next);
                if ((h & 0x7fff) != 0x7fff && std::isfinite(g) && std::signbit(f) == std::signbit(g))
                    around(static_cast<float>((double(f) + double(g)) / 2)); // exact: one bit more than the format
            }
        }
        Rng rng(7);
        for (int i = 0; i < 1000000; ++i) {
            const auto bits = static_cast<std::uint32_t>(rng.next());
            float f;
            std::memcpy(&f, &bits, 4);
            narrow.push_back(f);
        }
        narrow.push_back(std::numeric_limits<float>::quiet_NaN());
        narrow.push_back(-std::numeric_limits<float>::signaling_NaN());
        while (narrow.size() % 16 != 5) narrow.push_back(1.0f); // 5 left after the last full vector step
        std::vector<std::uint16_t> wantF16(narrow.size()), wantBf16(narrow.size());
        for (std::size_t i = 0; i < narrow.size(); ++i) {
            wantF16[i] = floatToHalf(narrow[i]);
            wantBf16[i] = floatToBf16(narrow[i]);
        }
        const auto bitsOfFloats = [](const std::vector<float>& v) {
            std::vector<std::uint32_t> b(v.size());
            std::memcpy(b.data(), v.data(), v.size() * 4);
            return b;
        };
        std::vector<float> wantWideF16(every.size()), wantWideBf16(every.size());
        for (std::size_t i = 0; i < every.size(); ++i) {
            wantWideF16[i] = halfToFloat(every[i]);
            wantWideBf16[i] = bf16ToFloat(every[i]);
        }
        int paths = 0;
        for (HalfRowPath path : {HalfRowPath::Scalar, HalfRowPath::Avx2, HalfRowPath::Avx512}) {
            if (!halfRowPathAvailable(path)) continue;
            ++paths;
            setHalfRowPath(path);
            QCOMPARE(halfRowPath(), path);
            for (const DType dt : {DType::F16, DType::BF16}) {
                const QByteArray what = QByteArray(halfRowPathName(path)) + " " + dtypeName(dt);
                std::vector<float> wide(every.size());
                traits(dt).toFloat(every.data(), wide.data(), every.size());
                QVERIFY2(bitsOfFloats(wide) == bitsOfFloats(dt == DType::F16 ? wantWideF16 : wantWideBf16),
                         what + ": widened");
                std::vector<std::uint16_t> codes(narrow.size());
                traits(dt).fromFloat(narrow.data(), codes.data(), narrow.size());
                const auto& want = dt == DType::F16 ? wantF16 : wantBf16;
                for (std::size_t i = 0; i < narrow.size(); ++i)
                    if (codes[i] != want[i])
                        QFAIL(qPrintable(what + QString(": %1 -> 0x%2, expected 0x%3").arg(double(narrow[i]), 0, 'g', 9)
                                                    .arg(codes[i], 4, 16, QChar('0')).arg(want[i], 4, 16, QChar('0'))));
            }
        }
        QVERIFY(paths >= 1);
        for (HalfRowPath path : {HalfRowPath::Avx2, HalfRowPath::Avx512})
            if (!halfRowPathAvailable(path)) QVERIFY_THROWS_EXCEPTION(BackendError, setHalfRowPath(path));
    }

    // ---- INT4 group-wise (q4_0: x = (q - 8) d; q4_1: x = q d + m), ggml's reference quantizers

    void q4_0GridRoundTripsExactly() {
        // d = 0.25 and every q in 0..15 twice: -8 d = -2 has the largest magnitude, so the quantizer
        // derives d = -2 / -8 exactly, and every value is on the grid.
        std::vector<float> x(64);
        for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(static_cast<int>((i * 7) % 16) - 8) * 0.25f;
        std::vector<unsigned char> bytes;
        QVERIFY(roundTrip(DType::Q4_0, x, &bytes) == x);
        BlockQ4_0 b;
        std::memcpy(&b, bytes.data(), sizeof b);
        QCOMPARE(halfToFloat(b.d), 0.25f);
        // Layout: value j in the low nibble of qs[j], value j + 16 in the high nibble.
        for (int j = 0; j < 16; ++j) {
            QCOMPARE(int(b.qs[j] & 0x0f), static_cast<int>(x[j] / 0.25f) + 8);
            QCOMPARE(int(b.qs[j] >> 4), static_cast<int>(x[16 + j] / 0.25f) + 8);
        }
    }

    void q4_0Rounding() {
        // Largest magnitude -2 -> d = 0.25. Half steps round up (ggml adds 8.5 and truncates):
        // 0.125 -> 0.25, -0.125 -> 0; 0.3 -> 0.25; 1.9 clamps to q = 15 (1.75).
        std::vector<float> x(32, 0.0f);
        x[0] = -2.0f, x[1] = 0.125f, x[2] = -0.125f, x[3] = 0.3f, x[4] = 1.9f, x[20] = -1.1f;
        const auto y = roundTrip(DType::Q4_0, x);
        QCOMPARE(y[0], -2.0f);
        QCOMPARE(y[1], 0.25f);
        QCOMPARE(y[2], 0.0f);
        QCOMPARE(y[3], 0.25f);
        QCOMPARE(y[4], 1.75f);
        QCOMPARE(y[20], -1.0f);
        // A positive extreme gives a negative scale, and the extreme itself stays exact.
        std::vector<float> p(32, 0.0f);
        p[5] = 3.0f;
        QCOMPARE(roundTrip(DType::Q4_0, p)[5], 3.0f);
        // An all-zero block decodes to zeros (no division by zero).
        const std::vector<float> zeros(32, 0.0f);
        QVERIFY(roundTrip(DType::Q4_0, zeros) == zeros);
    }

    void q4_1GridRoundTripsExactly() {
        // m = -1, d = 0.125: min and max span q = 0..15, so d = 1.875 / 15 = 0.125 and every value is m + q d.
        std::vector<float> x(64);
        for (std::size_t i = 0; i < x.size(); ++i) x[i] = -1.0f + static_cast<float>((i * 5) % 16) * 0.125f;
        std::vector<unsigned char> bytes;
        QVERIFY(roundTrip(DType::Q4_1, x, &bytes) == x);
        BlockQ4_1 b;
        std::memcpy(&b, bytes.data(), sizeof b);
        QCOMPARE(halfToFloat(b.d), 0.125f);
        QCOMPARE(halfToFloat(b.m), -1.0f);
        QCOMPARE(int(b.qs[1] & 0x0f), 5);  // x[1] = -1 + 5 d
        QCOMPARE(int(b.qs[1] >> 4), 5);    // x[17] = -1 + (85 % 16) d
        // Between grid points it rounds to nearest (ties up): -1 + 0.0625 -> -1 + 0.125.
        x[3] = -1.0f + 0.0625f;
        QCOMPARE(roundTrip(DType::Q4_1, x)[3], -0.875f);
    }

    // ---- NF4 (bitsandbytes)

    void nf4CodebookIsBitsandbytesTable() {
        // bitsandbytes/functional.py and csrc/kernels.cu (dDequantizeNF4), index 0..15.
        const float published[16] = {-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
                                     -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
                                     0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f,
                                     0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
                                     0.7229568362236023f, 1.0f};
        // Decode a block whose codes run 0..15 with absmax 1: the values are the table itself.
        BlockNf4 b{};
        b.absmax = 1.0f;
        for (int j = 0; j < 32; ++j) b.qs[j] = static_cast<std::uint8_t>((((2 * j) % 16) << 4) | ((2 * j + 1) % 16));
        std::vector<float> y(64);
        dequantizeRowNf4(&b, y.data(), y.size());
        for (int i = 0; i < 64; ++i) QCOMPARE(y[i], published[i % 16]);
        for (int q = 0; q < 16; ++q) QCOMPARE(int(nf4Code(published[q])), q);
    }

    void nf4GridRoundTripsExactly() {
        // absmax 2 (a power of two, so x / absmax is exact): every code twice, then twice more.
        std::vector<float> x(128);
        for (std::size_t i = 0; i < x.size(); ++i) x[i] = kNf4Codebook[(i * 3) % 16] * 2.0f;
        std::vector<unsigned char> bytes;
        QVERIFY(roundTrip(DType::NF4, x, &bytes) == x);
        BlockNf4 b;
        std::memcpy(&b, bytes.data(), sizeof b);
        QCOMPARE(b.absmax, 2.0f);
        // Layout: value 2i in the high nibble of qs[i], value 2i + 1 in the low nibble.
        QCOMPARE(int(b.qs[1] >> 4), 6);
        QCOMPARE(int(b.qs[1] & 0x0f), 9);
    }

    void nf4NearestCode() {
        // bitsandbytes' thresholds are the midpoints; a value exactly on one goes to the lower code.
        QCOMPARE(int(nf4Code(0.8614784181118011f)), 14);
        QCOMPARE(int(nf4Code(std::nextafter(0.8614784181118011f, 1.0f))), 15);
        QCOMPARE(int(nf4Code(0.03979014977812767f)), 7);
        QCOMPARE(int(nf4Code(0.04f)), 8);
        QCOMPARE(int(nf4Code(-0.05f)), 6);
        QCOMPARE(int(nf4Code(-0.9f)), 0);
        QCOMPARE(int(nf4Code(0.0f)), 7);
    }

    // ---- Q8_0

    void q8_0GridRoundTripsExactly() {
        // amax 127 / 16 gives d = 1/16 exactly; every value is q / 16.
        std::vector<float> x(64);
        for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(static_cast<int>((i * 37) % 255) - 127) / 16.0f;
        x[5] = 127.0f / 16.0f, x[37] = -127.0f / 16.0f; // each block's largest magnitude
        QVERIFY(roundTrip(DType::Q8_0, x) == x);
        // Rounding is half away from zero (roundf): 2.5 / 16 -> 3 / 16, -2.5 / 16 -> -3 / 16.
        x[6] = 2.5f / 16.0f, x[7] = -2.5f / 16.0f;
        const auto y = roundTrip(DType::Q8_0, x);
        QCOMPARE(y[6], 3.0f / 16.0f);
        QCOMPARE(y[7], -3.0f / 16.0f);
    }
};

QTEST_GUILESS_MAIN(TestDTypes)
#include "test_dtypes.moc"

// The dtype traits table (each row checked against its enum value at compile time) and the float16 / bfloat16 /
// FP8 E4M3 conversions (the f16 and bf16 rows vectorized where the CPU allows, with the scalar code's results).
#include "engine/core/dtype.h"

#include "engine/core/errors.h"
#include "engine/core/quant_blocks.h"

#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif

namespace lathe {
namespace {

std::uint32_t bitsOf(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
float floatOf(std::uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// An empty tensor may have no storage: memcpy from or to a null pointer is undefined even for 0 bytes.
void f32ToFloat(const void* s, float* d, std::size_t n) {
    if (n) std::memcpy(d, s, n * 4);
}
void f32FromFloat(const float* s, void* d, std::size_t n) {
    if (n) std::memcpy(d, s, n * 4);
}
// The f16 / bf16 rows: 16 values a step on AVX-512 (8 on AVX2 + F16C for f16), chosen at run time, with the same
// results as the scalar conversions below for every input: the hardware's f16 conversions round to nearest even as
// they do, and a step holding a NaN is redone one by one (the hardware keeps NaN payloads, the scalar code
// canonicalises them). test_dtypes checks every f16 and bf16 value on every path; test_half_rows_exhaustive every
// float's conversion (label slow).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LATHE_DTYPE_X86 1
std::atomic<HalfRowPath>& rowPathFlag() {
    static std::atomic<HalfRowPath> path{halfRowPathAvailable(HalfRowPath::Avx512) ? HalfRowPath::Avx512
                                         : halfRowPathAvailable(HalfRowPath::Avx2) ? HalfRowPath::Avx2
                                                                                   : HalfRowPath::Scalar};
    return path;
}
HalfRowPath rowPath() {
    return rowPathFlag().load(std::memory_order_relaxed);
}

__attribute__((target("avx512f,avx512bw,f16c,avx2"))) std::size_t f16ToFloatAvx512(const std::uint16_t* p, float* d,
                                                                                    std::size_t n) {
    std::size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i));
        _mm512_storeu_ps(d + i, _mm512_maskz_cvtph_ps(0xffff, h));
        // NaN halves ((h & 0x7fff) > 0x7c00) as the scalar code gives them.
        const __m256i mag = _mm256_and_si256(h, _mm256_set1_epi16(0x7fff));
        if (_mm256_movemask_epi8(_mm256_cmpgt_epi16(mag, _mm256_set1_epi16(0x7c00))))
            for (std::size_t j = i; j < i + 16; ++j) d[j] = halfToFloat(p[j]);
    }
    return i;
}
__attribute__((target("avx512f,avx512bw,f16c,avx2"))) std::size_t f16FromFloatAvx512(const float* s, std::uint16_t* p,
                                                                                      std::size_t n) {
    std::size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 v = _mm512_loadu_ps(s + i);
        const __m256i h = _mm512_maskz_cvtps_ph(0xffff, v, _MM_FROUND_TO_NEAREST_INT);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + i), h);
        if (_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q))
            for (std::size_t j = i; j < i + 16; ++j) p[j] = floatToHalf(s[j]);
    }
    return i;
}
__attribute__((target("avx2,f16c"))) std::size_t f16ToFloatAvx2(const std::uint16_t* p, float* d, std::size_t n) {
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
        _mm256_storeu_ps(d + i, _mm256_cvtph_ps(h));
        const __m128i mag = _mm_and_si128(h, _mm_set1_epi16(0x7fff));
        if (_mm_movemask_epi8(_mm_cmpgt_epi16(mag, _mm_set1_epi16(0x7c00))))
            for (std::size_t j = i; j < i + 8; ++j) d[j] = halfToFloat(p[j]);
    }
    return i;
}
__attribute__((target("avx2,f16c"))) std::size_t f16FromFloatAvx2(const float* s, std::uint16_t* p, std::size_t n) {
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(s + i);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(p + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
        if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)))
            for (std::size_t j = i; j < i + 8; ++j) p[j] = floatToHalf(s[j]);
    }
    return i;
}
// bf16: the scalar code's integer rounding (add 0x7fff and the kept part's lowest bit, keep the top half) and its
// quiet NaN, 16 lanes at a time. (Here and above, the maskz forms with a full mask are the plain instructions,
// without GCC 12's -Wmaybe-uninitialized.)
__attribute__((target("avx512f,avx512bw"))) std::size_t bf16ToFloatAvx512(const std::uint16_t* p, float* d,
                                                                           std::size_t n) {
    std::size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i));
        const __m512i w = _mm512_maskz_cvtepu16_epi32(0xffff, h);
        _mm512_storeu_si512(d + i, _mm512_maskz_slli_epi32(0xffff, w, 16));
    }
    return i;
}
__attribute__((target("avx512f,avx512bw"))) std::size_t bf16FromFloatAvx512(const float* s, std::uint16_t* p,
                                                                             std::size_t n) {
    std::size_t i = 0;
    const __m512i one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7fff);
    const __m512i absMask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    for (; i + 16 <= n; i += 16) {
        const __m512i x = _mm512_loadu_si512(s + i);
        const __m512i odd = _mm512_and_si512(_mm512_maskz_srli_epi32(0xffff, x, 16), one);
        __m512i r = _mm512_maskz_srli_epi32(0xffff, _mm512_add_epi32(x, _mm512_add_epi32(bias, odd)), 16);
        const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(x, absMask), inf);
        r = _mm512_mask_or_epi32(r, nan, _mm512_maskz_srli_epi32(0xffff, x, 16), _mm512_set1_epi32(0x40));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + i), _mm512_maskz_cvtepi32_epi16(0xffff, r));
    }
    return i;
}
#endif

} // namespace

const char* halfRowPathName(HalfRowPath path) {
    switch (path) {
    case HalfRowPath::Avx2: return "avx2";
    case HalfRowPath::Avx512: return "avx512";
    case HalfRowPath::Scalar: break;
    }
    return "scalar";
}

bool halfRowPathAvailable(HalfRowPath path) {
#ifdef LATHE_DTYPE_X86
    switch (path) {
    case HalfRowPath::Avx512: return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                                     __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
    case HalfRowPath::Avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
    case HalfRowPath::Scalar: return true;
    }
    return false;
#else
    return path == HalfRowPath::Scalar;
#endif
}

HalfRowPath halfRowPath() {
#ifdef LATHE_DTYPE_X86
    return rowPath();
#else
    return HalfRowPath::Scalar;
#endif
}

void setHalfRowPath(HalfRowPath path) {
    if (!halfRowPathAvailable(path))
        throw BackendError(std::string("f16 / bf16 rows: this CPU cannot run the ") + halfRowPathName(path) + " path");
#ifdef LATHE_DTYPE_X86
    rowPathFlag().store(path, std::memory_order_relaxed);
#endif
}

namespace {

void f16ToFloat(const void* s, float* d, std::size_t n) {
    auto p = static_cast<const std::uint16_t*>(s);
    std::size_t i = 0;
#ifdef LATHE_DTYPE_X86
    if (rowPath() == HalfRowPath::Avx512) i = f16ToFloatAvx512(p, d, n);
    else if (rowPath() == HalfRowPath::Avx2) i = f16ToFloatAvx2(p, d, n);
#endif
    for (; i < n; ++i) d[i] = halfToFloat(p[i]);
}
void f16FromFloat(const float* s, void* d, std::size_t n) {
    auto p = static_cast<std::uint16_t*>(d);
    std::size_t i = 0;
#ifdef LATHE_DTYPE_X86
    if (rowPath() == HalfRowPath::Avx512) i = f16FromFloatAvx512(s, p, n);
    else if (rowPath() == HalfRowPath::Avx2) i = f16FromFloatAvx2(s, p, n);
#endif
    for (; i < n; ++i) p[i] = floatToHalf(s[i]);
}
void bf16ToFloatRow(const void* s, float* d, std::size_t n) {
    auto p = static_cast<const std::uint16_t*>(s);
    std::size_t i = 0;
#ifdef LATHE_DTYPE_X86
    if (rowPath() == HalfRowPath::Avx512) i = bf16ToFloatAvx512(p, d, n);
#endif
    for (; i < n; ++i) d[i] = bf16ToFloat(p[i]);
}
void bf16FromFloatRow(const float* s, void* d, std::size_t n) {
    auto p = static_cast<std::uint16_t*>(d);
    std::size_t i = 0;
#ifdef LATHE_DTYPE_X86
    if (rowPath() == HalfRowPath::Avx512) i = bf16FromFloatAvx512(s, p, n);
#endif
    for (; i < n; ++i) p[i] = floatToBf16(s[i]);
}
template <class T>
void intToFloat(const void* s, float* d, std::size_t n) {
    auto p = static_cast<const T*>(s);
    for (std::size_t i = 0; i < n; ++i) d[i] = static_cast<float>(p[i]);
}
template <class T>
void intFromFloat(const float* s, void* d, std::size_t n) {
    // Saturating round-to-nearest, as a quantizer would store it.
    auto p = static_cast<T*>(d);
    constexpr double lo = static_cast<double>(std::numeric_limits<T>::min());
    // For 64-bit T the maximum rounds up to 2^63 as a double, which T cannot hold: the bound is the largest
    // double below it.
    constexpr double hi = sizeof(T) < 8 ? static_cast<double>(std::numeric_limits<T>::max())
                                        : static_cast<double>(std::numeric_limits<T>::max()) - 1024.0;
    for (std::size_t i = 0; i < n; ++i) {
        double v = static_cast<double>(s[i]);
        v = v < lo ? lo : (v > hi ? hi : v);
        p[i] = static_cast<T>(v < 0 ? v - 0.5 : v + 0.5);
    }
}

void f8ToFloat(const void* s, float* d, std::size_t n) {
    static const std::array<float, 256> table = [] { // all 256 codes decoded once
        std::array<float, 256> t{};
        for (int b = 0; b < 256; ++b) t[static_cast<std::size_t>(b)] = fp8E4M3ToFloat(static_cast<std::uint8_t>(b));
        return t;
    }();
    auto p = static_cast<const std::uint8_t*>(s);
    for (std::size_t i = 0; i < n; ++i) d[i] = table[p[i]];
}
void f8FromFloat(const float* s, void* d, std::size_t n) {
    auto p = static_cast<std::uint8_t*>(d);
    for (std::size_t i = 0; i < n; ++i) p[i] = floatToFp8E4M3(s[i]);
}
// Block formats: the row codecs of quant_blocks.h behind the table's untyped signature.
template <class Block, void (*Dequantize)(const Block*, float*, std::size_t)>
void blockToFloat(const void* s, float* d, std::size_t n) {
    Dequantize(static_cast<const Block*>(s), d, n);
}
template <class Block, void (*Quantize)(const float*, Block*, std::size_t)>
void blockFromFloat(const float* s, void* d, std::size_t n) {
    Quantize(s, static_cast<Block*>(d), n);
}

// One row per DType, in enum order; each row names its enum value and the static_asserts below check
// both the order and the block rows' sizes against their structs.
constexpr std::array<DTypeTraits, kDTypeCount> kTraits = {{
    {DType::F32, "f32", "F32", 32, 1, 4, true, false, f32ToFloat, f32FromFloat},
    {DType::F16, "f16", "F16", 16, 1, 2, true, false, f16ToFloat, f16FromFloat},
    {DType::BF16, "bf16", "BF16", 16, 1, 2, true, false, bf16ToFloatRow, bf16FromFloatRow},
    {DType::I8, "i8", "I8", 8, 1, 1, false, false, intToFloat<std::int8_t>, intFromFloat<std::int8_t>},
    {DType::I32, "i32", "I32", 32, 1, 4, false, false, intToFloat<std::int32_t>, intFromFloat<std::int32_t>},
    {DType::U8, "u8", "U8", 8, 1, 1, false, false, intToFloat<std::uint8_t>, intFromFloat<std::uint8_t>},
    {DType::F8E4M3, "f8e4m3", "F8_E4M3", 8, 1, 1, true, false, f8ToFloat, f8FromFloat},
    {DType::Q4_0, "q4_0", "", 4, BlockQ4_0::kValues, sizeof(BlockQ4_0), false, true,
     blockToFloat<BlockQ4_0, dequantizeRowQ4_0>, blockFromFloat<BlockQ4_0, quantizeRowQ4_0>},
    {DType::Q4_1, "q4_1", "", 4, BlockQ4_1::kValues, sizeof(BlockQ4_1), false, true,
     blockToFloat<BlockQ4_1, dequantizeRowQ4_1>, blockFromFloat<BlockQ4_1, quantizeRowQ4_1>},
    {DType::NF4, "nf4", "", 4, BlockNf4::kValues, sizeof(BlockNf4), false, true,
     blockToFloat<BlockNf4, dequantizeRowNf4>, blockFromFloat<BlockNf4, quantizeRowNf4>},
    {DType::Q8_0, "q8_0", "", 8, BlockQ8_0::kValues, sizeof(BlockQ8_0), false, true,
     blockToFloat<BlockQ8_0, dequantizeRowQ8_0>, blockFromFloat<BlockQ8_0, quantizeRowQ8_0>},
    {DType::I64, "i64", "I64", 64, 1, 8, false, false, intToFloat<std::int64_t>, intFromFloat<std::int64_t>},
}};

constexpr bool rowsMatchTheirEnumValues() {
    for (std::size_t i = 0; i < kTraits.size(); ++i)
        if (static_cast<std::size_t>(kTraits[i].dtype) != i) return false;
    return true;
}
static_assert(rowsMatchTheirEnumValues(), "dtype.cpp: kTraits rows must follow the DType enum order");

constexpr bool rowsAreConsistent() {
    for (const auto& r : kTraits) {
        if (r.blockSize < 1 || r.bytesPerBlock == 0) return false;
        // The packed elements fit in a block; a plain format is exactly its elements.
        const std::size_t payloadBits = static_cast<std::size_t>(r.bits) * static_cast<std::size_t>(r.blockSize);
        if (payloadBits > r.bytesPerBlock * 8) return false;
        if (!r.isQuantized && (r.blockSize != 1 || payloadBits != r.bytesPerBlock * 8)) return false;
        if (r.isQuantized && r.blockSize == 1) return false;
    }
    return true;
}
static_assert(rowsAreConsistent(), "dtype.cpp: a row's bits, block size and bytes per block disagree");
// Every row's converters are set: test_dtypes converts through each one (comparing function pointers is not
// a constant expression under the sanitizers, so it is not asserted here).

} // namespace

const DTypeTraits& traits(DType t) {
    const auto i = static_cast<std::size_t>(t);
    if (i >= kTraits.size()) throw BackendError("dtype value " + std::to_string(i) + " has no traits row");
    return kTraits[i];
}

std::span<const DTypeTraits> dtypeTable() { return kTraits; }

DType dtypeFromName(std::string_view name) {
    std::string known;
    for (const auto& t : kTraits) {
        if (name == t.name) return t.dtype;
        known += known.empty() ? "" : ", ";
        known += t.name;
    }
    throw ConfigError("unknown dtype \"" + std::string(name) + "\" (known: " + known + ")");
}

bool dtypeFromSafetensors(std::string_view name, DType& out) noexcept {
    for (const auto& t : kTraits)
        if (*t.safetensorsName && name == t.safetensorsName) {
            out = t.dtype;
            return true;
        }
    return false;
}

DType dtypeFromSafetensors(std::string_view name) {
    DType t;
    if (!dtypeFromSafetensors(name, t))
        throw DataError("unsupported safetensors dtype \"" + std::string(name) + "\"");
    return t;
}

std::size_t storageBytes(DType t, std::size_t n) {
    const auto& tr = traits(t);
    const auto block = static_cast<std::size_t>(tr.blockSize);
    if (n % block != 0)
        throw BackendError(std::to_string(n) + " elements of " + tr.name + " are not a whole number of its blocks of " +
                           std::to_string(block));
    return n / block * tr.bytesPerBlock;
}

std::uint16_t floatToHalf(float f) {
    const std::uint32_t x = bitsOf(f);
    const std::uint32_t sign = (x >> 16) & 0x8000u;
    std::uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) // inf or nan
        return static_cast<std::uint16_t>(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0u));
    if (absx >= 0x477ff000u) // rounds to >= 65520: overflow to inf
        return static_cast<std::uint16_t>(sign | 0x7c00u);
    if (absx < 0x38800000u) { // subnormal half or zero
        // Add 0.5 (as float) to shift the value into the low mantissa bits with correct rounding.
        const float shifted = floatOf(absx) + 0.5f;
        return static_cast<std::uint16_t>(sign | (bitsOf(shifted) - 0x3f000000u));
    }
    const std::uint32_t mantOdd = (absx >> 13) & 1u;
    absx += 0xc8000fffu + mantOdd; // rebias exponent (-112 << 23) and round to nearest even
    return static_cast<std::uint16_t>(sign | (absx >> 13));
}

float halfToFloat(std::uint16_t h) {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t exp = (h >> 10) & 0x1fu;
    const std::uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        if (mant == 0) return floatOf(sign);
        // subnormal: value = mant * 2^-24
        const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    if (exp == 31) return floatOf(sign | 0x7f800000u | (mant << 13));
    return floatOf(sign | ((exp + 112u) << 23) | (mant << 13));
}

std::uint16_t floatToBf16(float f) {
    std::uint32_t x = bitsOf(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u); // quiet nan
    x += 0x7fffu + ((x >> 16) & 1u);
    return static_cast<std::uint16_t>(x >> 16);
}

float bf16ToFloat(std::uint16_t b) { return floatOf(static_cast<std::uint32_t>(b) << 16); }

std::uint8_t floatToFp8E4M3(float f) {
    const std::uint32_t x = bitsOf(f);
    const auto sign = static_cast<std::uint8_t>((x >> 24) & 0x80u);
    const std::uint32_t absx = x & 0x7fffffffu;
    if (absx > 0x7f800000u) return 0x7fu; // nan, whatever its sign (as CUDA's cvt writes it)
    if (absx >= 0x43e00000u) return static_cast<std::uint8_t>(sign | 0x7eu); // >= 448 (and inf): saturate
    if (absx < 0x3c800000u) {
        // Below the smallest normal 2^-6: multiples of 2^-9. The scaling is exact, rint rounds to
        // nearest even, and a result of 8 is the smallest normal's encoding (0x08).
        return static_cast<std::uint8_t>(sign | static_cast<std::uint8_t>(std::rint(floatOf(absx) * 512.0f)));
    }
    // Keep 3 of 23 mantissa bits, rounding to nearest even (a carry moves into the exponent), then
    // rebias the exponent from 127 to 7. Below 448 nothing rounds past 0x7e.
    const std::uint32_t rounded = (absx + 0x7ffffu + ((absx >> 20) & 1u)) >> 20;
    return static_cast<std::uint8_t>(sign | (rounded - (120u << 3)));
}

float fp8E4M3ToFloat(std::uint8_t b) {
    const float sign = (b & 0x80u) ? -1.0f : 1.0f;
    const std::uint32_t exp = (b >> 3) & 0x0fu, mant = b & 0x07u;
    if (exp == 15 && mant == 7) return std::numeric_limits<float>::quiet_NaN();
    if (exp == 0) return sign * static_cast<float>(mant) * 0.001953125f; // mant * 2^-9
    return sign * floatOf(((exp + 120u) << 23) | (mant << 20));
}

} // namespace lathe

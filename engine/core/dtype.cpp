// The dtype traits table and the software float16/bfloat16 conversions.
#include "engine/core/dtype.h"

#include "engine/core/errors.h"

#include <array>
#include <cstring>
#include <limits>

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
void f16ToFloat(const void* s, float* d, std::size_t n) {
    auto p = static_cast<const std::uint16_t*>(s);
    for (std::size_t i = 0; i < n; ++i) d[i] = halfToFloat(p[i]);
}
void f16FromFloat(const float* s, void* d, std::size_t n) {
    auto p = static_cast<std::uint16_t*>(d);
    for (std::size_t i = 0; i < n; ++i) p[i] = floatToHalf(s[i]);
}
void bf16ToFloatRow(const void* s, float* d, std::size_t n) {
    auto p = static_cast<const std::uint16_t*>(s);
    for (std::size_t i = 0; i < n; ++i) d[i] = bf16ToFloat(p[i]);
}
void bf16FromFloatRow(const float* s, void* d, std::size_t n) {
    auto p = static_cast<std::uint16_t*>(d);
    for (std::size_t i = 0; i < n; ++i) p[i] = floatToBf16(s[i]);
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
    constexpr double hi = static_cast<double>(std::numeric_limits<T>::max());
    for (std::size_t i = 0; i < n; ++i) {
        double v = static_cast<double>(s[i]);
        v = v < lo ? lo : (v > hi ? hi : v);
        p[i] = static_cast<T>(v < 0 ? v - 0.5 : v + 0.5);
    }
}

const std::array<DTypeTraits, 6> kTraits = {{
    {DType::F32, "f32", "F32", 32, 1, 4, true, f32ToFloat, f32FromFloat},
    {DType::F16, "f16", "F16", 16, 1, 2, true, f16ToFloat, f16FromFloat},
    {DType::BF16, "bf16", "BF16", 16, 1, 2, true, bf16ToFloatRow, bf16FromFloatRow},
    {DType::I8, "i8", "I8", 8, 1, 1, false, intToFloat<std::int8_t>, intFromFloat<std::int8_t>},
    {DType::I32, "i32", "I32", 32, 1, 4, false, intToFloat<std::int32_t>, intFromFloat<std::int32_t>},
    {DType::U8, "u8", "U8", 8, 1, 1, false, intToFloat<std::uint8_t>, intFromFloat<std::uint8_t>},
}};

} // namespace

const DTypeTraits& traits(DType t) {
    const auto& row = kTraits.at(static_cast<std::size_t>(t));
    return row;
}

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
        if (name == t.safetensorsName) {
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
    return (n + tr.blockSize - 1) / tr.blockSize * tr.bytesPerBlock;
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

} // namespace lathe

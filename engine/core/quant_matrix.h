// Weight-only quantized matrices: W (rows N, cols K) as used by y = x W^T, quantized along K in groups of
// `group` values, each row starting its own groups (a row's last group may be partial; nothing is padded
// into the matrix). Codes and scales live in separate tensors, as the compressed-tensors convention that
// vLLM loads names them (weight_packed, weight_scale, weight_zero_point):
//   Int8  codes i8 (N, K), q in [-127, 127];             w = q * scale[n][g]             (symmetric)
//   Int4  codes u8 (N, ceil(K / 2)), two per byte;       w = (q - zero[n][g]) * scale[n][g], q in [0, 15]
//         symmetric: zero is 8 and not stored, scale = absmax / 7, q - 8 in [-7, 7];
//         asymmetric: the group's range [min(w, 0), max(w, 0)] over 15 steps, zero = round(-min / scale)
//   Nf4   codes u8 (N, ceil(K / 2)), two per byte;       w = kNf4Codebook[q] * absmax[n][g]
//         double-quantized (bitsandbytes' compress_statistics): the absmax are not stored in f32 but as 8-bit
//         codes of (absmax - mean) in blocks of 256 (row-major over (N, groups)), each block with an f32 scale:
//         absmax[i] = kDynamicMap8[scaleCode[i]] * scaleAbsmax[i / 256] + scaleOffset
//   Fp8   codes u8 (N, K), OCP FP8 E4M3 bytes;              w = fp8E4M3ToFloat(q) * scale[n][g], scale = absmax / 448
// Packing of 4-bit codes: value k of a row sits in byte k / 2 of that row, in the low nibble when k is even
// and in the high nibble when k is odd (a row of odd K ends on a byte whose high nibble is 0).
// scale: f32 (N, groups), groups = ceil(K / group); zero: u8 (N, groups), asymmetric Int4 only.
// Rounding is to nearest, half away from zero (std::lround), so every backend packs identically.
#pragma once

#include "engine/core/dtype.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace lathe {

enum class WeightFormat : std::uint8_t { Int8, Int4, Nf4, Fp8 };
const char* weightFormatName(WeightFormat f);          // "int8", "int4", "nf4", "fp8"
WeightFormat weightFormatFromName(std::string_view s); // ConfigError listing the names

struct QuantSpec {
    WeightFormat format = WeightFormat::Int4;
    std::int64_t group = 128; // values per group along K; group >= K means one group per row (per channel)
    bool symmetric = true;    // Int4 only: Int8 is always symmetric, Nf4 always absmax-scaled
    bool doubleQuant = false; // Nf4 only: the absmax themselves stored as 8-bit codes (see above)
};

constexpr float kFp8E4M3Max = 448.0f;          // the largest finite E4M3 value
constexpr std::int64_t kDoubleQuantBlock = 256; // absmax per second-level block (bitsandbytes' blocksize=256)
// bitsandbytes' signed 8-bit "dynamic" code (functional.create_dynamic_map(signed=True)): 256 sorted values in
// [-1, 1], a sign, a decimal exponent and a linear fraction, with 0 and 1 exact.
const std::array<float, 256>& dynamicMap8();
// The nearest code of v in [-1, 1] (binary search, as bitsandbytes' quantize_blockwise).
std::uint8_t dynamicMap8Code(float v);
// absmax[i] = dynamicMap8()[codes[i]] * blockAbsmax[i / 256] + offset, i < n: what the kernels multiply by.
void decodeDoubleQuantScales(const std::uint8_t* codes, const float* blockAbsmax, float offset, std::int64_t n,
                             float* absmax);
// The per-tensor scale an FP8 GEMM quantizes activations with: max|x| / 448, or 1 when x is all zeros.
inline float fp8TensorScale(float absmax) { return absmax > 0.0f ? absmax / kFp8E4M3Max : 1.0f; }
// An FP8 E4M3 byte's value, all 256 of them (NaN for 0x7f and 0xff).
const std::array<float, 256>& fp8E4M3Table();

// The dtype of the codes' tensor: I8 for Int8, F8E4M3 for Fp8, U8 (two 4-bit codes per byte) otherwise.
DType packedDType(WeightFormat f);

inline std::int64_t quantGroups(std::int64_t cols, std::int64_t group) { return (cols + group - 1) / group; }
// Bytes of one row of codes: K for Int8 and Fp8, ceil(K / 2) for the 4-bit formats.
std::int64_t packedRowBytes(WeightFormat f, std::int64_t cols);

struct HostQuantMatrix {
    QuantSpec spec;
    std::int64_t rows = 0, cols = 0;
    std::vector<std::uint8_t> packed; // rows * packedRowBytes (Int8: the bytes of int8 codes)
    std::vector<float> scales;        // rows * groups (Nf4: absmax)
    std::vector<std::uint8_t> zeros;  // rows * groups, asymmetric Int4 only; empty otherwise
    // Double-quantized Nf4 only (empty otherwise); `scales` then holds their decoded values, not stored.
    std::vector<std::uint8_t> scaleCodes; // rows * groups
    std::vector<float> scaleAbsmax;       // ceil(rows * groups / 256)
    float scaleOffset = 0.0f;             // the mean of the absmax, added back
    std::int64_t groups() const { return quantGroups(cols, spec.group); }
    bool hasZeros() const { return spec.format == WeightFormat::Int4 && !spec.symmetric; }
    bool doubleQuant() const { return spec.format == WeightFormat::Nf4 && spec.doubleQuant; }
    // What it stores: codes + scales (or their codes, block scales and offset) + zero points.
    std::size_t bytes() const {
        const std::size_t scaleBytes = doubleQuant()
                                           ? scaleCodes.size() + (scaleAbsmax.size() + 1) * sizeof(float)
                                           : scales.size() * sizeof(float);
        return packed.size() + scaleBytes + zeros.size();
    }
};

// W (rows, cols) row-major f32 -> codes. group must be >= 1 (ConfigError otherwise); a group that does not
// divide cols leaves a partial last group in each row.
HostQuantMatrix quantizeMatrix(const float* w, std::int64_t rows, std::int64_t cols, QuantSpec spec);
// codes -> W (rows, cols) f32, exactly the values the kernels multiply by.
void dequantizeMatrix(const HostQuantMatrix& q, float* w);
// The code of value k in row r (Int8: the signed code; 4-bit formats: 0..15; Fp8: the byte).
int quantCode(const HostQuantMatrix& q, std::int64_t r, std::int64_t k);

} // namespace lathe

// Weight-only quantized matrices: W (rows N, cols K) as used by y = x W^T, quantized along K in groups of
// `group` values, each row starting its own groups (a row's last group may be partial; nothing is padded
// into the matrix). Codes and scales live in separate tensors, as the compressed-tensors convention that
// vLLM loads names them (weight_packed, weight_scale, weight_zero_point):
//   Int8  codes i8 (N, K), q in [-127, 127];             w = q * scale[n][g]             (symmetric)
//   Int4  codes u8 (N, ceil(K / 2)), two per byte;       w = (q - zero[n][g]) * scale[n][g], q in [0, 15]
//         symmetric: zero is 8 and not stored, scale = absmax / 7, q - 8 in [-7, 7];
//         asymmetric: the group's range [min(w, 0), max(w, 0)] over 15 steps, zero = round(-min / scale)
//   Nf4   codes u8 (N, ceil(K / 2)), two per byte;       w = kNf4Codebook[q] * absmax[n][g]
// Packing of 4-bit codes: value k of a row sits in byte k / 2 of that row, in the low nibble when k is even
// and in the high nibble when k is odd (a row of odd K ends on a byte whose high nibble is 0).
// scale: f32 (N, groups), groups = ceil(K / group); zero: u8 (N, groups), asymmetric Int4 only.
// Rounding is to nearest, half away from zero (std::lround), so every backend packs identically.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace lathe {

enum class WeightFormat : std::uint8_t { Int8, Int4, Nf4 };
const char* weightFormatName(WeightFormat f);          // "int8", "int4", "nf4"
WeightFormat weightFormatFromName(std::string_view s); // ConfigError listing the names

struct QuantSpec {
    WeightFormat format = WeightFormat::Int4;
    std::int64_t group = 128; // values per group along K; group >= K means one group per row (per channel)
    bool symmetric = true;    // Int4 only: Int8 is always symmetric, Nf4 always absmax-scaled
};

inline std::int64_t quantGroups(std::int64_t cols, std::int64_t group) { return (cols + group - 1) / group; }
// Bytes of one row of codes: K for Int8, ceil(K / 2) for the 4-bit formats.
std::int64_t packedRowBytes(WeightFormat f, std::int64_t cols);

struct HostQuantMatrix {
    QuantSpec spec;
    std::int64_t rows = 0, cols = 0;
    std::vector<std::uint8_t> packed; // rows * packedRowBytes (Int8: the bytes of int8 codes)
    std::vector<float> scales;        // rows * groups (Nf4: absmax)
    std::vector<std::uint8_t> zeros;  // rows * groups, asymmetric Int4 only; empty otherwise
    std::int64_t groups() const { return quantGroups(cols, spec.group); }
    bool hasZeros() const { return spec.format == WeightFormat::Int4 && !spec.symmetric; }
    // What it stores: codes + scales + zero points.
    std::size_t bytes() const { return packed.size() + scales.size() * sizeof(float) + zeros.size(); }
};

// W (rows, cols) row-major f32 -> codes. group must be >= 1 (ConfigError otherwise); a group that does not
// divide cols leaves a partial last group in each row.
HostQuantMatrix quantizeMatrix(const float* w, std::int64_t rows, std::int64_t cols, QuantSpec spec);
// codes -> W (rows, cols) f32, exactly the values the kernels multiply by.
void dequantizeMatrix(const HostQuantMatrix& q, float* w);
// The code of value k in row r (Int8: the signed code; 4-bit formats: 0..15).
int quantCode(const HostQuantMatrix& q, std::int64_t r, std::int64_t k);

} // namespace lathe

// Block layouts of the quantized storage formats, locked by static_assert, and their row codecs
// (FP32 <-> blocks). Each layout follows the format's origin so its files and kernels can be shared.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace lathe {

// INT4 symmetric, 32 values: x = (q - 8) * d, q in [0, 15]. Value j sits in the low nibble of qs[j]
// for j < 16 and in the high nibble of qs[j - 16] otherwise (ggml's block_q4_0).
struct BlockQ4_0 {
    static constexpr int kValues = 32;
    std::uint16_t d;      // fp16 scale
    std::uint8_t qs[16];  // packed nibbles
};
static_assert(sizeof(BlockQ4_0) == 2 + 16, "q4_0 block: fp16 scale + 16 bytes of nibbles");
static_assert(alignof(BlockQ4_0) == 2);

// INT4 with offset ("zero point" form), 32 values: x = q * d + m, q in [0, 15]; nibbles as in q4_0
// (ggml's block_q4_1).
struct BlockQ4_1 {
    static constexpr int kValues = 32;
    std::uint16_t d;      // fp16 scale
    std::uint16_t m;      // fp16 block minimum
    std::uint8_t qs[16];
};
static_assert(sizeof(BlockQ4_1) == 2 + 2 + 16, "q4_1 block: fp16 scale + fp16 minimum + 16 bytes of nibbles");
static_assert(alignof(BlockQ4_1) == 2);

// 4-bit NormalFloat, 64 values: x = kNf4Codebook[q] * absmax. Value 2i sits in the high nibble of qs[i],
// value 2i + 1 in the low nibble (bitsandbytes' packing, block size 64, f32 absmax before double
// quantization).
struct BlockNf4 {
    static constexpr int kValues = 64;
    float absmax;
    std::uint8_t qs[32];
};
static_assert(sizeof(BlockNf4) == 4 + 32, "nf4 block: f32 absmax + 32 bytes of nibbles");
static_assert(alignof(BlockNf4) == 4);

// INT8 symmetric, 32 values: x = q * d, q in [-127, 127] (ggml's block_q8_0).
struct BlockQ8_0 {
    static constexpr int kValues = 32;
    std::uint16_t d;     // fp16 scale
    std::int8_t qs[32];
};
static_assert(sizeof(BlockQ8_0) == 2 + 32, "q8_0 block: fp16 scale + 32 int8 values");
static_assert(alignof(BlockQ8_0) == 2);

// The NF4 code book: bitsandbytes' published table (functional.py / kernels.cu dDequantizeNF4), the
// normal distribution's quantiles scaled to [-1, 1] with an exact zero.
inline constexpr std::array<float, 16> kNf4Codebook = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

// Nearest NF4 code of x in [-1, 1]; a value exactly between two codes takes the lower one (bitsandbytes'
// dQuantizeNF4 decision tree compares "x > midpoint").
std::uint8_t nf4Code(float x);

// Row codecs; n is a multiple of the block's kValues. Quantizers follow the reference code of each
// format's origin (ggml's quantize_row_*_ref, bitsandbytes' kQuantizeBlockwise).
void quantizeRowQ4_0(const float* x, BlockQ4_0* y, std::size_t n);
void dequantizeRowQ4_0(const BlockQ4_0* x, float* y, std::size_t n);
void quantizeRowQ4_1(const float* x, BlockQ4_1* y, std::size_t n);
void dequantizeRowQ4_1(const BlockQ4_1* x, float* y, std::size_t n);
void quantizeRowNf4(const float* x, BlockNf4* y, std::size_t n);
void dequantizeRowNf4(const BlockNf4* x, float* y, std::size_t n);
void quantizeRowQ8_0(const float* x, BlockQ8_0* y, std::size_t n);
void dequantizeRowQ8_0(const BlockQ8_0* x, float* y, std::size_t n);

} // namespace lathe

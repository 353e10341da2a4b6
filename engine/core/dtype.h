// Element types and their traits table: one row per storage format, each row carrying its enum value
// (checked at compile time in dtype.cpp). Block formats' layouts live in quant_blocks.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace lathe {

// Append new formats before Count and give each a row in dtype.cpp's table (a static_assert there
// fails otherwise), a block struct in quant_blocks.h when it is a block format, and a test row in
// tests/core/test_dtypes.cpp.
enum class DType : std::uint8_t {
    F32, F16, BF16, I8, I32, U8,
    F8E4M3, // OCP FP8 E4M3 ("e4m3fn"): 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities
    Q4_0,   // INT4 group-wise, 32 values + fp16 scale (symmetric, ggml's block_q4_0)
    Q4_1,   // INT4 group-wise with offset, 32 values + fp16 scale + fp16 minimum (ggml's block_q4_1)
    NF4,    // 4-bit NormalFloat (QLoRA / bitsandbytes), 64 values + f32 absmax
    Q8_0,   // INT8 group-wise, 32 values + fp16 scale (ggml's block_q8_0)
    I64,    // 64-bit integers: PyTorch's counters (BatchNorm's num_batches_tracked) in model files; storage only
    Count
};
constexpr std::size_t kDTypeCount = static_cast<std::size_t>(DType::Count);

struct DTypeTraits {
    DType dtype;
    const char* name;            // as used in experiment files and the store: "f32"
    const char* safetensorsName; // as safetensors names it: "F32"; "" when safetensors has no such dtype
    int bits;                    // bits per element (of the packed element for block formats)
    int blockSize;               // elements per block; 1 for plain formats
    std::size_t bytesPerBlock;   // storage bytes of one block (the block struct's size)
    bool isFloat;                // an elementwise floating-point format
    bool isQuantized;            // a block format with its own scales (needs whole blocks)
    // Row converters between this format and float; n is a multiple of blockSize.
    void (*toFloat)(const void* src, float* dst, std::size_t n);
    void (*fromFloat)(const float* src, void* dst, std::size_t n);
};

const DTypeTraits& traits(DType t); // throws BackendError for a value outside the table
std::span<const DTypeTraits> dtypeTable(); // every row, in enum order
inline const char* dtypeName(DType t) { return traits(t).name; }
DType dtypeFromName(std::string_view name);             // throws ConfigError listing the known names
DType dtypeFromSafetensors(std::string_view name);      // throws DataError
bool dtypeFromSafetensors(std::string_view name, DType& out) noexcept;

// Bytes needed for n elements of t: n / blockSize * bytesPerBlock. Throws BackendError when n is not a
// whole number of blocks.
std::size_t storageBytes(DType t, std::size_t n);

// Scalar conversions, shared by the CPU reference and host-side code.
std::uint16_t floatToHalf(float f);
float halfToFloat(std::uint16_t h);
std::uint16_t floatToBf16(float f); // round to nearest even
float bf16ToFloat(std::uint16_t b);
// The instruction set the f16 / bf16 rows of the traits table (fromFloat / toFloat) use: chosen at run time (the
// widest this CPU has); the same results on every path. Tests and benchmarks switch it (process-wide); switching to
// one this CPU lacks throws BackendError.
enum class HalfRowPath { Scalar, Avx2, Avx512 }; // Avx2: AVX2 + F16C, f16 only (bf16 stays scalar there)
const char* halfRowPathName(HalfRowPath path);    // "scalar", "avx2", "avx512"
bool halfRowPathAvailable(HalfRowPath path);
HalfRowPath halfRowPath();
void setHalfRowPath(HalfRowPath path);
// FP8 E4M3: round to nearest even, saturating to +-448 (like cvt.satfinite); NaN stays NaN (0x7f).
std::uint8_t floatToFp8E4M3(float f);
float fp8E4M3ToFloat(std::uint8_t b);

} // namespace lathe

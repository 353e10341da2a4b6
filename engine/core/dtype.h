// Element types and their traits table: one row per storage format. Quantized formats
// (INT4 group-wise, NF4, FP8) are added as rows here, with their block layouts locked by static_assert.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lathe {

enum class DType : std::uint8_t { F32, F16, BF16, I8, I32, U8 };

struct DTypeTraits {
    DType dtype;
    const char* name;          // as used in experiment files and the store: "f32"
    const char* safetensorsName; // as safetensors names it: "F32"
    int bits;                  // bits per element (of the unpacked element for block formats)
    int blockSize;             // elements per block; 1 for plain formats
    std::size_t bytesPerBlock; // storage bytes of one block
    bool isFloat;
    // Row converters between this format and float; n is a multiple of blockSize.
    void (*toFloat)(const void* src, float* dst, std::size_t n);
    void (*fromFloat)(const float* src, void* dst, std::size_t n);
};

const DTypeTraits& traits(DType t);
inline const char* dtypeName(DType t) { return traits(t).name; }
DType dtypeFromName(std::string_view name);             // throws ConfigError listing the known names
DType dtypeFromSafetensors(std::string_view name);      // throws DataError
bool dtypeFromSafetensors(std::string_view name, DType& out) noexcept;

// Bytes needed for n elements of t (n must be a multiple of the block size).
std::size_t storageBytes(DType t, std::size_t n);

// Scalar conversions, shared by the CPU reference and host-side code.
std::uint16_t floatToHalf(float f);
float halfToFloat(std::uint16_t h);
std::uint16_t floatToBf16(float f); // round to nearest even
float bf16ToFloat(std::uint16_t b);

} // namespace lathe

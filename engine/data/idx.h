// IDX files (the MNIST family format), plain or gzipped, validated before anything is allocated.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lathe {

struct IdxArray {
    std::uint8_t typeCode = 0x08;      // 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64
    std::vector<std::int64_t> dims;
    std::vector<std::uint8_t> bytes;   // big-endian element data as stored
};

// Throws DataError "<path>: <problem>" for a bad magic number, an unknown type code, a dimension
// product over maxBytes (checked before anything is allocated), a file or gzip stream shorter or
// longer than its header says, or corrupt gzip data. Gzip is detected by its magic bytes (1f 8b);
// a gzipped payload is read in 1 MiB steps and reading stops one byte past the declared size.
IdxArray readIdx(const std::string& path, std::uint64_t maxBytes = 1ull << 31);
IdxArray parseIdx(const std::uint8_t* data, std::size_t size, const std::string& nameForErrors,
                  std::uint64_t maxBytes = 1ull << 31);

} // namespace lathe

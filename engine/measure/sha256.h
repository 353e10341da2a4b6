// SHA-256 (FIPS 180-4) for dataset hashes, baseline cache keys and artifacts. File hashes are
// cached per process by (path, size, mtime): the dataset files are tens of megabytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lathe {

class Sha256 {
public:
    Sha256();
    void update(const void* data, std::size_t size);
    void update(std::string_view s) { update(s.data(), s.size()); }
    std::array<std::uint8_t, 32> digest(); // finishes; the object must not be updated afterwards
    std::string hexDigest();

private:
    void block(const std::uint8_t* p);
    std::uint32_t m_h[8];
    std::uint8_t m_buffer[64];
    std::size_t m_buffered = 0;
    std::uint64_t m_totalBytes = 0;
};

std::string sha256Hex(std::string_view data);
// Throws DataError naming the file when it cannot be read.
std::string sha256File(const std::string& path);

} // namespace lathe

// SHA-256 for dataset hashes, baseline cache keys and artifacts, computed by OpenSSL's libcrypto (EVP).
// File hashes are cached per process by (path, size, mtime): the dataset files are tens of megabytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

struct evp_md_ctx_st;

namespace lathe {

class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;
    void update(const void* data, std::size_t size);
    void update(std::string_view s) { update(s.data(), s.size()); }
    std::array<std::uint8_t, 32> digest(); // finishes; the object must not be updated afterwards
    std::string hexDigest();

private:
    struct CtxFree {
        void operator()(evp_md_ctx_st* ctx) const;
    };
    std::unique_ptr<evp_md_ctx_st, CtxFree> m_ctx;
};

std::string sha256Hex(std::string_view data);
// Throws DataError naming the file when it cannot be read.
std::string sha256File(const std::string& path);

} // namespace lathe

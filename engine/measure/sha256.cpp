// SHA-256 through OpenSSL's EVP interface (which uses the CPU's SHA extensions where present), and a
// per-process cache of file digests.
#include "engine/measure/sha256.h"

#include "engine/core/errors.h"

#include <openssl/evp.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

namespace lathe {

void Sha256::CtxFree::operator()(evp_md_ctx_st* ctx) const { EVP_MD_CTX_free(ctx); }

Sha256::Sha256() : m_ctx(EVP_MD_CTX_new()) {
    if (!m_ctx || EVP_DigestInit_ex(m_ctx.get(), EVP_sha256(), nullptr) != 1)
        throw Error("SHA-256: libcrypto could not initialise a digest");
}

Sha256::~Sha256() = default;

void Sha256::update(const void* data, std::size_t size) {
    if (size == 0) return;
    if (EVP_DigestUpdate(m_ctx.get(), data, size) != 1) throw Error("SHA-256: libcrypto update failed");
}

std::array<std::uint8_t, 32> Sha256::digest() {
    std::array<std::uint8_t, 32> out{};
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(m_ctx.get(), out.data(), &n) != 1 || n != out.size())
        throw Error("SHA-256: libcrypto could not finish the digest");
    return out;
}

std::string Sha256::hexDigest() {
    static const char* kHex = "0123456789abcdef";
    std::string s;
    for (std::uint8_t b : digest()) {
        s += kHex[b >> 4];
        s += kHex[b & 15];
    }
    return s;
}

std::string sha256Hex(std::string_view data) {
    Sha256 h;
    h.update(data);
    return h.hexDigest();
}

std::string sha256File(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw DataError(path + ": cannot hash: " + std::strerror(errno));
    using Key = std::tuple<std::string, long long, long long, long long>;
    const Key key{path, static_cast<long long>(st.st_size), static_cast<long long>(st.st_mtim.tv_sec),
                  static_cast<long long>(st.st_mtim.tv_nsec)};
    static std::mutex mutex;
    static std::map<Key, std::string> cache;
    {
        std::lock_guard lock(mutex);
        if (auto it = cache.find(key); it != cache.end()) return it->second;
    }
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw DataError(path + ": cannot hash: " + std::strerror(errno));
    Sha256 h;
    std::vector<char> buf(1 << 20);
    std::size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) h.update(buf.data(), n);
    const bool failed = std::ferror(f) != 0;
    std::fclose(f);
    if (failed) throw DataError(path + ": read error while hashing");
    std::string hex = h.hexDigest();
    std::lock_guard lock(mutex);
    cache[key] = hex;
    return hex;
}

} // namespace lathe

// IDX reader: one parser over four byte sources (plain or gzipped, file or memory). The header is
// validated before any payload is allocated, and a gzipped payload is read in bounded chunks so a
// stream that inflates past its declared size stops one byte after it.
#include "engine/data/idx.h"

#include "engine/core/errors.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>

namespace lathe {
namespace {

constexpr int kMaxDims = 16;
// A gzipped payload grows the buffer by this much at a time: a header that lies about its size
// costs at most this much memory beyond what the stream really holds.
constexpr std::size_t kChunkBytes = std::size_t{1} << 20;

int elementBytes(std::uint8_t typeCode) {
    switch (typeCode) {
    case 0x08: return 1; // unsigned byte
    case 0x09: return 1; // signed byte
    case 0x0B: return 2; // short
    case 0x0C: return 4; // int
    case 0x0D: return 4; // float
    case 0x0E: return 8; // double
    default: return 0;
    }
}

std::string hexBytes(const std::uint8_t* p, std::size_t n) {
    std::string out;
    char buf[4];
    for (std::size_t i = 0; i < n; ++i) {
        std::snprintf(buf, sizeof buf, "%02x", p[i]);
        if (i) out += ' ';
        out += buf;
    }
    return out;
}

bool isGzip(const std::uint8_t* p, std::size_t n) { return n >= 2 && p[0] == 0x1f && p[1] == 0x8b; }

// Reads up to n bytes; returns how many were read (less only at the end of the data).
// Throws DataError for I/O or decompression errors.
class ByteSource {
public:
    virtual ~ByteSource() = default;
    virtual std::size_t read(std::uint8_t* dst, std::size_t n) = 0;
    // Bytes left to read when known up front (plain data); lets a truncated or padded file be
    // rejected before its payload is allocated.
    virtual std::optional<std::uint64_t> remaining() const { return std::nullopt; }
};

class MemorySource final : public ByteSource {
public:
    MemorySource(const std::uint8_t* data, std::size_t size) : m_data(data), m_size(size) {}
    std::size_t read(std::uint8_t* dst, std::size_t n) override {
        const std::size_t k = std::min(n, m_size - m_pos);
        if (k) std::memcpy(dst, m_data + m_pos, k);
        m_pos += k;
        return k;
    }
    std::optional<std::uint64_t> remaining() const override { return m_size - m_pos; }

private:
    const std::uint8_t* m_data;
    std::size_t m_size;
    std::size_t m_pos = 0;
};

// In-memory gzip stream (used by parseIdx, hence by the fuzzer).
class MemoryGzipSource final : public ByteSource {
public:
    MemoryGzipSource(const std::uint8_t* data, std::size_t size, std::string name) : m_name(std::move(name)) {
        std::memset(&m_zs, 0, sizeof m_zs);
        m_zs.next_in = const_cast<Bytef*>(data);
        m_zs.avail_in = static_cast<uInt>(std::min<std::size_t>(size, 0xffffffffu));
        m_inputLeft = size - m_zs.avail_in;
        // 16 + MAX_WBITS: gzip wrapper only.
        if (inflateInit2(&m_zs, 16 + MAX_WBITS) != Z_OK) throw DataError(m_name + ": cannot start gzip decompression");
    }
    ~MemoryGzipSource() override { inflateEnd(&m_zs); }

    std::size_t read(std::uint8_t* dst, std::size_t n) override {
        std::size_t got = 0;
        while (got < n && !m_ended) {
            if (m_zs.avail_in == 0 && m_inputLeft > 0) {
                const std::size_t k = std::min<std::size_t>(m_inputLeft, 0xffffffffu);
                m_zs.avail_in = static_cast<uInt>(k);
                m_inputLeft -= k;
            }
            const std::size_t want = std::min<std::size_t>(n - got, 0xffffffffu);
            m_zs.next_out = dst + got;
            m_zs.avail_out = static_cast<uInt>(want);
            const int rc = inflate(&m_zs, Z_NO_FLUSH);
            got += want - m_zs.avail_out;
            if (rc == Z_STREAM_END) {
                m_ended = true;
            } else if (rc == Z_BUF_ERROR) {
                if (m_zs.avail_in == 0 && m_inputLeft == 0)
                    throw DataError(m_name + ": truncated gzip stream (it ends before its end marker)");
            } else if (rc != Z_OK) {
                throw DataError(m_name + ": corrupt gzip data (" + (m_zs.msg ? m_zs.msg : "inflate error") + ")");
            }
        }
        return got;
    }

private:
    std::string m_name;
    z_stream m_zs;
    std::size_t m_inputLeft = 0;
    bool m_ended = false;
};

struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
};

class FileSource final : public ByteSource {
public:
    FileSource(std::FILE* f, std::uint64_t size, std::string name) : m_file(f), m_left(size), m_name(std::move(name)) {}
    std::size_t read(std::uint8_t* dst, std::size_t n) override {
        const std::size_t k = std::fread(dst, 1, n, m_file.get());
        if (k < n && std::ferror(m_file.get())) throw DataError(m_name + ": read error: " + std::strerror(errno));
        m_left -= std::min<std::uint64_t>(m_left, k);
        return k;
    }
    std::optional<std::uint64_t> remaining() const override { return m_left; }

private:
    std::unique_ptr<std::FILE, FileCloser> m_file;
    std::uint64_t m_left;
    std::string m_name;
};

// gzerror() prefixes its message with the path given to gzopen; ours already starts with it.
std::string gzMessage(const char* msg, const std::string& path) {
    std::string m = msg ? msg : "read error";
    if (m.rfind(path + ": ", 0) == 0) m.erase(0, path.size() + 2);
    return m;
}

class GzFileSource final : public ByteSource {
public:
    GzFileSource(const std::string& path) : m_name(path) {
        m_gz = gzopen(path.c_str(), "rb");
        if (!m_gz) throw DataError(path + ": cannot open: " + std::strerror(errno));
    }
    ~GzFileSource() override { gzclose(m_gz); }
    std::size_t read(std::uint8_t* dst, std::size_t n) override {
        std::size_t got = 0;
        while (got < n) {
            const unsigned want = static_cast<unsigned>(std::min<std::size_t>(n - got, 1u << 30));
            const int k = gzread(m_gz, dst + got, want);
            if (k < 0) {
                int err = 0;
                const char* msg = gzerror(m_gz, &err);
                throw DataError(m_name + ": corrupt gzip data (" + gzMessage(msg, m_name) + ")");
            }
            got += static_cast<std::size_t>(k);
            if (static_cast<unsigned>(k) < want) {
                // Short read: the end of the stream, or a stream cut short (zlib reports that as an error).
                int err = 0;
                const char* msg = gzerror(m_gz, &err);
                if (err == Z_BUF_ERROR)
                    throw DataError(m_name + ": truncated gzip stream (it ends before its end marker)");
                if (err != Z_OK)
                    throw DataError(m_name + ": corrupt gzip data (" + gzMessage(msg, m_name) + ")");
                break;
            }
        }
        return got;
    }

private:
    gzFile m_gz = nullptr;
    std::string m_name;
};

std::uint32_t bigEndian32(const std::uint8_t* p) {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

IdxArray parseFrom(ByteSource& src, const std::string& name, std::uint64_t maxBytes) {
    std::array<std::uint8_t, 4> magic{};
    const std::size_t gotMagic = src.read(magic.data(), magic.size());
    if (gotMagic < magic.size())
        throw DataError(name + ": truncated header: " + std::to_string(gotMagic) +
                        " bytes, an IDX file starts with a 4-byte magic number");
    if (magic[0] != 0 || magic[1] != 0)
        throw DataError(name + ": not an IDX file (magic bytes " + hexBytes(magic.data(), 4) +
                        ", expected 00 00 <type> <dims>)");
    IdxArray out;
    out.typeCode = magic[2];
    const int elemBytes = elementBytes(out.typeCode);
    if (elemBytes == 0)
        throw DataError(name + ": unknown IDX element type 0x" + hexBytes(&magic[2], 1) +
                        " (known: 08 u8, 09 i8, 0b i16, 0c i32, 0d f32, 0e f64)");
    const int ndims = magic[3];
    if (ndims == 0 || ndims > kMaxDims)
        throw DataError(name + ": bad IDX dimension count " + std::to_string(ndims) + " (expected 1.." +
                        std::to_string(kMaxDims) + ")");

    std::array<std::uint8_t, 4 * kMaxDims> dimBytes{};
    const std::size_t dimLen = 4 * static_cast<std::size_t>(ndims);
    const std::size_t gotDims = src.read(dimBytes.data(), dimLen);
    if (gotDims < dimLen)
        throw DataError(name + ": truncated header: " + std::to_string(ndims) + " dimensions need " +
                        std::to_string(dimLen) + " bytes, found " + std::to_string(gotDims));

    // The payload size is checked against maxBytes step by step, so the product cannot overflow.
    std::uint64_t bytes = static_cast<std::uint64_t>(elemBytes);
    std::string dimsText;
    bool tooLarge = false;
    for (int i = 0; i < ndims; ++i) {
        const std::uint32_t d = bigEndian32(&dimBytes[4 * static_cast<std::size_t>(i)]);
        out.dims.push_back(d);
        dimsText += (i ? " x " : "") + std::to_string(d);
        if (!tooLarge && d != 0 && bytes > maxBytes / d) tooLarge = true;
        if (!tooLarge) bytes *= d;
    }
    if (tooLarge || bytes > maxBytes)
        throw DataError(name + ": dimensions " + dimsText + " exceed the limit of " + std::to_string(maxBytes) +
                        " data bytes");

    const std::uint64_t headerBytes = 4 + dimLen;
    if (auto left = src.remaining()) {
        if (*left < bytes)
            throw DataError(name + ": truncated: dimensions " + dimsText + " need " + std::to_string(bytes) +
                            " data bytes, the file holds " + std::to_string(*left) + " after its " +
                            std::to_string(headerBytes) + "-byte header");
        if (*left > bytes)
            throw DataError(name + ": " + std::to_string(*left - bytes) + " trailing bytes after the " +
                            std::to_string(bytes) + " data bytes its header declares");
        out.bytes.resize(static_cast<std::size_t>(bytes));
        const std::size_t got = src.read(out.bytes.data(), out.bytes.size());
        if (got != bytes)
            throw DataError(name + ": truncated: read " + std::to_string(got) + " of " + std::to_string(bytes) +
                            " data bytes");
        return out;
    }

    // Size unknown (gzip): grow as the data arrives.
    std::size_t have = 0;
    while (have < bytes) {
        const std::size_t step = static_cast<std::size_t>(std::min<std::uint64_t>(bytes - have, kChunkBytes));
        out.bytes.resize(have + step);
        const std::size_t got = src.read(out.bytes.data() + have, step);
        have += got;
        if (got < step)
            throw DataError(name + ": truncated: dimensions " + dimsText + " need " + std::to_string(bytes) +
                            " data bytes, the stream holds " + std::to_string(have) + " after its " +
                            std::to_string(headerBytes) + "-byte header");
    }
    std::uint8_t extra = 0;
    if (src.read(&extra, 1) != 0)
        throw DataError(name + ": trailing bytes after the " + std::to_string(bytes) +
                        " data bytes its header declares");
    return out;
}

} // namespace

IdxArray parseIdx(const std::uint8_t* data, std::size_t size, const std::string& nameForErrors,
                  std::uint64_t maxBytes) {
    if (isGzip(data, size)) {
        MemoryGzipSource src(data, size, nameForErrors);
        return parseFrom(src, nameForErrors, maxBytes);
    }
    MemorySource src(data, size);
    return parseFrom(src, nameForErrors, maxBytes);
}

IdxArray readIdx(const std::string& path, std::uint64_t maxBytes) {
    std::FILE* raw = std::fopen(path.c_str(), "rb");
    if (!raw) throw DataError(path + ": cannot open: " + std::strerror(errno));
    std::unique_ptr<std::FILE, FileCloser> f(raw);
    std::uint8_t head[2] = {0, 0};
    const std::size_t n = std::fread(head, 1, 2, f.get());
    if (isGzip(head, n)) {
        f.reset();
        GzFileSource src(path);
        return parseFrom(src, path, maxBytes);
    }
    if (std::fseek(f.get(), 0, SEEK_END) != 0) throw DataError(path + ": cannot seek: " + std::strerror(errno));
    const long size = std::ftell(f.get());
    if (size < 0) throw DataError(path + ": cannot tell its size: " + std::strerror(errno));
    std::rewind(f.get());
    FileSource src(f.release(), static_cast<std::uint64_t>(size), path);
    return parseFrom(src, path, maxBytes);
}

} // namespace lathe

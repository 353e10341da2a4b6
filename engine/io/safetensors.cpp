// safetensors reader and writer. The reader trusts nothing in the header: sizes, offsets and
// shapes are checked against the file before a byte is copied. The writer goes through a
// temporary file, fsync and rename, so a crash or a full disk never leaves half a model.
#include "engine/io/safetensors.h"

#include "engine/core/errors.h"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>

namespace lathe {
namespace {

using OrderedJson = nlohmann::ordered_json;

constexpr std::uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000; // the limit the reference implementation uses
constexpr int kMaxJsonDepth = 64;
constexpr const char* kMetadataKey = "__metadata__";

std::uint64_t readLe64(const std::uint8_t* p) {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

// A header is a flat object of small objects; deeper nesting only serves to exhaust a stack.
void checkNesting(const char* p, std::size_t n, const std::string& name) {
    int depth = 0;
    bool inString = false;
    for (std::size_t i = 0; i < n; ++i) {
        const char c = p[i];
        if (inString) {
            if (c == '\\') ++i;
            else if (c == '"') inString = false;
        } else if (c == '"') {
            inString = true;
        } else if (c == '[' || c == '{') {
            if (++depth > kMaxJsonDepth)
                throw DataError(name + ": JSON header nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
}

std::string supportedDtypes() {
    std::string out;
    for (const auto& row : dtypeTable())
        if (*row.safetensorsName) out += (out.empty() ? "" : ", ") + std::string(row.safetensorsName);
    return out;
}

struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
    std::uint64_t begin, end;
};

std::uint64_t nonNegativeInt(const OrderedJson& v, const std::string& what, const std::string& where) {
    if (v.is_number_unsigned()) return v.get<std::uint64_t>();
    if (v.is_number_integer() && v.get<std::int64_t>() >= 0) return static_cast<std::uint64_t>(v.get<std::int64_t>());
    throw DataError(where + ": " + what + " must be a non-negative integer, got " + v.dump());
}

Entry parseEntry(const std::string& tensorName, const OrderedJson& info, const std::string& name) {
    const std::string where = name + ": tensor " + quoted(tensorName);
    if (!info.is_object()) throw DataError(where + ": expected an object with dtype, shape and data_offsets");
    for (const char* key : {"dtype", "shape", "data_offsets"})
        if (!info.contains(key)) throw DataError(where + ": missing \"" + key + "\"");

    Entry e;
    e.name = tensorName;
    const auto& dtype = info["dtype"];
    if (!dtype.is_string()) throw DataError(where + ": dtype must be a string, got " + dtype.dump());
    if (!dtypeFromSafetensors(dtype.get<std::string>(), e.dtype))
        throw DataError(where + ": unsupported dtype " + quoted(dtype.get<std::string>()) + " (supported: " +
                        supportedDtypes() + ")");

    const auto& shape = info["shape"];
    if (!shape.is_array()) throw DataError(where + ": shape must be an array, got " + shape.dump());
    std::uint64_t elements = 1;
    for (const auto& d : shape) {
        const std::uint64_t extent = nonNegativeInt(d, "every shape extent", where);
        if (extent > static_cast<std::uint64_t>(INT64_MAX) ||
            (extent != 0 && elements > static_cast<std::uint64_t>(INT64_MAX) / extent))
            throw DataError(where + ": shape " + shape.dump() + " has more elements than can be addressed");
        elements *= extent;
        e.shape.push_back(static_cast<std::int64_t>(extent));
    }

    const auto& offsets = info["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2)
        throw DataError(where + ": data_offsets must be [begin, end], got " + offsets.dump());
    e.begin = nonNegativeInt(offsets[0], "data_offsets[0]", where);
    e.end = nonNegativeInt(offsets[1], "data_offsets[1]", where);
    if (e.begin > e.end) throw DataError(where + ": data_offsets " + offsets.dump() + " begin after they end");

    const auto& tr = traits(e.dtype);
    const std::uint64_t blocks = (elements + tr.blockSize - 1) / tr.blockSize;
    if (blocks > UINT64_MAX / tr.bytesPerBlock)
        throw DataError(where + ": shape " + shape.dump() + " has more bytes than can be addressed");
    const std::uint64_t expected = blocks * tr.bytesPerBlock;
    if (e.end - e.begin != expected)
        throw DataError(where + ": data_offsets " + offsets.dump() + " span " + std::to_string(e.end - e.begin) +
                        " bytes, but " + tr.safetensorsName + " " + shape.dump() + " needs " +
                        std::to_string(expected));
    return e;
}

// Writes all of buf, retrying on EINTR and short writes; false with errno set on failure.
bool writeAll(int fd, const void* buf, std::size_t n) {
    auto p = static_cast<const char*>(buf);
    while (n > 0) {
        const ssize_t k = ::write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += k;
        n -= static_cast<std::size_t>(k);
    }
    return true;
}

} // namespace

const Tensor* SafetensorsFile::find(const std::string& name) const {
    for (const auto& [n, t] : tensors)
        if (n == name) return &t;
    return nullptr;
}

SafetensorsFile parseSafetensors(const std::uint8_t* data, std::size_t size, const std::string& name) {
    if (size < 8)
        throw DataError(name + ": truncated: " + std::to_string(size) +
                        " bytes, a safetensors file starts with an 8-byte header length");
    const std::uint64_t headerLen = readLe64(data);
    if (headerLen > kMaxHeaderBytes)
        throw DataError(name + ": header length " + std::to_string(headerLen) + " exceeds the limit of " +
                        std::to_string(kMaxHeaderBytes) + " bytes");
    if (headerLen > size - 8)
        throw DataError(name + ": header length " + std::to_string(headerLen) + " is larger than the file (" +
                        std::to_string(size) + " bytes)");

    const char* headerText = reinterpret_cast<const char*>(data + 8);
    checkNesting(headerText, headerLen, name);
    OrderedJson header;
    try {
        header = OrderedJson::parse(headerText, headerText + headerLen);
    } catch (const nlohmann::json::exception& e) {
        throw DataError(name + ": invalid JSON header: " + e.what());
    }
    if (!header.is_object()) throw DataError(name + ": the JSON header is not an object");

    SafetensorsFile out;
    std::vector<Entry> entries;
    for (const auto& [key, value] : header.items()) {
        if (key == kMetadataKey) {
            if (!value.is_object()) throw DataError(name + ": __metadata__ must be an object of strings");
            for (const auto& [mk, mv] : value.items()) {
                if (!mv.is_string())
                    throw DataError(name + ": __metadata__ " + quoted(mk) + " must be a string, got " + mv.dump());
                out.metadata[mk] = mv.get<std::string>();
            }
            continue;
        }
        entries.push_back(parseEntry(key, value, name));
    }

    // Offsets must tile the data section exactly: no overlaps (two tensors aliasing one buffer),
    // no gaps and no unindexed tail (room for a second, hidden payload).
    const std::uint64_t dataBytes = size - 8 - headerLen;
    std::vector<const Entry*> byOffset;
    for (const auto& e : entries) byOffset.push_back(&e);
    std::stable_sort(byOffset.begin(), byOffset.end(), [](const Entry* a, const Entry* b) {
        return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
    });
    std::uint64_t pos = 0;
    const Entry* prev = nullptr;
    for (const Entry* e : byOffset) {
        if (e->end > dataBytes)
            throw DataError(name + ": tensor " + quoted(e->name) + ": data_offsets [" + std::to_string(e->begin) +
                            ", " + std::to_string(e->end) + "] reach past the end of the data section (" +
                            std::to_string(dataBytes) + " bytes; the file is truncated or the offsets are wrong)");
        if (e->begin < pos)
            throw DataError(name + ": tensor " + quoted(e->name) + ": data_offsets [" + std::to_string(e->begin) +
                            ", " + std::to_string(e->end) + "] overlap tensor " + quoted(prev->name) + " [" +
                            std::to_string(prev->begin) + ", " + std::to_string(prev->end) + "]");
        if (e->begin > pos)
            throw DataError(name + ": " + std::to_string(e->begin - pos) + " unindexed bytes before tensor " +
                            quoted(e->name) + " at data offset " + std::to_string(pos));
        pos = e->end;
        prev = e;
    }
    if (pos != dataBytes)
        throw DataError(name + ": " + std::to_string(dataBytes - pos) + " trailing bytes after the last tensor");

    const std::uint8_t* dataStart = data + 8 + headerLen;
    for (const auto& e : entries) {
        Tensor t = Tensor::host(e.shape, e.dtype);
        if (t.bytes()) std::memcpy(t.data(), dataStart + e.begin, t.bytes());
        out.tensors.emplace_back(e.name, std::move(t));
    }
    return out;
}

SafetensorsFile readSafetensors(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw DataError(path + ": cannot open: " + std::strerror(errno));
    struct FdCloser {
        int fd;
        ~FdCloser() { ::close(fd); }
    } closer{fd};
    struct stat st{};
    if (::fstat(fd, &st) != 0) throw DataError(path + ": cannot stat: " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) throw DataError(path + ": not a regular file");
    // The whole file is read: its size bounds every allocation the parser makes.
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(st.st_size));
    std::size_t got = 0;
    while (got < bytes.size()) {
        const ssize_t k = ::read(fd, bytes.data() + got, bytes.size() - got);
        if (k < 0) {
            if (errno == EINTR) continue;
            throw DataError(path + ": read error: " + std::strerror(errno));
        }
        if (k == 0) break;
        got += static_cast<std::size_t>(k);
    }
    bytes.resize(got);
    return parseSafetensors(bytes.data(), bytes.size(), path);
}

void writeSafetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
    OrderedJson header = OrderedJson::object();
    if (!metadata.empty()) {
        OrderedJson meta = OrderedJson::object();
        for (const auto& [k, v] : metadata) meta[k] = v;
        header[kMetadataKey] = std::move(meta);
    }
    std::set<std::string> seen;
    std::uint64_t offset = 0;
    for (const auto& [tname, t] : tensors) {
        if (tname.empty() || tname == kMetadataKey)
            throw DataError(path + ": invalid tensor name " + quoted(tname));
        if (!seen.insert(tname).second) throw DataError(path + ": tensor " + quoted(tname) + " given twice");
        if (!t.defined()) throw DataError(path + ": tensor " + quoted(tname) + " has no data");
        if (!t.isHost()) throw DataError(path + ": tensor " + quoted(tname) + " is on " + t.device().toString() +
                                         "; download it to the host before writing");
        if (!*traits(t.dtype()).safetensorsName)
            throw DataError(path + ": tensor " + quoted(tname) + " is " + dtypeName(t.dtype()) +
                            ", which safetensors has no dtype for");
        OrderedJson info;
        info["dtype"] = traits(t.dtype()).safetensorsName;
        info["shape"] = t.shape();
        info["data_offsets"] = {offset, offset + t.bytes()};
        header[tname] = std::move(info);
        offset += t.bytes();
    }
    std::string text;
    try {
        text = header.dump();
    } catch (const nlohmann::json::exception& e) {
        throw DataError(path + ": cannot encode the header (names and metadata must be UTF-8): " + e.what());
    }
    // Pad with spaces so the data section starts 8-byte aligned (the format's own convention).
    text.append((8 - (8 + text.size()) % 8) % 8, ' ');
    std::uint8_t lenBytes[8];
    for (int i = 0; i < 8; ++i) lenBytes[i] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(text.size()) >> (8 * i));

    const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw DataError(path + ": cannot create " + tmp + ": " + std::strerror(errno));
    auto fail = [&](const char* what) {
        const int err = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        throw DataError(path + ": " + what + ": " + std::strerror(err));
    };
    if (!writeAll(fd, lenBytes, 8) || !writeAll(fd, text.data(), text.size())) fail("cannot write");
    for (const auto& [tname, t] : tensors)
        if (t.bytes() && !writeAll(fd, t.data(), t.bytes())) fail("cannot write");
    if (::fsync(fd) != 0) fail("cannot sync");
    if (::close(fd) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        throw DataError(path + ": cannot close: " + std::strerror(err));
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        throw DataError(path + ": cannot rename " + tmp + " into place: " + std::strerror(err));
    }
    // Make the rename itself durable.
    std::string dir = std::filesystem::path(path).parent_path().string();
    if (dir.empty()) dir = ".";
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
}

} // namespace lathe

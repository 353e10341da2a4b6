// libFuzzer target: parseIdx on arbitrary bytes (plain and gzipped). Any DataError is a correct
// answer; a crash, a sanitizer report, or an array whose size disagrees with its header is a bug.
#include "engine/core/errors.h"
#include "engine/data/idx.h"

#include <cstddef>
#include <cstdint>

namespace {

std::uint64_t elementBytes(std::uint8_t type) {
    switch (type) {
    case 0x08: case 0x09: return 1;
    case 0x0B: return 2;
    case 0x0C: case 0x0D: return 4;
    case 0x0E: return 8;
    default: return 0;
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // A small limit keeps each run fast; the checks are the same at any limit.
    constexpr std::uint64_t kMaxBytes = 1u << 22;
    try {
        const lathe::IdxArray a = lathe::parseIdx(data, size, "fuzz.idx", kMaxBytes);
        std::uint64_t n = elementBytes(a.typeCode);
        for (auto d : a.dims) n *= static_cast<std::uint64_t>(d);
        if (n == 0 && elementBytes(a.typeCode) == 0) __builtin_trap(); // unknown type accepted
        if (a.dims.empty() || a.bytes.size() != n || n > kMaxBytes) __builtin_trap();
    } catch (const lathe::DataError&) {
    }
    return 0;
}

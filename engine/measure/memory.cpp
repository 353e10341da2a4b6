// Reads VmHWM / VmRSS from /proc/self/status; resets the high-water mark through clear_refs.
#include "engine/measure/memory.h"

#include <cstdio>
#include <cstring>

namespace lathe {
namespace {

std::uint64_t statusKb(const char* key) {
    std::FILE* f = std::fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    std::uint64_t kb = 0;
    const std::size_t keyLen = std::strlen(key);
    while (std::fgets(line, sizeof(line), f)) {
        if (std::strncmp(line, key, keyLen) == 0 && line[keyLen] == ':') {
            unsigned long long v = 0;
            if (std::sscanf(line + keyLen + 1, "%llu", &v) == 1) kb = v;
            break;
        }
    }
    std::fclose(f);
    return kb;
}

} // namespace

std::uint64_t peakHostRssBytes() { return statusKb("VmHWM") * 1024; }
std::uint64_t currentHostRssBytes() { return statusKb("VmRSS") * 1024; }

bool resetPeakHostRss() {
    std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
    if (!f) return false;
    const bool ok = std::fputs("5", f) >= 0;
    return std::fclose(f) == 0 && ok;
}

} // namespace lathe

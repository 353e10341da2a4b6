// Host memory figures of this process from /proc/self/status (Linux).
#pragma once

#include <cstdint>

namespace lathe {

// VmHWM: peak resident set size in bytes (0 where /proc is not available).
std::uint64_t peakHostRssBytes();
// VmRSS: current resident set size in bytes.
std::uint64_t currentHostRssBytes();
// Resets VmHWM to the current RSS (writes 5 to /proc/self/clear_refs); false where not permitted,
// in which case the peak stays process-wide.
bool resetPeakHostRss();

} // namespace lathe

// The one monotonic clock of the engine: milliseconds on std::chrono::steady_clock, for timing runs,
// samples and latencies. Only differences between two readings mean anything.
#pragma once

#include <chrono>

namespace lathe {

inline double steadyClockMs() {
    using namespace std::chrono;
    return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

} // namespace lathe

// A device's measured peaks, the roofs of the roofline (roofline.h): the f32 GEMM rate of its backend at
// sizes large enough to be compute-bound, the bandwidth of a copy large enough to miss every cache (device
// memory), and that of a copy small enough to stay in cache (a model whose weights fit there runs above the
// memory roof, under this one).
// Measured once per device (`lathe-cli bench peaks`) and stored (RunStore::setDevicePeaks).
#pragma once

#include "engine/backends/backend.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <vector>

namespace lathe {

struct PeakOptions {
    std::vector<std::int64_t> gemmSizes; // square sizes; empty: 1024, 2048 on a CPU, 4096, 8192 on a GPU
    std::uint64_t copyBytes = 0;         // 0: 256 MiB on a CPU, 1 GiB on a GPU
    std::uint64_t cacheCopyBytes = 0;    // 0: 256 KiB on a CPU (within one core's L2), 8 MiB on a GPU (its L2)
    int warmup = 2;
    int repeats = 7;
};

struct PeakResult {
    double gemmGflopsPerS = 0; // the best size's median
    std::int64_t gemmSize = 0; // ... and that size
    double copyGbPerS = 0;     // (read + write) bytes / median time
    std::uint64_t copyBytes = 0;
    double cacheCopyGbPerS = 0; // the same for a copy small enough to stay in cache: a second, higher roof
    std::uint64_t cacheCopyBytes = 0;
    nlohmann::json detail;     // every size's median, the copy's, warm-up and repeats
};

// Throws what the backend throws (out of memory names the allocation).
PeakResult measureDevicePeaks(Backend& be, const PeakOptions& options = {});

} // namespace lathe

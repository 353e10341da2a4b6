#include "engine/measure/device_peaks.h"

#include "engine/core/errors.h"

#include <algorithm>
#include <cmath>
#include <functional>

namespace lathe {

namespace {

// Median of `repeats` timed calls of work() on the backend's own timer, after `warmup` untimed ones.
double medianMs(Backend& be, int warmup, int repeats, const std::function<void()>& work) {
    for (int i = 0; i < warmup; ++i) work();
    be.synchronize();
    auto timer = be.createTimer();
    std::vector<double> ms;
    for (int i = 0; i < repeats; ++i) {
        timer->start();
        work();
        timer->stop();
        ms.push_back(timer->elapsedMs());
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
}

} // namespace

PeakResult measureDevicePeaks(Backend& be, const PeakOptions& options) {
    if (options.repeats < 1 || options.warmup < 0) throw ConfigError("device peaks: repeats must be >= 1, warm-up >= 0");
    const bool gpu = be.device().kind != DeviceKind::Cpu;
    std::vector<std::int64_t> sizes = options.gemmSizes;
    if (sizes.empty()) sizes = gpu ? std::vector<std::int64_t>{4096, 8192} : std::vector<std::int64_t>{1024, 2048};
    const std::uint64_t copyBytes = options.copyBytes ? options.copyBytes : (gpu ? (1ull << 30) : (256ull << 20));

    PeakResult r;
    r.detail = {{"warmup", options.warmup}, {"repeats", options.repeats}, {"gemm", nlohmann::json::array()}};
    for (std::int64_t n : sizes) {
        if (n < 1) throw ConfigError("device peaks: GEMM sizes must be >= 1");
        Tensor a = be.empty({n, n}, DType::F32), b = be.empty({n, n}, DType::F32), c = be.empty({n, n}, DType::F32);
        be.fill(a, 0.5f);
        be.fill(b, 0.25f);
        const double ms = medianMs(be, options.warmup, options.repeats,
                                   [&] { be.gemm(a, Trans::No, b, Trans::Yes, c, 1.0f, 0.0f); });
        const double nn = static_cast<double>(n);
        const double gflops = 2.0 * nn * nn * nn / (ms * 1e-3) * 1e-9;
        r.detail["gemm"].push_back({{"n", n}, {"median_ms", ms}, {"gflops", gflops}});
        if (gflops > r.gemmGflopsPerS) {
            r.gemmGflopsPerS = gflops;
            r.gemmSize = n;
        }
    }

    const auto floats = static_cast<std::int64_t>(copyBytes / 4);
    Tensor src = be.empty({floats}, DType::F32), dst = be.empty({floats}, DType::F32);
    be.fill(src, 1.0f);
    be.fill(dst, 0.0f); // touched before timing: no page faults inside the timed copies
    const double copyMs = medianMs(be, options.warmup, options.repeats, [&] { be.copy(src, dst); });
    r.copyBytes = static_cast<std::uint64_t>(floats) * 4;
    r.copyGbPerS = 2.0 * static_cast<double>(r.copyBytes) / (copyMs * 1e-3) * 1e-9;
    r.detail["copy"] = {{"bytes", r.copyBytes}, {"median_ms", copyMs}, {"gbps", r.copyGbPerS},
                        {"counted", "read + write"}};

    // The cache roof: many copies of a small buffer per timed region, so the timer's own cost disappears.
    const std::uint64_t cacheBytes = options.cacheCopyBytes ? options.cacheCopyBytes : (gpu ? (8ull << 20) : (256ull << 10));
    const auto cacheFloats = static_cast<std::int64_t>(std::max<std::uint64_t>(cacheBytes / 4, 1));
    Tensor cs = be.empty({cacheFloats}, DType::F32), cd = be.empty({cacheFloats}, DType::F32);
    be.fill(cs, 1.0f);
    be.fill(cd, 0.0f);
    constexpr int kCopiesPerTiming = 64;
    const double cacheMs = medianMs(be, options.warmup, options.repeats, [&] {
        for (int i = 0; i < kCopiesPerTiming; ++i) be.copy(cs, cd);
    });
    r.cacheCopyBytes = static_cast<std::uint64_t>(cacheFloats) * 4;
    r.cacheCopyGbPerS = 2.0 * static_cast<double>(r.cacheCopyBytes) * kCopiesPerTiming / (cacheMs * 1e-3) * 1e-9;
    r.detail["cache_copy"] = {{"bytes", r.cacheCopyBytes}, {"copies_per_timing", kCopiesPerTiming},
                              {"median_ms", cacheMs}, {"gbps", r.cacheCopyGbPerS}, {"counted", "read + write"}};
    return r;
}

} // namespace lathe

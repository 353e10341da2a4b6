// lathe-cli bench peaks: a device's roofs (f32 GEMM GFLOP/s, copy GB/s), measured once and stored in the
// run store, where the compare view and reports place every run of that device on its roofline.
#include "app/cli/bench_support.h"

#include "engine/core/errors.h"
#include "engine/measure/device_peaks.h"
#include "engine/store/run_store.h"

#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>

namespace lathe::cli {
namespace {

std::vector<std::int64_t> parseSquareSizes(const std::string& text) {
    std::vector<std::int64_t> out;
    std::stringstream in(text);
    std::string item;
    while (std::getline(in, item, ',')) {
        std::size_t used = 0;
        long long n = 0;
        try {
            n = std::stoll(item, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used != item.size() || n < 16 || n > 32768)
            throw ConfigError("bench peaks: --sizes: expected square sizes in [16, 32768] separated by commas, got \"" +
                              item + "\"");
        out.push_back(n);
    }
    if (out.empty()) throw ConfigError("bench peaks: --sizes is empty");
    return out;
}

int runPeaks(const std::vector<std::string>& argv) {
    Args args(argv, {"--device", "--threads", "--db", "--sizes", "--copy-mib", "--warmup", "--repeats"},
              {"--json", "--no-store"});
    // Its own defaults: a few long repeats, not the latency benches' 200 short ones.
    std::vector<std::string> common;
    for (const char* k : {"--device", "--threads"})
        if (auto v = args.value(k)) common.insert(common.end(), {k, *v});
    if (args.flag("--json")) common.push_back("--json");
    BenchOptions o = parseCommon(Args(common, {"--device", "--threads"}, {"--json"}));
    PeakOptions po;
    po.warmup = static_cast<int>(args.integer("--warmup", 2));
    po.repeats = static_cast<int>(args.integer("--repeats", 7));
    if (po.warmup < 0 || po.repeats < 1) throw ConfigError("bench peaks: --warmup must be >= 0, --repeats >= 1");
    o.warmup = po.warmup; // what the --json document reports
    o.repeats = po.repeats;
    o.rotate = 1;
    if (auto s = args.value("--sizes")) po.gemmSizes = parseSquareSizes(*s);
    const long long copyMib = args.integer("--copy-mib", 0);
    if (copyMib < 0 || copyMib > 65536) throw ConfigError("bench peaks: --copy-mib must be in [1, 65536]");
    po.copyBytes = static_cast<std::uint64_t>(copyMib) << 20;
    const bool store = !args.flag("--no-store");
    const std::string db = args.value("--db", RunStore::defaultPath());

    nlohmann::json results = nlohmann::json::array();
    std::vector<DevicePeak> peaks;
    const double now =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    if (!o.json) {
        std::printf("peaks  f32 GEMM (C = A B^T, square) and a device-to-device copy; median of %d after %d warm-up\n",
                    po.repeats, po.warmup);
        for (const auto& u : o.unavailable) std::printf("  (skipped %s)\n", u.c_str());
        std::printf("%-8s %-40s %14s %8s %11s %14s\n", "backend", "device", "GEMM GFLOP/s", "at n", "copy GB/s",
                    "in-cache GB/s");
    }
    for (auto& bePtr : o.backends) {
        Backend& be = *bePtr;
        const PeakResult r = measureDevicePeaks(be, po);
        const DeviceInfo info = be.info();
        if (!o.json)
            std::printf("%-8s %-40s %14.1f %8lld %11.1f %14.1f\n", be.name().c_str(), info.name.c_str(),
                        r.gemmGflopsPerS, static_cast<long long>(r.gemmSize), r.copyGbPerS, r.cacheCopyGbPerS);
        nlohmann::json j = backendJson(be);
        j.update({{"gemm_f32_gflops", r.gemmGflopsPerS}, {"gemm_size", r.gemmSize}, {"copy_gbps", r.copyGbPerS},
                  {"cache_copy_gbps", r.cacheCopyGbPerS}, {"detail", r.detail}});
        results.push_back(j);
        const std::string detail = r.detail.dump();
        peaks.push_back({info.name, info.backend, "gemm_f32_gflops", r.gemmGflopsPerS, now, detail});
        peaks.push_back({info.name, info.backend, "copy_gbps", r.copyGbPerS, now, detail});
        peaks.push_back({info.name, info.backend, "cache_copy_gbps", r.cacheCopyGbPerS, now, detail});
    }
    if (store && !peaks.empty()) {
        RunStore s(db);
        s.setDevicePeaks(peaks);
        if (!o.json) std::printf("stored in %s (runs of these devices are drawn against these roofs)\n", db.c_str());
    }
    if (o.json) std::cout << benchDocument("peaks", o, std::move(results)).dump(2) << "\n";
    return kExitOk;
}

const BenchRegistrar kPeaks({"peaks",
                             "bench peaks [--device cpu|cuda|cuda:N|auto|all] [--threads N] [--sizes N,N] "
                             "[--copy-mib N] [--warmup N] [--repeats N] [--db FILE] [--no-store] [--json]",
                             "the device's roofs (f32 GEMM GFLOP/s, copy GB/s), stored for the roofline view",
                             runPeaks});

} // namespace
} // namespace lathe::cli

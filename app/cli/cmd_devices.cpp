// lathe-cli devices: the backends on this machine, their memory, and why one is unavailable.
#include "app/cli/cli.h"

#include "engine/backends/registry.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

namespace lathe::cli {
namespace {

int runDevices(const std::vector<std::string>& argv) {
    Args args(argv, {}, {"--json"});
    const auto entries = probeBackends();
    if (args.flag("--json")) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& e : entries) {
            const auto& d = e.info;
            out.push_back({{"backend", d.backend}, {"device", d.device.toString()}, {"name", d.name},
                           {"available", d.available}, {"reason", d.reason},
                           {"memory_total_bytes", d.memoryTotalBytes}, {"memory_free_bytes", d.memoryFreeBytes},
                           {"compute_capability", std::to_string(d.computeCapabilityMajor) + "." +
                                                      std::to_string(d.computeCapabilityMinor)},
                           {"threads", d.threads}, {"runtime_version", d.runtimeVersion},
                           {"driver_version", d.driverVersion}, {"library_version", d.libraryVersion}});
        }
        std::cout << out.dump(2) << "\n";
        return kExitOk;
    }
    for (const auto& e : entries) {
        const auto& d = e.info;
        if (!d.available) {
            std::printf("%-8s unavailable: %s\n", d.backend.c_str(), d.reason.c_str());
            continue;
        }
        std::printf("%-8s %s", d.device.toString().c_str(), d.name.c_str());
        if (d.memoryTotalBytes)
            std::printf("  memory %.1f GiB (%.1f GiB free)", d.memoryTotalBytes / 1073741824.0,
                        d.memoryFreeBytes / 1073741824.0);
        if (d.computeCapabilityMajor) std::printf("  sm_%d%d", d.computeCapabilityMajor, d.computeCapabilityMinor);
        if (d.threads) std::printf("  %d threads", d.threads);
        if (!d.runtimeVersion.empty()) std::printf("  %s", d.runtimeVersion.c_str());
        std::printf("\n");
    }
    return kExitOk;
}

const Registrar kRegistrar({"devices", "devices [--json]", "list the compute backends and why any is unavailable",
                            runDevices});

} // namespace
} // namespace lathe::cli

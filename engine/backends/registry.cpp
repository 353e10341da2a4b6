// Backend discovery. The CUDA backend is a module loaded on first probe (engine/backends/cuda_module.h)
// and registered only when it loads and the runtime finds a device; otherwise its entry says why and
// "auto" falls back to the CPU.
#include "engine/backends/registry.h"

#include "engine/backends/cpu/cpu_backend.h"
#include "engine/backends/cuda_module.h"
#include "engine/core/errors.h"

#include <cstdlib>
#include <iterator>
#include <map>
#include <mutex>

namespace lathe {
namespace {

std::mutex& registryMutex() {
    static std::mutex m;
    return m;
}

std::map<std::string, std::shared_ptr<Backend>>& instances() {
    static std::map<std::string, std::shared_ptr<Backend>> m;
    return m;
}

std::vector<DeviceInfo> cudaDevices(std::string& reason) {
    const CudaModuleApi* module = cudaModule(reason);
    return module ? module->probeDevices(reason) : std::vector<DeviceInfo>{};
}

// At exit, before the CUDA runtime's own exit handlers: the registry's CUDA backends (their streams, cuBLAS
// handles, pinned buffers) must go while the runtime still runs. Registered once a CUDA backend exists, so after
// the runtime's handlers, and exit() runs handlers in reverse order; the function-local statics above were
// constructed earlier still and outlive it.
void releaseCudaBackends() {
    std::lock_guard lock(registryMutex());
    auto& all = instances();
    for (auto it = all.begin(); it != all.end();) it = it->first.rfind("cuda", 0) == 0 ? all.erase(it) : std::next(it);
}

} // namespace

std::vector<BackendEntry> probeBackends() {
    std::vector<BackendEntry> out;
    out.push_back({cpuBackend()->info()});
    std::string reason;
    auto devices = cudaDevices(reason);
    if (devices.empty()) {
        DeviceInfo info;
        info.backend = "cuda";
        info.name = "cuda";
        info.device = Device{DeviceKind::Cuda, 0};
        info.available = false;
        info.reason = reason.empty() ? "no CUDA device found" : reason;
        out.push_back({info});
    } else {
        for (auto& d : devices) out.push_back({d});
    }
    return out;
}

namespace {
int& cpuThreadsSetting() { // setCpuThreads's; guarded by registryMutex()
    static int threads = 0;
    return threads;
}
} // namespace

std::shared_ptr<Backend> cpuBackend() {
    std::lock_guard lock(registryMutex());
    auto& slot = instances()["cpu"];
    if (!slot) slot = makeCpuBackend(cpuThreadsSetting());
    return slot;
}

void setCpuThreads(int threads) {
    if (threads < 0) throw ConfigError("CPU threads: expected an integer >= 0, got " + std::to_string(threads));
    std::lock_guard lock(registryMutex());
    const int wanted = threads > 0 ? threads : defaultCpuThreads().threads;
    cpuThreadsSetting() = threads;
    auto& slot = instances()["cpu"];
    if (slot && slot->info().threads != wanted) slot.reset();
}

std::shared_ptr<Backend> backendFor(const std::string& requested) {
    std::string name = requested.empty() ? "auto" : requested;
    if (name == "cpu") return cpuBackend();
    if (name != "auto" && name != "cuda" && name.rfind("cuda:", 0) != 0)
        throw ConfigError("unknown device \"" + requested + "\" (known: auto, cpu, cuda, cuda:N)");

    std::string reason;
    auto devices = cudaDevices(reason);
    if (devices.empty()) {
        if (name == "auto") return cpuBackend();
        throw BackendError("device \"" + name + "\" is not available: " +
                           (reason.empty() ? std::string("no CUDA device found") : reason));
    }
    int index = 0;
    if (name.rfind("cuda:", 0) == 0) {
        try {
            index = std::stoi(name.substr(5));
        } catch (const std::exception&) {
            throw ConfigError("bad device \"" + requested + "\": expected cuda:N");
        }
        if (index < 0 || index >= static_cast<int>(devices.size()))
            throw BackendError("device \"" + name + "\" does not exist: " + std::to_string(devices.size()) +
                               " CUDA device(s) found");
    }
    std::lock_guard lock(registryMutex());
    auto& slot = instances()["cuda:" + std::to_string(index)];
    if (!slot) {
        slot = cudaModule(reason)->makeBackend(index); // devices found: the module is loaded
        static const bool releaseAtExit = std::atexit(releaseCudaBackends) == 0;
        (void)releaseAtExit;
    }
    return slot;
}

} // namespace lathe

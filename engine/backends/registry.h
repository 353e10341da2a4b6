// The backend registry: which backends exist on this machine, why the missing ones are missing,
// and which one "auto" picks (CUDA when a device is present, else CPU).
#pragma once

#include "engine/backends/backend.h"

#include <memory>
#include <string>
#include <vector>

namespace lathe {

struct BackendEntry {
    DeviceInfo info;   // available == false carries the reason
};

// Every backend this build knows, probed now: cpu always; cuda:N per device, or one
// unavailable "cuda" entry with the runtime's reason (not compiled in, no driver, no device).
std::vector<BackendEntry> probeBackends();

// "cpu", "cuda", "cuda:N" or "auto". Throws ConfigError for unknown names and BackendError
// (with the reason) for a backend that is not available here. Backends are created once per
// process and shared.
std::shared_ptr<Backend> backendFor(const std::string& name);

// The CPU reference backend (always available).
std::shared_ptr<Backend> cpuBackend();
// The threads of the shared CPU backend from now on (0: defaultCpuThreads()), e.g. lathe-cli run
// --threads. A shared one made with another count is replaced; whoever holds the old one keeps it.
void setCpuThreads(int threads);

} // namespace lathe

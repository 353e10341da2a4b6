// The CUDA backend as a module loaded at run time (liblathe_cuda.so): its versioned C entry point and
// the loader the registry asks. Without the module or the CUDA libraries it links, the registry says why.
#pragma once

#include "engine/backends/backend.h"

#include <memory>
#include <string>
#include <vector>

namespace lathe {

// Raised whenever CudaModuleApi or a type crossing it changes. The module links the same shared engine,
// so C++ types (DeviceInfo, Backend, BackendError) cross as themselves; engine and module must also come
// from the same Lathe version, which the loader checks too.
inline constexpr int kCudaModuleAbiVersion = 1;

struct CudaModuleApi {
    int abiVersion = kCudaModuleAbiVersion;
    const char* latheVersion = LATHE_VERSION;
    // One DeviceInfo per device; none -> {} and reason says why (no driver, no device).
    std::vector<DeviceInfo> (*probeDevices)(std::string& reason) = nullptr;
    // A backend on device `index`; throws BackendError.
    std::shared_ptr<Backend> (*makeBackend)(int index) = nullptr;
};

// The module's file name, and the entry point it exports:
//   extern "C" const lathe::CudaModuleApi* lathe_cuda_module(int abiVersion);
// which returns nullptr when it was built for another ABI version.
inline constexpr const char* kCudaModuleFile = "liblathe_cuda.so";
inline constexpr const char* kCudaModuleEntry = "lathe_cuda_module";

// Loads the module once per process and returns its API, or nullptr with the reason (module not
// found, dlopen's error such as a missing libcudart.so.13, a version mismatch). Search order: the
// folders in LATHE_BACKEND_PATH (colon-separated; when set, only those), else the folder that holds
// liblathe_engine.so (build tree: build/<preset>/lib; installed: <prefix>/lib/lathe). Never unloaded.
const CudaModuleApi* cudaModule(std::string& reason);

} // namespace lathe

// Finding and dlopen()ing the CUDA module. A failure is not an error of the program: it becomes the
// reason the registry's "cuda" entry gives, and "auto" runs on the CPU.
#include "engine/backends/cuda_module.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <sstream>

namespace lathe {
namespace {

namespace fs = std::filesystem;

// The folder of the shared library this function is compiled into, liblathe_engine.so.
std::string engineLibraryDir() {
    Dl_info info{};
    if (dladdr(reinterpret_cast<const void*>(&engineLibraryDir), &info) == 0 || !info.dli_fname) return {};
    std::error_code ec;
    const fs::path lib = fs::canonical(info.dli_fname, ec);
    return ec ? fs::path(info.dli_fname).parent_path().string() : lib.parent_path().string();
}

std::vector<std::string> searchDirs(std::string& described) {
    std::vector<std::string> dirs;
    if (const char* env = std::getenv("LATHE_BACKEND_PATH"); env && *env) {
        std::stringstream in(env);
        for (std::string dir; std::getline(in, dir, ':');)
            if (!dir.empty()) dirs.push_back(dir);
        described = "LATHE_BACKEND_PATH=" + std::string(env);
        return dirs;
    }
    const std::string dir = engineLibraryDir();
    if (!dir.empty()) dirs.push_back(dir);
    described = dir.empty() ? std::string("the engine library's folder (unknown)") : dir;
    return dirs;
}

struct Loaded {
    const CudaModuleApi* api = nullptr;
    std::string reason;
};

Loaded load() {
    std::string described;
    std::string path;
    for (const auto& dir : searchDirs(described)) {
        const fs::path candidate = fs::path(dir) / kCudaModuleFile;
        std::error_code ec;
        if (fs::exists(candidate, ec)) {
            path = candidate.string();
            break;
        }
    }
    if (path.empty()) {
#if defined(LATHE_HAVE_CUDA)
        return {nullptr, std::string("no CUDA module: ") + kCudaModuleFile + " is not in " + described +
                             " (install the lathe-cuda package)"};
#else
        return {nullptr, std::string("this build has no CUDA backend (configured with LATHE_CUDA=OFF or without "
                                     "nvcc): no ") + kCudaModuleFile + " in " + described};
#endif
    }
    // RTLD_LOCAL: the module's CUDA symbols stay its own; it finds the engine's already loaded.
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char* err = dlerror();
        return {nullptr, "CUDA module " + path + " could not be loaded: " + (err ? err : "unknown dlopen error")};
    }
    using Entry = const CudaModuleApi* (*)(int);
    auto entry = reinterpret_cast<Entry>(dlsym(handle, kCudaModuleEntry));
    if (!entry)
        return {nullptr, "CUDA module " + path + " has no entry point " + kCudaModuleEntry};
    const CudaModuleApi* api = entry(kCudaModuleAbiVersion);
    if (!api || api->abiVersion != kCudaModuleAbiVersion || std::string(api->latheVersion) != LATHE_VERSION)
        return {nullptr, "CUDA module " + path + " was built for another Lathe (engine " + LATHE_VERSION +
                             ", module ABI " + std::to_string(kCudaModuleAbiVersion) + " not offered)"};
    // Never dlclose'd: backends created by the module keep their code (vtables) in it.
    return {api, {}};
}

} // namespace

const CudaModuleApi* cudaModule(std::string& reason) {
    static const Loaded loaded = load();
    if (!loaded.api) reason = loaded.reason;
    return loaded.api;
}

} // namespace lathe

// The entry point of liblathe_cuda.so: hands the engine's registry the probe and factory of the CUDA
// backend through the versioned table of engine/backends/cuda_module.h.
#include "engine/backends/cuda/cuda_backend.h"
#include "engine/backends/cuda_module.h"

extern "C" __attribute__((visibility("default"))) const lathe::CudaModuleApi* lathe_cuda_module(int abiVersion) {
    static const lathe::CudaModuleApi api = [] {
        lathe::CudaModuleApi a;
        a.probeDevices = &lathe::probeCudaDevices;
        a.makeBackend = &lathe::makeCudaBackend;
        return a;
    }();
    return abiVersion == lathe::kCudaModuleAbiVersion ? &api : nullptr;
}

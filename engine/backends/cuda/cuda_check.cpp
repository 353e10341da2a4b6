// Turning CUDA runtime and cuBLAS status codes into BackendError messages that name the failed call,
// where it was made, and (for out-of-memory) what the device still has free.
#include "engine/backends/cuda/cuda_check.h"

#include "engine/core/errors.h"

#include <cstdio>
#include <cstring>
#include <string>

namespace lathe::cuda {

const char* shortPath(const char* file) {
    const char* p = std::strstr(file, "engine/backends/");
    return p ? p : file;
}

std::string mib(std::size_t bytes) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
    return buf;
}

void throwCudaError(cudaError_t err, const char* call, const char* file, int line) {
    std::string msg = std::string("CUDA error: ") + call + " failed at " + shortPath(file) + ":" +
                      std::to_string(line) + ": " + cudaGetErrorString(err) + " (" + cudaGetErrorName(err) + ", " +
                      std::to_string(static_cast<int>(err)) + ")";
    if (err == cudaErrorMemoryAllocation) {
        std::size_t freeBytes = 0, totalBytes = 0;
        if (cudaMemGetInfo(&freeBytes, &totalBytes) == cudaSuccess)
            msg += "; device has " + mib(freeBytes) + " free of " + mib(totalBytes);
        (void)cudaGetLastError(); // out-of-memory is not sticky: clear it so later calls work
    }
    throw BackendError(msg);
}

void throwCublasError(cublasStatus_t status, const char* call, const char* file, int line) {
    throw BackendError(std::string("cuBLAS error: ") + call + " failed at " + shortPath(file) + ":" +
                       std::to_string(line) + ": " + cublasGetStatusString(status) + " (" +
                       cublasGetStatusName(status) + ", " + std::to_string(static_cast<int>(status)) + ")");
}

} // namespace lathe::cuda

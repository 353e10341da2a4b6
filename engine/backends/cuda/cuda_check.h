// Private to the CUDA backend (never included outside engine/backends/cuda): error checks that turn
// CUDA runtime and cuBLAS failures into BackendError carrying the failed call, the file and the line.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>

namespace lathe::cuda {

[[noreturn]] void throwCudaError(cudaError_t err, const char* call, const char* file, int line);
[[noreturn]] void throwCublasError(cublasStatus_t status, const char* call, const char* file, int line);
// "engine/backends/cuda/x.cu" from the absolute __FILE__ the build passes.
const char* shortPath(const char* file);
std::string mib(std::size_t bytes); // "12.5 MiB"

} // namespace lathe::cuda

#define LATHE_CUDA_CHECK(call)                                                                  \
    do {                                                                                        \
        const cudaError_t lathe_err_ = (call);                                                  \
        if (lathe_err_ != cudaSuccess) ::lathe::cuda::throwCudaError(lathe_err_, #call, __FILE__, __LINE__); \
    } while (0)

#define LATHE_CUBLAS_CHECK(call)                                                                \
    do {                                                                                        \
        const cublasStatus_t lathe_st_ = (call);                                                \
        if (lathe_st_ != CUBLAS_STATUS_SUCCESS)                                                 \
            ::lathe::cuda::throwCublasError(lathe_st_, #call, __FILE__, __LINE__);              \
    } while (0)

// After every kernel launch: a bad configuration or an earlier asynchronous fault shows up here.
#define LATHE_CUDA_CHECK_LAUNCH(kernelName)                                                     \
    do {                                                                                        \
        const cudaError_t lathe_err_ = cudaGetLastError();                                      \
        if (lathe_err_ != cudaSuccess)                                                          \
            ::lathe::cuda::throwCudaError(lathe_err_, "launch of " kernelName, __FILE__, __LINE__); \
    } while (0)

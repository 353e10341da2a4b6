// Finding CUDA devices through the runtime API only (libcudart; never libcuda, so binaries start on
// machines without an NVIDIA driver) and describing them for `lathe-cli devices` and the GUI.
#include "engine/backends/cuda/cuda_backend.h"
#include "engine/backends/cuda/cuda_backend_impl.h"

#include <string>

namespace lathe {
namespace cuda {
namespace {

std::string cudaVersionString(int v) { // 12040 -> "12.4"
    return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

std::string cublasVersionString() {
    int major = 0, minor = 0, patch = 0;
    if (cublasGetProperty(MAJOR_VERSION, &major) != CUBLAS_STATUS_SUCCESS ||
        cublasGetProperty(MINOR_VERSION, &minor) != CUBLAS_STATUS_SUCCESS ||
        cublasGetProperty(PATCH_LEVEL, &patch) != CUBLAS_STATUS_SUCCESS)
        return "unknown";
    return "cuBLAS " + std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch) +
           ", cuBLASLt " + std::to_string(cublasLtGetVersion());
}

} // namespace

DeviceInfo describeDevice(int index) {
    DeviceGuard guard(index);
    DeviceInfo info;
    info.backend = "cuda";
    info.device = Device{DeviceKind::Cuda, index};
    cudaDeviceProp prop{};
    LATHE_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
    info.name = prop.name;
    info.computeCapabilityMajor = prop.major;
    info.computeCapabilityMinor = prop.minor;
    std::size_t freeBytes = 0, totalBytes = 0;
    LATHE_CUDA_CHECK(cudaMemGetInfo(&freeBytes, &totalBytes));
    info.memoryFreeBytes = freeBytes;
    info.memoryTotalBytes = totalBytes;
    int runtime = 0, driver = 0;
    if (cudaRuntimeGetVersion(&runtime) == cudaSuccess) info.runtimeVersion = "CUDA runtime " + cudaVersionString(runtime);
    if (cudaDriverGetVersion(&driver) == cudaSuccess) info.driverVersion = "CUDA driver API " + cudaVersionString(driver);
    info.libraryVersion = cublasVersionString();
    info.available = true;
    return info;
}

} // namespace cuda

std::vector<DeviceInfo> probeCudaDevices(std::string& reason) {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        reason = std::string("cudaGetDeviceCount failed: ") + cudaGetErrorString(err) + " (" +
                 std::to_string(static_cast<int>(err)) + ")";
        if (err == cudaErrorInsufficientDriver)
            reason = "no NVIDIA driver (or one older than this CUDA runtime): " + reason;
        else if (err == cudaErrorNoDevice)
            reason = "no CUDA device: " + reason;
        return {};
    }
    if (count == 0) {
        reason = "no CUDA device: cudaGetDeviceCount found 0 devices";
        return {};
    }
    std::vector<DeviceInfo> out;
    for (int i = 0; i < count; ++i) {
        try {
            out.push_back(cuda::describeDevice(i));
        } catch (const std::exception& e) {
            // A device that cannot even be described (busy, exclusive mode, fallen off the bus) is skipped.
            if (!reason.empty()) reason += "; ";
            reason += "cuda:" + std::to_string(i) + ": " + e.what();
        }
    }
    return out;
}

} // namespace lathe

// Private to the CUDA backend: the CudaBackend class, its shared per-device context (stream, byte
// accounting) and the cuBLAS/cuBLASLt GEMM engine. Only engine/backends/cuda/*.cpp include this.
#pragma once

#include "engine/backends/backend.h"
#include "engine/backends/cuda/cuda_check.h"

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>

namespace lathe::cuda {

// Makes `index` the calling thread's current device for the guard's lifetime.
class DeviceGuard {
public:
    explicit DeviceGuard(int index);
    ~DeviceGuard();
    DeviceGuard(const DeviceGuard&) = delete;
    DeviceGuard& operator=(const DeviceGuard&) = delete;

private:
    int m_previous = -1;
    int m_index;
};

// State that device buffers and timers share with the backend: they may outlive it (a tensor held
// after the backend is gone), so the stream lives until the last of them is destroyed.
struct CudaContext {
    int index = 0;
    cudaStream_t stream = nullptr;
    bool streamOrderedAlloc = false; // cudaMallocAsync from the device pool (when supported)
    std::atomic<std::uint64_t> currentBytes{0};
    std::atomic<std::uint64_t> peakBytes{0};

    explicit CudaContext(int deviceIndex);
    ~CudaContext();
    CudaContext(const CudaContext&) = delete;
    CudaContext& operator=(const CudaContext&) = delete;

    void addBytes(std::uint64_t n);
    void subBytes(std::uint64_t n) { currentBytes.fetch_sub(n, std::memory_order_relaxed); }
};

// Row-major GEMMs on the backend's stream: cublasSgemm for F32 (IEEE FP32 math, no TF32 unless
// LATHE_CUDA_ALLOW_TF32=1), cuBLASLt with F32 accumulation for F16/BF16.
class GemmEngine {
public:
    GemmEngine(std::shared_ptr<CudaContext> ctx, int ccMajor);
    ~GemmEngine();
    GemmEngine(const GemmEngine&) = delete;
    GemmEngine& operator=(const GemmEngine&) = delete;

    // c (M, N) = alpha * op(a) @ op(b) + beta * c; lda/ldb/ldc are row-major row lengths.
    void run(DType dt, Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
             const void* a, std::int64_t lda, const void* b, std::int64_t ldb, float beta, void* c,
             std::int64_t ldc);
    bool tf32() const { return m_tf32; }

private:
    struct LtPlan;
    using PlanKey = std::tuple<int, int, int, std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                               std::int64_t, int>;
    void runLt(DType dt, Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
               const void* a, std::int64_t lda, const void* b, std::int64_t ldb, float beta, void* c,
               std::int64_t ldc);

    std::shared_ptr<CudaContext> m_ctx;
    cublasHandle_t m_cublas = nullptr;
    cublasLtHandle_t m_lt = nullptr;
    void* m_ltWorkspace = nullptr;
    std::size_t m_ltWorkspaceBytes;
    bool m_tf32 = false;
    std::map<PlanKey, std::unique_ptr<LtPlan>> m_plans;
};

// DeviceInfo for one device (name, memory, capability, versions); shared by the probe and info().
DeviceInfo describeDevice(int index);

} // namespace lathe::cuda

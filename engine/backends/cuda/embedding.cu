// Embedding lookup and its scatter-add gradient. Ids are checked on the device; the first bad one
// is written to an error flag that the backend reads back and turns into a BackendError.
#include "engine/backends/cuda/cuda_device.cuh"
#include "engine/backends/cuda/cuda_kernels.h"

namespace lathe::cuda {
namespace {

// ids (N), table (V, D) -> y (N, D); a bad id yields a zero row and a report.
__global__ void embedding_forward_kernel(const std::int32_t* ids, const float* table, float* y, std::int64_t n,
                                         std::int64_t vocab, std::int64_t dim, int* errorFlag) {
    const std::int64_t total = n * dim;
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
        const std::int64_t row = i / dim, d = i % dim;
        const std::int32_t id = ids[row];
        if (id < 0 || id >= vocab) {
            if (d == 0) reportBadIndex(errorFlag, row, id);
            y[i] = 0.0f;
        } else {
            y[i] = table[id * dim + d];
        }
    }
}

// dtable (V, D) += dy (N, D) at ids. Float atomics: repeated ids sum in no fixed order, so results
// may differ from the CPU in the last bits (covered by the f32 tolerance).
__global__ void embedding_backward_kernel(const std::int32_t* ids, const float* dy, float* dtable, std::int64_t n,
                                          std::int64_t vocab, std::int64_t dim, int* errorFlag) {
    const std::int64_t total = n * dim;
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
        const std::int64_t row = i / dim, d = i % dim;
        const std::int32_t id = ids[row];
        if (id < 0 || id >= vocab) {
            if (d == 0) reportBadIndex(errorFlag, row, id);
            continue;
        }
        atomicAdd(&dtable[id * dim + d], dy[i]);
    }
}

// Reports the first id outside [0, vocab), touching nothing else.
__global__ void embedding_check_kernel(const std::int32_t* ids, std::int64_t n, std::int64_t vocab, int* errorFlag) {
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x)
        if (ids[i] < 0 || ids[i] >= vocab) reportBadIndex(errorFlag, i, ids[i]);
}

} // namespace

void launchEmbeddingCheck(const std::int32_t* ids, std::int64_t n, std::int64_t vocab, int* errorFlag,
                          cudaStream_t stream) {
    if (n == 0) return;
    embedding_check_kernel<<<gridFor(n), kBlock, 0, stream>>>(ids, n, vocab, errorFlag); // (N)
    LATHE_CUDA_CHECK_LAUNCH("embedding_check_kernel");
}

void launchEmbeddingForward(const std::int32_t* ids, const float* table, float* y, std::int64_t n,
                            std::int64_t vocab, std::int64_t dim, int* errorFlag, cudaStream_t stream) {
    if (n * dim == 0) return;
    embedding_forward_kernel<<<gridFor(n * dim), kBlock, 0, stream>>>(ids, table, y, n, vocab, dim,
                                                                       errorFlag); // (N, D)
    LATHE_CUDA_CHECK_LAUNCH("embedding_forward_kernel");
}

void launchEmbeddingBackward(const std::int32_t* ids, const float* dy, float* dtable, std::int64_t n,
                             std::int64_t vocab, std::int64_t dim, int* errorFlag, cudaStream_t stream) {
    if (n * dim == 0) return;
    embedding_backward_kernel<<<gridFor(n * dim), kBlock, 0, stream>>>(ids, dy, dtable, n, vocab, dim,
                                                                        errorFlag); // (V, D)
    LATHE_CUDA_CHECK_LAUNCH("embedding_backward_kernel");
}

} // namespace lathe::cuda

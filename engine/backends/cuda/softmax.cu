// Row-wise softmax and the fused softmax cross-entropy (loss per row and its gradient in one pass).
// One block per row; max-subtracted exponentials in float whatever the storage dtype.
#include "engine/backends/cuda/cuda_device.cuh"
#include "engine/backends/cuda/cuda_kernels.h"

namespace lathe::cuda {
namespace {

// x, y (N, C); blockIdx.x = row
template <class T>
__global__ void softmax_kernel(const T* x, T* y, std::int64_t cols) {
    __shared__ float scratch[32];
    const T* row = x + blockIdx.x * cols;
    T* out = y + blockIdx.x * cols;
    float m = -INFINITY;
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, toF(row[c]));
    m = blockMax(m, scratch);
    float s = 0.0f;
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) s += expf(toF(row[c]) - m);
    s = blockSum(s, scratch);
    const float inv = 1.0f / s;
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) out[c] = fromF<T>(expf(toF(row[c]) - m) * inv);
}

// logits, dlogits (N, C); labels, losses (N); blockIdx.x = row
__global__ void softmax_cross_entropy_kernel(const float* logits, const std::int32_t* labels, float* losses,
                                             float* dlogits, std::int64_t cols, float gradScale, int* errorFlag) {
    __shared__ float scratch[32];
    const std::int64_t r = blockIdx.x;
    const float* row = logits + r * cols;
    float* drow = dlogits + r * cols;
    const std::int32_t label = labels[r];
    const bool bad = label < 0 || label >= cols;
    if (bad && threadIdx.x == 0) reportBadIndex(errorFlag, r, label);

    float m = -INFINITY;
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, row[c]);
    m = blockMax(m, scratch);
    float s = 0.0f;
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) s += expf(row[c] - m);
    s = blockSum(s, scratch);
    const float logSum = logf(s);
    const float inv = 1.0f / s;
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        const float p = expf(row[c] - m) * inv;
        drow[c] = (p - (c == label ? 1.0f : 0.0f)) * gradScale;
    }
    if (threadIdx.x == 0) losses[r] = bad ? NAN : logSum + m - row[label];
}

} // namespace

void launchSoftmax(const void* x, void* y, DType dt, std::int64_t rows, std::int64_t cols, cudaStream_t stream) {
    if (rows == 0 || cols == 0) return;
    dispatchFloat(dt, "softmax", [&](auto tag) {
        using T = decltype(tag);
        softmax_kernel<T><<<static_cast<unsigned>(rows), rowBlock(cols), 0, stream>>>(
            static_cast<const T*>(x), static_cast<T*>(y), cols); // (N, C)
        LATHE_CUDA_CHECK_LAUNCH("softmax_kernel");
    });
}

void launchSoftmaxCrossEntropy(const float* logits, const std::int32_t* labels, float* losses, float* dlogits,
                               std::int64_t rows, std::int64_t cols, float gradScale, int* errorFlag,
                               cudaStream_t stream) {
    if (rows == 0 || cols == 0) return;
    softmax_cross_entropy_kernel<<<static_cast<unsigned>(rows), rowBlock(cols), 0, stream>>>(
        logits, labels, losses, dlogits, cols, gradScale, errorFlag); // (N, C)
    LATHE_CUDA_CHECK_LAUNCH("softmax_cross_entropy_kernel");
}

} // namespace lathe::cuda

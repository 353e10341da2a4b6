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

// student, teacher, dstudent (N, C); labels, losses (N); parts (N, 2); blockIdx.x = row. The hard part and
// its gradient are softmax_cross_entropy_kernel's arithmetic; the soft part adds alpha * T * (q - p).
__global__ void distillation_loss_kernel(const float* student, const float* teacher, const std::int32_t* labels,
                                         float* losses, float* parts, float* dstudent, std::int64_t cols,
                                         float temperature, float alpha, float gradScale, int* errorFlag) {
    __shared__ float scratch[32];
    const std::int64_t r = blockIdx.x;
    const float* s = student + r * cols;
    const float* t = teacher + r * cols;
    float* d = dstudent + r * cols;
    const std::int32_t label = labels[r];
    const bool bad = label < 0 || label >= cols;
    if (bad && threadIdx.x == 0) reportBadIndex(errorFlag, r, label);
    const float invT = 1.0f / temperature;

    float ms = -INFINITY, mt = -INFINITY;
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        ms = fmaxf(ms, s[c]);
        mt = fmaxf(mt, t[c]);
    }
    ms = blockMax(ms, scratch);
    mt = blockMax(mt, scratch);
    float sum = 0.0f, sumQ = 0.0f, sumP = 0.0f;
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        sum += expf(s[c] - ms);
        sumQ += expf((s[c] - ms) * invT);
        sumP += expf((t[c] - mt) * invT);
    }
    sum = blockSum(sum, scratch);
    sumQ = blockSum(sumQ, scratch);
    sumP = blockSum(sumP, scratch);
    const float inv = 1.0f / sum, logQ = logf(sumQ), logP = logf(sumP);
    const float hardWeight = 1.0f - alpha, softScale = alpha * temperature * gradScale;
    float kl = 0.0f;
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        const float lp = (t[c] - mt) * invT - logP, lq = (s[c] - ms) * invT - logQ;
        const float p = expf(lp), q = expf(lq);
        if (p > 0.0f) kl += p * (lp - lq);
        const float hardGrad = (expf(s[c] - ms) * inv - (c == label ? 1.0f : 0.0f)) * gradScale;
        d[c] = hardWeight * hardGrad + softScale * (q - p);
    }
    kl = blockSum(kl, scratch);
    if (threadIdx.x == 0) {
        const float hard = bad ? NAN : logf(sum) + ms - s[label];
        const float soft = temperature * temperature * kl;
        parts[2 * r] = soft;
        parts[2 * r + 1] = hard;
        losses[r] = alpha * soft + hardWeight * hard;
    }
}

} // namespace

void launchDistillationLoss(const float* student, const float* teacher, const std::int32_t* labels, float* losses,
                            float* parts, float* dstudent, std::int64_t rows, std::int64_t cols, float temperature,
                            float alpha, float gradScale, int* errorFlag, cudaStream_t stream) {
    if (rows == 0 || cols == 0) return;
    distillation_loss_kernel<<<static_cast<unsigned>(rows), rowBlock(cols), 0, stream>>>(
        student, teacher, labels, losses, parts, dstudent, cols, temperature, alpha, gradScale, errorFlag); // (N, C)
    LATHE_CUDA_CHECK_LAUNCH("distillation_loss_kernel");
}

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

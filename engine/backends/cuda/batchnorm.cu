// Batch normalisation over the channels of (N, C, inner) tensors, forward (training or evaluation) and backward,
// as torch.nn.BatchNorm2d. One block per channel walks that channel's N * inner values, so sums have a fixed
// order and the running statistics need no atomics.
#include "engine/backends/cuda/cuda_device.cuh"
#include "engine/backends/cuda/cuda_kernels.h"

namespace lathe::cuda {
namespace {

constexpr int kChannelBlock = 256;

// The flat offset of value j (of M = n * inner) of channel c in an (N, C, inner) tensor.
__device__ __forceinline__ std::int64_t channelOffset(std::int64_t j, std::int64_t c, std::int64_t channels,
                                                      std::int64_t inner) {
    const std::int64_t n = j / inner;
    return (n * channels + c) * inner + (j - n * inner);
}

// x, y (N, C, inner); gamma, beta, runningMean, runningVar, mean, rstd (C); blockIdx.x = channel.
__global__ void batch_norm_forward_kernel(const float* x, const float* gamma, const float* beta, float* runningMean,
                                          float* runningVar, float* y, float* mean, float* rstd, std::int64_t batch,
                                          std::int64_t channels, std::int64_t inner, float eps, float momentum,
                                          bool training) {
    __shared__ float scratch[32];
    const std::int64_t c = blockIdx.x, m = batch * inner;
    float mu = runningMean[c], r = rsqrtf(runningVar[c] + eps);
    if (training) {
        // Two passes (mean, then centred variance), as layernorm.cu.
        float s = 0.0f;
        for (std::int64_t j = threadIdx.x; j < m; j += blockDim.x) s += x[channelOffset(j, c, channels, inner)];
        mu = blockSum(s, scratch) / static_cast<float>(m);
        float q = 0.0f;
        for (std::int64_t j = threadIdx.x; j < m; j += blockDim.x) {
            const float d = x[channelOffset(j, c, channels, inner)] - mu;
            q += d * d;
        }
        q = blockSum(q, scratch);
        r = 1.0f / sqrtf(q / static_cast<float>(m) + eps);
        if (threadIdx.x == 0) {
            runningMean[c] = (1.0f - momentum) * runningMean[c] + momentum * mu;
            runningVar[c] = (1.0f - momentum) * runningVar[c] + momentum * (q / static_cast<float>(m - 1));
        }
    }
    const float scale = r * gamma[c], shift = beta[c] - mu * scale;
    for (std::int64_t j = threadIdx.x; j < m; j += blockDim.x) {
        const std::int64_t o = channelOffset(j, c, channels, inner);
        y[o] = x[o] * scale + shift;
    }
    if (threadIdx.x == 0) {
        mean[c] = mu;
        rstd[c] = r;
    }
}

// dx = gamma * rstd * (dy - mean(dy) - xhat * mean(dy * xhat)); dgamma (+)= sum dy * xhat, dbeta (+)= sum dy;
// blockIdx.x = channel.
__global__ void batch_norm_backward_kernel(const float* dy, const float* x, const float* gamma, const float* mean,
                                           const float* rstd, float* dx, float* dgamma, float* dbeta,
                                           std::int64_t batch, std::int64_t channels, std::int64_t inner,
                                           bool accumulate) {
    __shared__ float scratch[32];
    const std::int64_t c = blockIdx.x, m = batch * inner;
    const float mu = mean[c], r = rstd[c];
    float a = 0.0f, b = 0.0f;
    for (std::int64_t j = threadIdx.x; j < m; j += blockDim.x) {
        const std::int64_t o = channelOffset(j, c, channels, inner);
        a += dy[o];
        b += dy[o] * (x[o] - mu) * r;
    }
    a = blockSum(a, scratch);
    b = blockSum(b, scratch);
    const float ma = a / static_cast<float>(m), mb = b / static_cast<float>(m), k = gamma[c] * r;
    for (std::int64_t j = threadIdx.x; j < m; j += blockDim.x) {
        const std::int64_t o = channelOffset(j, c, channels, inner);
        dx[o] = k * (dy[o] - ma - (x[o] - mu) * r * mb);
    }
    if (threadIdx.x == 0) {
        dgamma[c] = accumulate ? dgamma[c] + b : b;
        dbeta[c] = accumulate ? dbeta[c] + a : a;
    }
}

} // namespace

void launchBatchNormForward(const float* x, const float* gamma, const float* beta, float* runningMean,
                            float* runningVar, float* y, float* mean, float* rstd, std::int64_t batch,
                            std::int64_t channels, std::int64_t inner, const BatchNormParams& p, cudaStream_t stream) {
    if (channels == 0) return;
    batch_norm_forward_kernel<<<static_cast<unsigned>(channels), kChannelBlock, 0, stream>>>(
        x, gamma, beta, runningMean, runningVar, y, mean, rstd, batch, channels, inner, p.eps, p.momentum,
        p.training); // (N, C, inner)
    LATHE_CUDA_CHECK_LAUNCH("batch_norm_forward_kernel");
}

void launchBatchNormBackward(const float* dy, const float* x, const float* gamma, const float* mean,
                             const float* rstd, float* dx, float* dgamma, float* dbeta, std::int64_t batch,
                             std::int64_t channels, std::int64_t inner, bool accumulate, cudaStream_t stream) {
    if (channels == 0) return;
    batch_norm_backward_kernel<<<static_cast<unsigned>(channels), kChannelBlock, 0, stream>>>(
        dy, x, gamma, mean, rstd, dx, dgamma, dbeta, batch, channels, inner, accumulate); // (N, C, inner)
    LATHE_CUDA_CHECK_LAUNCH("batch_norm_backward_kernel");
}

} // namespace lathe::cuda

// Optimizer steps with PyTorch 1.13 semantics (torch.optim.SGD, Adam, AdamW; single-tensor path),
// one fused kernel per parameter tensor.
#include "engine/backends/cuda/cuda_device.cuh"
#include "engine/backends/cuda/cuda_kernels.h"

namespace lathe::cuda {
namespace {

// param, grad, velocity (n)
__global__ void sgd_step_kernel(float* param, const float* grad, float* velocity, std::int64_t n, SgdParams p,
                                bool firstStep) {
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
        float d = grad[i];
        if (p.weightDecay != 0.0f) d += p.weightDecay * param[i];
        if (p.momentum != 0.0f) {
            // torch: the buffer starts as a copy of the first gradient (no dampening here).
            const float buf = firstStep ? d : p.momentum * velocity[i] + d;
            velocity[i] = buf;
            d = p.nesterov ? d + p.momentum * buf : buf;
        }
        param[i] -= p.lr * d;
    }
}

// param, grad, m, v (n)
__global__ void adam_step_kernel(float* param, const float* grad, float* m, float* v, std::int64_t n, AdamParams p,
                                 float biasCorrection1, float biasCorrection2Sqrt) {
    const float stepSize = p.lr / biasCorrection1;
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
        float w = param[i];
        float g = grad[i];
        if (p.weightDecay != 0.0f) {
            if (p.decoupled)
                w *= 1.0f - p.lr * p.weightDecay; // AdamW
            else
                g += p.weightDecay * w;
        }
        const float mi = m[i] + (g - m[i]) * (1.0f - p.beta1); // torch's lerp_
        const float vi = p.beta2 * v[i] + (1.0f - p.beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        const float denom = sqrtf(vi) / biasCorrection2Sqrt + p.eps;
        param[i] = w - stepSize * mi / denom;
    }
}

} // namespace

void launchSgdStep(float* param, const float* grad, float* velocity, std::int64_t n, const SgdParams& p,
                   bool firstStep, cudaStream_t stream) {
    if (n == 0) return;
    sgd_step_kernel<<<gridFor(n), kBlock, 0, stream>>>(param, grad, velocity, n, p, firstStep); // (n)
    LATHE_CUDA_CHECK_LAUNCH("sgd_step_kernel");
}

void launchAdamStep(float* param, const float* grad, float* m, float* v, std::int64_t n, const AdamParams& p,
                    float biasCorrection1, float biasCorrection2, cudaStream_t stream) {
    if (n == 0) return;
    adam_step_kernel<<<gridFor(n), kBlock, 0, stream>>>(param, grad, m, v, n, p, biasCorrection1,
                                                         sqrtf(biasCorrection2)); // (n)
    LATHE_CUDA_CHECK_LAUNCH("adam_step_kernel");
}

} // namespace lathe::cuda

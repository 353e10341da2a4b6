// 2-D max pooling: forward records the flat (H, W) index of each window's first maximum; backward
// gathers dy into each input pixel from the windows whose argmax points at it (no atomics).
#include "engine/backends/cuda/cuda_device.cuh"
#include "engine/backends/cuda/cuda_kernels.h"

namespace lathe::cuda {
namespace {

struct PoolDims {
    std::int64_t planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow;
};

PoolDims dimsOf(const Pool2dGeometry& g) {
    return {g.batch * g.channels, g.height, g.width, g.kernelH, g.kernelW, g.strideH, g.strideW, g.padH, g.padW,
            g.outH(), g.outW()};
}

// x (N*C, H, W) -> y, argmax (N*C, OH, OW). Padding never wins (it is -inf, as in PyTorch); a NaN always does.
__global__ void max_pool2d_forward_kernel(const float* x, float* y, std::int32_t* argmax, PoolDims d) {
    const std::int64_t total = d.planes * d.oh * d.ow;
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
        const std::int64_t ox = i % d.ow, oy = (i / d.ow) % d.oh, plane = i / (d.ow * d.oh);
        const float* px = x + plane * d.h * d.w;
        float best = -INFINITY;
        std::int64_t bestIdx = -1;
        bool nan = false;
        for (std::int64_t ky = 0; ky < d.kh && !nan; ++ky) {
            const std::int64_t yy = oy * d.sh - d.ph + ky;
            if (yy < 0 || yy >= d.h) continue;
            for (std::int64_t kx = 0; kx < d.kw; ++kx) {
                const std::int64_t xx = ox * d.sw - d.pw + kx;
                if (xx < 0 || xx >= d.w) continue;
                const float v = px[yy * d.w + xx];
                // NaN propagates, the window's first one (as on the CPU and in PyTorch); otherwise the first
                // maximum wins.
                if (bestIdx < 0 || v > best || isnan(v)) {
                    best = v;
                    bestIdx = yy * d.w + xx;
                    if (isnan(v)) {
                        nan = true;
                        break;
                    }
                }
            }
        }
        y[i] = best;
        argmax[i] = static_cast<std::int32_t>(bestIdx);
    }
}

// dx (N*C, H, W) = sum of dy over the windows whose argmax is this pixel.
__global__ void max_pool2d_backward_kernel(const float* dy, const std::int32_t* argmax, float* dx, PoolDims d) {
    const std::int64_t total = d.planes * d.h * d.w;
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
        const std::int64_t xx = i % d.w, yy = (i / d.w) % d.h, plane = i / (d.w * d.h);
        const std::int64_t flat = yy * d.w + xx;
        // Windows covering yy: oy*sh - ph <= yy <= oy*sh - ph + kh - 1.
        std::int64_t oy0 = yy + d.ph - d.kh + 1;
        oy0 = oy0 <= 0 ? 0 : (oy0 + d.sh - 1) / d.sh;
        const std::int64_t oy1 = min((yy + d.ph) / d.sh, d.oh - 1);
        std::int64_t ox0 = xx + d.pw - d.kw + 1;
        ox0 = ox0 <= 0 ? 0 : (ox0 + d.sw - 1) / d.sw;
        const std::int64_t ox1 = min((xx + d.pw) / d.sw, d.ow - 1);
        float s = 0.0f;
        for (std::int64_t oy = oy0; oy <= oy1; ++oy)
            for (std::int64_t ox = ox0; ox <= ox1; ++ox) {
                const std::int64_t o = (plane * d.oh + oy) * d.ow + ox;
                if (argmax[o] == flat) s += dy[o];
            }
        dx[i] = s;
    }
}

} // namespace

void launchMaxPool2dForward(const float* x, float* y, std::int32_t* argmax, const Pool2dGeometry& g,
                            cudaStream_t stream) {
    const PoolDims d = dimsOf(g);
    const std::int64_t total = d.planes * d.oh * d.ow;
    if (total == 0) return;
    max_pool2d_forward_kernel<<<gridFor(total), kBlock, 0, stream>>>(x, y, argmax, d); // (N, C, OH, OW)
    LATHE_CUDA_CHECK_LAUNCH("max_pool2d_forward_kernel");
}

void launchMaxPool2dBackward(const float* dy, const std::int32_t* argmax, float* dx, const Pool2dGeometry& g,
                             cudaStream_t stream) {
    const PoolDims d = dimsOf(g);
    const std::int64_t total = d.planes * d.h * d.w;
    if (total == 0) return;
    max_pool2d_backward_kernel<<<gridFor(total), kBlock, 0, stream>>>(dy, argmax, dx, d); // (N, C, H, W)
    LATHE_CUDA_CHECK_LAUNCH("max_pool2d_backward_kernel");
}

} // namespace lathe::cuda

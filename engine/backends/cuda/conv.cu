// Convolution helpers: im2col, col2im (a gather, so no atomics and a fixed summation order) and the
// (A, B, P) -> (B, A, P) permute that moves between NCHW and the GEMM's channel-major layout.
// The GEMMs themselves run through cuBLAS in cuda_backend.cpp.
#include "engine/backends/cuda/cuda_device.cuh"
#include "engine/backends/cuda/cuda_kernels.h"

namespace lathe::cuda {
namespace {

struct ConvDims {
    std::int64_t c, h, w, kh, kw, sh, sw, ph, pw, oh, ow;
};

ConvDims dimsOf(const Conv2dGeometry& g) {
    return {g.inChannels, g.height, g.width, g.kernelH, g.kernelW, g.strideH, g.strideW, g.padH, g.padW, g.outH(),
            g.outW()};
}

// x (N, C, H, W) -> col (C*KH*KW, nb*OH*OW)
__global__ void im2col_kernel(const float* x, float* col, ConvDims d, std::int64_t n0, std::int64_t nb) {
    const std::int64_t p = d.oh * d.ow;
    const std::int64_t cols = nb * p;
    const std::int64_t total = d.c * d.kh * d.kw * cols;
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
        const std::int64_t j = i % cols, r = i / cols;
        const std::int64_t nl = j / p, q = j % p, oy = q / d.ow, ox = q % d.ow;
        const std::int64_t kx = r % d.kw, ky = (r / d.kw) % d.kh, c = r / (d.kw * d.kh);
        const std::int64_t y = oy * d.sh - d.ph + ky, xx = ox * d.sw - d.pw + kx;
        float v = 0.0f;
        if (y >= 0 && y < d.h && xx >= 0 && xx < d.w) v = x[(((n0 + nl) * d.c + c) * d.h + y) * d.w + xx];
        col[i] = v;
    }
}

// col (C*KH*KW, nb*OH*OW) -> dx (N, C, H, W): each input pixel gathers the columns that read it.
__global__ void col2im_kernel(const float* col, float* dx, ConvDims d, std::int64_t n0, std::int64_t nb) {
    const std::int64_t p = d.oh * d.ow;
    const std::int64_t cols = nb * p;
    const std::int64_t total = nb * d.c * d.h * d.w;
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
        const std::int64_t xx = i % d.w, y = (i / d.w) % d.h, c = (i / (d.w * d.h)) % d.c, nl = i / (d.w * d.h * d.c);
        float s = 0.0f;
        for (std::int64_t ky = 0; ky < d.kh; ++ky) {
            const std::int64_t ty = y + d.ph - ky;
            if (ty < 0 || ty % d.sh) continue;
            const std::int64_t oy = ty / d.sh;
            if (oy >= d.oh) continue;
            for (std::int64_t kx = 0; kx < d.kw; ++kx) {
                const std::int64_t tx = xx + d.pw - kx;
                if (tx < 0 || tx % d.sw) continue;
                const std::int64_t ox = tx / d.sw;
                if (ox >= d.ow) continue;
                const std::int64_t r = (c * d.kh + ky) * d.kw + kx;
                s += col[r * cols + nl * p + oy * d.ow + ox];
            }
        }
        dx[n0 * d.c * d.h * d.w + i] = s;
    }
}

// src (A, B, P) -> dst (B, A, P)
__global__ void permute_012_to_102_kernel(const float* src, float* dst, std::int64_t a, std::int64_t b,
                                          std::int64_t p) {
    const std::int64_t total = a * b * p;
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
        const std::int64_t k = i % p, ib = (i / p) % b, ia = i / (p * b);
        dst[(ib * a + ia) * p + k] = src[i];
    }
}

} // namespace

void launchIm2col(const float* x, float* col, const Conv2dGeometry& g, std::int64_t n0, std::int64_t nb,
                  cudaStream_t stream) {
    const std::int64_t total = g.inChannels * g.kernelH * g.kernelW * nb * g.outH() * g.outW();
    if (total == 0) return;
    im2col_kernel<<<gridFor(total), kBlock, 0, stream>>>(x, col, dimsOf(g), n0, nb); // (CKK, nb*OH*OW)
    LATHE_CUDA_CHECK_LAUNCH("im2col_kernel");
}

void launchCol2im(const float* col, float* dx, const Conv2dGeometry& g, std::int64_t n0, std::int64_t nb,
                  cudaStream_t stream) {
    const std::int64_t total = nb * g.inChannels * g.height * g.width;
    if (total == 0) return;
    col2im_kernel<<<gridFor(total), kBlock, 0, stream>>>(col, dx, dimsOf(g), n0, nb); // (nb, C, H, W)
    LATHE_CUDA_CHECK_LAUNCH("col2im_kernel");
}

void launchPermute012To102(const float* src, float* dst, std::int64_t a, std::int64_t b, std::int64_t p,
                           cudaStream_t stream) {
    const std::int64_t total = a * b * p;
    if (total == 0) return;
    permute_012_to_102_kernel<<<gridFor(total), kBlock, 0, stream>>>(src, dst, a, b, p); // (A, B, P) -> (B, A, P)
    LATHE_CUDA_CHECK_LAUNCH("permute_012_to_102_kernel");
}

} // namespace lathe::cuda

// Convolution helpers: im2col, col2im (a gather, so no atomics and a fixed summation order) and the
// (A, B, P) -> (B, A, P) permute that moves between NCHW and the GEMM's channel-major layout; the GEMMs
// themselves run through cuBLAS (cuda_gemm.cpp). Depthwise convolutions have direct kernels here.
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

// Calls f(ky, kx, oy, ox) for every kernel tap (ky, kx) and output position (oy, ox) that reads input pixel
// (y, x), taps in (ky, kx) order: the gather of the data gradients, which needs no atomics.
template <class F>
__device__ __forceinline__ void forEachReader(const ConvDims& d, std::int64_t y, std::int64_t x, F&& f) {
    for (std::int64_t ky = 0; ky < d.kh; ++ky) {
        const std::int64_t ty = y + d.ph - ky;
        if (ty < 0 || ty % d.sh) continue;
        const std::int64_t oy = ty / d.sh;
        if (oy >= d.oh) continue;
        for (std::int64_t kx = 0; kx < d.kw; ++kx) {
            const std::int64_t tx = x + d.pw - kx;
            if (tx < 0 || tx % d.sw) continue;
            const std::int64_t ox = tx / d.sw;
            if (ox < d.ow) f(ky, kx, oy, ox);
        }
    }
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

// x (N, C, H, W) -> cols (N*OH*OW, C*KH*KW), one thread per element (consecutive threads: one row's taps).
__global__ void im2col_rows_kernel(const float* x, float* cols, ConvDims d, std::int64_t n) {
    const std::int64_t ckk = d.c * d.kh * d.kw, p = d.oh * d.ow, total = n * p * ckk;
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
        const std::int64_t r = i / ckk, t = i % ckk;
        const std::int64_t img = r / p, q = r % p, oy = q / d.ow, ox = q % d.ow;
        const std::int64_t kx = t % d.kw, ky = (t / d.kw) % d.kh, c = t / (d.kw * d.kh);
        const std::int64_t y = oy * d.sh - d.ph + ky, xx = ox * d.sw - d.pw + kx;
        cols[i] = (y >= 0 && y < d.h && xx >= 0 && xx < d.w) ? x[((img * d.c + c) * d.h + y) * d.w + xx] : 0.0f;
    }
}

// rows (N*P, K) -> y (N, K, P) through a 32 x 33 shared tile (the extra column keeps the transposed reads off
// one bank).
__global__ void rows_to_channels_kernel(const float* rows, float* y, std::int64_t p, std::int64_t k) {
    __shared__ float tile[32][33];
    const std::int64_t img = blockIdx.z, q0 = blockIdx.x * 32, c0 = blockIdx.y * 32;
    for (int j = threadIdx.y; j < 32; j += blockDim.y) {
        const std::int64_t q = q0 + j, c = c0 + threadIdx.x;
        if (q < p && c < k) tile[j][threadIdx.x] = rows[(img * p + q) * k + c];
    }
    __syncthreads();
    for (int j = threadIdx.y; j < 32; j += blockDim.y) {
        const std::int64_t c = c0 + j, q = q0 + threadIdx.x;
        if (q < p && c < k) y[(img * k + c) * p + q] = tile[threadIdx.x][j];
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
        forEachReader(d, y, xx, [&](std::int64_t ky, std::int64_t kx, std::int64_t oy, std::int64_t ox) {
            const std::int64_t r = (c * d.kh + ky) * d.kw + kx;
            s += col[r * cols + nl * p + oy * d.ow + ox];
        });
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

// Depthwise: output channel kc of K reads input channel kc / mult of C (mult = K / C); w is (K, 1, KH, KW).
// x (N, C, H, W), w -> y (N, K, OH, OW): one thread per output, taps summed in (ky, kx) order.
__global__ void depthwise_forward_kernel(const float* x, const float* w, float* y, ConvDims d, std::int64_t n,
                                         std::int64_t k, std::int64_t mult) {
    const std::int64_t total = n * k * d.oh * d.ow;
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
        const std::int64_t ox = i % d.ow, oy = (i / d.ow) % d.oh, kc = (i / (d.ow * d.oh)) % k;
        const std::int64_t nn = i / (d.ow * d.oh * k);
        const float* plane = x + (nn * d.c + kc / mult) * d.h * d.w;
        const float* wk = w + kc * d.kh * d.kw;
        float s = 0.0f;
        for (std::int64_t ky = 0; ky < d.kh; ++ky) {
            const std::int64_t iy = oy * d.sh - d.ph + ky;
            if (iy < 0 || iy >= d.h) continue;
            for (std::int64_t kx = 0; kx < d.kw; ++kx) {
                const std::int64_t ix = ox * d.sw - d.pw + kx;
                if (ix >= 0 && ix < d.w) s += plane[iy * d.w + ix] * wk[ky * d.kw + kx];
            }
        }
        y[i] = s;
    }
}

// dy (N, K, OH, OW), w -> dx (N, C, H, W): each input pixel gathers the outputs of its mult channels
// that read it (as col2im does).
__global__ void depthwise_backward_data_kernel(const float* dy, const float* w, float* dx, ConvDims d,
                                               std::int64_t n, std::int64_t k, std::int64_t mult) {
    const std::int64_t total = n * d.c * d.h * d.w;
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
        const std::int64_t xx = i % d.w, y = (i / d.w) % d.h, c = (i / (d.w * d.h)) % d.c, nn = i / (d.w * d.h * d.c);
        float s = 0.0f;
        for (std::int64_t kc = c * mult; kc < (c + 1) * mult; ++kc) {
            const float* plane = dy + (nn * k + kc) * d.oh * d.ow;
            const float* wk = w + kc * d.kh * d.kw;
            forEachReader(d, y, xx, [&](std::int64_t ky, std::int64_t kx, std::int64_t oy, std::int64_t ox) {
                s += plane[oy * d.ow + ox] * wk[ky * d.kw + kx];
            });
        }
        dx[i] = s;
    }
}

// x (N, C, H, W), dy (N, K, OH, OW) -> dw (K, 1, KH, KW) (+)=: block b computes weight b (kc, ky, kx), its
// threads striding over the N*OH*OW outputs, then a block sum: a fixed order, no atomics.
__global__ void depthwise_backward_weight_kernel(const float* x, const float* dy, float* dw, ConvDims d,
                                                 std::int64_t n, std::int64_t k, std::int64_t mult,
                                                 bool accumulate) {
    __shared__ float scratch[32];
    const std::int64_t b = blockIdx.x, kk = d.kh * d.kw;
    const std::int64_t kc = b / kk, ky = (b % kk) / d.kw, kx = b % d.kw, p = d.oh * d.ow;
    float s = 0.0f;
    for (std::int64_t j = threadIdx.x; j < n * p; j += blockDim.x) {
        const std::int64_t nn = j / p, q = j % p, oy = q / d.ow, ox = q % d.ow;
        const std::int64_t iy = oy * d.sh - d.ph + ky, ix = ox * d.sw - d.pw + kx;
        if (iy < 0 || iy >= d.h || ix < 0 || ix >= d.w) continue;
        s += x[((nn * d.c + kc / mult) * d.h + iy) * d.w + ix] * dy[(nn * k + kc) * p + q];
    }
    s = blockSum(s, scratch);
    if (threadIdx.x == 0) dw[b] = (accumulate ? dw[b] : 0.0f) + s;
}

} // namespace

void launchIm2col(const float* x, float* col, const Conv2dGeometry& g, std::int64_t n0, std::int64_t nb,
                  cudaStream_t stream) {
    const std::int64_t total = g.inChannels * g.kernelH * g.kernelW * nb * g.outH() * g.outW();
    if (total == 0) return;
    im2col_kernel<<<gridFor(total), kBlock, 0, stream>>>(x, col, dimsOf(g), n0, nb); // (CKK, nb*OH*OW)
    LATHE_CUDA_CHECK_LAUNCH("im2col_kernel");
}

void launchIm2colRows(const float* x, float* cols, const Conv2dGeometry& g, cudaStream_t stream) {
    const std::int64_t total = g.batch * g.outH() * g.outW() * g.inChannels * g.kernelH * g.kernelW;
    if (total == 0) return;
    im2col_rows_kernel<<<gridFor(total), kBlock, 0, stream>>>(x, cols, dimsOf(g), g.batch); // (N*OH*OW, CKK)
    LATHE_CUDA_CHECK_LAUNCH("im2col_rows_kernel");
}

void launchRowsToChannels(const float* rows, float* y, std::int64_t images, std::int64_t positions,
                          std::int64_t channels, cudaStream_t stream) {
    if (images == 0 || positions == 0 || channels == 0) return;
    const dim3 grid(static_cast<unsigned>((positions + 31) / 32), static_cast<unsigned>((channels + 31) / 32),
                    static_cast<unsigned>(images));
    rows_to_channels_kernel<<<grid, dim3(32, 8), 0, stream>>>(rows, y, positions, channels); // (N, K, P)
    LATHE_CUDA_CHECK_LAUNCH("rows_to_channels_kernel");
}

void launchCol2im(const float* col, float* dx, const Conv2dGeometry& g, std::int64_t n0, std::int64_t nb,
                  cudaStream_t stream) {
    const std::int64_t total = nb * g.inChannels * g.height * g.width;
    if (total == 0) return;
    col2im_kernel<<<gridFor(total), kBlock, 0, stream>>>(col, dx, dimsOf(g), n0, nb); // (nb, C, H, W)
    LATHE_CUDA_CHECK_LAUNCH("col2im_kernel");
}

void launchDepthwiseForward(const float* x, const float* w, float* y, const Conv2dGeometry& g, cudaStream_t stream) {
    const std::int64_t total = g.batch * g.outChannels * g.outH() * g.outW();
    if (total == 0) return;
    depthwise_forward_kernel<<<gridFor(total), kBlock, 0, stream>>>(x, w, y, dimsOf(g), g.batch, g.outChannels,
                                                                     g.outPerGroup()); // (N, K, OH, OW)
    LATHE_CUDA_CHECK_LAUNCH("depthwise_forward_kernel");
}

void launchDepthwiseBackwardData(const float* dy, const float* w, float* dx, const Conv2dGeometry& g,
                                 cudaStream_t stream) {
    const std::int64_t total = g.batch * g.inChannels * g.height * g.width;
    if (total == 0) return;
    depthwise_backward_data_kernel<<<gridFor(total), kBlock, 0, stream>>>(dy, w, dx, dimsOf(g), g.batch,
                                                                           g.outChannels, g.outPerGroup()); // (N, C, H, W)
    LATHE_CUDA_CHECK_LAUNCH("depthwise_backward_data_kernel");
}

void launchDepthwiseBackwardWeight(const float* x, const float* dy, float* dw, const Conv2dGeometry& g,
                                   bool accumulate, cudaStream_t stream) {
    const std::int64_t weights = g.outChannels * g.kernelH * g.kernelW;
    if (weights == 0) return;
    depthwise_backward_weight_kernel<<<static_cast<unsigned>(weights), kBlock, 0, stream>>>(
        x, dy, dw, dimsOf(g), g.batch, g.outChannels, g.outPerGroup(), accumulate); // (K, 1, KH, KW)
    LATHE_CUDA_CHECK_LAUNCH("depthwise_backward_weight_kernel");
}

void launchPermute012To102(const float* src, float* dst, std::int64_t a, std::int64_t b, std::int64_t p,
                           cudaStream_t stream) {
    const std::int64_t total = a * b * p;
    if (total == 0) return;
    permute_012_to_102_kernel<<<gridFor(total), kBlock, 0, stream>>>(src, dst, a, b, p); // (A, B, P) -> (B, A, P)
    LATHE_CUDA_CHECK_LAUNCH("permute_012_to_102_kernel");
}

} // namespace lathe::cuda

// The CUDA backend's FP8 kernels around cuBLASLt's FP8 GEMM (ops_fp8.cpp): the activations' per-tensor absmax,
// their quantization to E4M3 (bytes for the GEMM, or the E4M3 values in f32 for the emulated path), the
// per-output-channel weight scale with bias and activation after the GEMM, and the double-quantized nf4
// absmax decoded for the weight-only kernels.
#include "engine/backends/cuda/activation.cuh"
#include "engine/backends/cuda/cuda_device.cuh"
#include "engine/backends/cuda/cuda_kernels.h"
#include "engine/core/quant_matrix.h"

#include <cuda_fp8.h>

namespace lathe::cuda {
namespace {

// amax (1) = max |x|, amax zeroed before: a block maximum, then one atomic per block on the float's bits
// (non-negative floats order as their bit patterns).
__global__ void fp8_absmax_kernel(const float* __restrict__ x, std::int64_t n, float* amax) {
    __shared__ float scratch[32];
    float m = 0.0f;
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x)
        m = fmaxf(m, fabsf(x[i]));
    m = blockMax(m, scratch);
    if (threadIdx.x == 0) atomicMax(reinterpret_cast<unsigned int*>(amax), __float_as_uint(m));
}

// sx = max|x| / 448 (1 for a zero x), as fp8TensorScale; xq = e4m3(x / sx) rounded to nearest even with
// saturation (floatToFp8E4M3's rounding), as bytes and/or as their f32 values.
__global__ void fp8_quantize_kernel(const float* __restrict__ x, std::int64_t n, const float* __restrict__ amax,
                                    std::uint8_t* __restrict__ xq, float* __restrict__ xValues, float* sx) {
    const float a = *amax;
    const float s = a > 0.0f ? a / kFp8E4M3Max : 1.0f;
    if (blockIdx.x == 0 && threadIdx.x == 0) *sx = s;
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
        const __nv_fp8_storage_t q = __nv_cvt_float_to_fp8(x[i] / s, __NV_SATFINITE, __NV_E4M3);
        if (xq) xq[i] = q;
        if (xValues) xValues[i] = __half2float(__half(__nv_cvt_fp8_to_halfraw(q, __NV_E4M3)));
    }
}

// out (n) = scales (n) * sx (1).
__global__ void fp8_scale_by_kernel(const float* __restrict__ scales, const float* __restrict__ sx, std::int64_t n,
                                    float* __restrict__ out) {
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x)
        out[i] = scales[i] * *sx;
}

// y (M, N) = act(y * colScale[c] + bias[c]).
__global__ void fp8_epilogue_kernel(float* y, std::int64_t rows, std::int64_t cols, const float* __restrict__ colScale,
                                    const float* __restrict__ bias, Activation act) {
    const std::int64_t total = rows * cols;
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
        const std::int64_t c = i % cols;
        y[i] = activate(y[i] * colScale[c] + (bias ? bias[c] : 0.0f), act);
    }
}

// absmax[i] = map[codes[i]] * blockAbsmax[i / 256] + offset (decodeDoubleQuantScales).
__global__ void double_quant_scales_kernel(const std::uint8_t* __restrict__ codes, const float* __restrict__ blockAbsmax,
                                           const float* __restrict__ offset, const float* __restrict__ map,
                                           std::int64_t n, float* __restrict__ absmax) {
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x)
        absmax[i] = map[codes[i]] * blockAbsmax[i / kDoubleQuantBlock] + *offset;
}

} // namespace

void launchFp8Absmax(const float* x, std::int64_t n, float* amax, cudaStream_t stream) {
    LATHE_CUDA_CHECK(cudaMemsetAsync(amax, 0, sizeof(float), stream));
    if (n == 0) return;
    fp8_absmax_kernel<<<gridFor(n), kBlock, 0, stream>>>(x, n, amax); // (n) -> (1)
    LATHE_CUDA_CHECK_LAUNCH("fp8_absmax_kernel");
}

void launchFp8Quantize(const float* x, std::int64_t n, const float* amax, std::uint8_t* xq, float* xValues, float* sx,
                       cudaStream_t stream) {
    fp8_quantize_kernel<<<gridFor(n > 0 ? n : 1), kBlock, 0, stream>>>(x, n, amax, xq, xValues, sx); // (n)
    LATHE_CUDA_CHECK_LAUNCH("fp8_quantize_kernel");
}

void launchFp8ScaleBy(const float* scales, const float* sx, std::int64_t n, float* out, cudaStream_t stream) {
    if (n == 0) return;
    fp8_scale_by_kernel<<<gridFor(n), kBlock, 0, stream>>>(scales, sx, n, out); // (n)
    LATHE_CUDA_CHECK_LAUNCH("fp8_scale_by_kernel");
}

void launchFp8Epilogue(float* y, std::int64_t rows, std::int64_t cols, const float* colScale, const float* bias,
                       Activation act, cudaStream_t stream) {
    if (rows == 0 || cols == 0) return;
    fp8_epilogue_kernel<<<gridFor(rows * cols), kBlock, 0, stream>>>(y, rows, cols, colScale, bias, act); // (M, N)
    LATHE_CUDA_CHECK_LAUNCH("fp8_epilogue_kernel");
}

void launchDoubleQuantScales(const std::uint8_t* codes, const float* blockAbsmax, const float* offset, const float* map,
                             std::int64_t n, float* absmax, cudaStream_t stream) {
    if (n == 0) return;
    double_quant_scales_kernel<<<gridFor(n), kBlock, 0, stream>>>(codes, blockAbsmax, offset, map, n, absmax); // (n)
    LATHE_CUDA_CHECK_LAUNCH("double_quant_scales_kernel");
}

} // namespace lathe::cuda

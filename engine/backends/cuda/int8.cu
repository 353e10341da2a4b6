// The CUDA backend's W8A8 kernels: activation quantization (one block per row for the dynamic scale), an
// exact int32 product for the shapes cuBLASLt's int8 GEMM does not take, and the epilogue that turns the
// int32 sums into y = act(fma(float(acc) * xScale, wScale, bias)), the CPU backend's arithmetic lane for lane.
#include "engine/backends/cuda/cuda_device.cuh"
#include "engine/backends/cuda/cuda_kernels.h"

#include <algorithm>

namespace lathe::cuda {
namespace {

constexpr float kInvSqrt2 = 0.70710678118654752440f;

// clamp(v / s, -127, 127) rounded half away from zero (roundf), NaN to 0: the CPU's quantizeOne. The
// division is IEEE (no fast math in this build), so both backends write the same codes.
__device__ __forceinline__ std::int8_t quantize_one(float v, float s) {
    float q = v / s;
    if (q != q) q = 0.0f;
    q = fminf(fmaxf(q, -127.0f), 127.0f);
    return static_cast<std::int8_t>(roundf(q));
}

// One block per row r: scale[r] = max |x[r]| / 127, then the row's codes (0 for a zero row).
__global__ void quantize_rows_dynamic_kernel(const float* x, std::int8_t* xq, float* scale, std::int64_t cols) {
    __shared__ float scratch[32];
    const std::int64_t r = blockIdx.x;
    const float* xr = x + r * cols;    // (K)
    std::int8_t* qr = xq + r * cols;   // (K)
    float m = 0.0f;
    for (std::int64_t i = threadIdx.x; i < cols; i += blockDim.x) m = fmaxf(m, fabsf(xr[i]));
    m = blockMax(m, scratch);
    const float s = m / 127.0f;
    if (threadIdx.x == 0) scale[r] = s;
    for (std::int64_t i = threadIdx.x; i < cols; i += blockDim.x) qr[i] = s == 0.0f ? 0 : quantize_one(xr[i], s);
}

// The calibrated scale is read on the device: checking s > 0 on the host would synchronise.
__global__ void quantize_rows_static_kernel(const float* x, std::int8_t* xq, const float* scale, std::int64_t n) {
    const float s = scale[0];
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
        xq[i] = quantize_one(x[i], s);
}

// One thread per output: the plain sum, for shapes cuBLASLt refuses (K not a multiple of 4).
__global__ void int8_gemm_naive_kernel(const std::int8_t* x, const std::int8_t* w, std::int32_t* acc, std::int64_t m,
                                       std::int64_t n, std::int64_t k) {
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < m * n;
         i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
        const std::int8_t* xr = x + (i / n) * k; // (K)
        const std::int8_t* wr = w + (i % n) * k; // (K)
        std::int32_t s = 0;
        for (std::int64_t c = 0; c < k; ++c) s += static_cast<std::int32_t>(xr[c]) * wr[c];
        acc[i] = s;
    }
}

// The fused multiply-add is written out (nvcc would contract, but where is its choice), so the result
// rounds as the CPU's does; GELU differs by erff's last-ulp differences only.
__device__ __forceinline__ float finishOne(float v, Activation act) {
    if (act == Activation::Relu) v = v > 0.0f ? v : 0.0f;
    if (act == Activation::Gelu) v = 0.5f * v * (1.0f + erff(v * kInvSqrt2));
    return v;
}

__device__ __forceinline__ float dequantizeOne(std::int32_t a, float xs, const float* wScale, bool wPerColumn,
                                               const float* bias, Activation act, std::int64_t c) {
    return finishOne(__fmaf_rn(static_cast<float>(a) * xs, wScale[wPerColumn ? c : 0], bias ? bias[c] : 0.0f), act);
}

// Row r of the output per block row (grid.y strides over the rows), the columns over the block's threads, four
// at a time (16-byte loads and stores) where N is a multiple of 4: one pass over acc and y at the memory's
// speed, no 64-bit division per element.
template <bool kVec4>
__global__ void int8_epilogue_kernel(const std::int32_t* acc, const float* xScale, bool xPerRow, const float* wScale,
                                     bool wPerColumn, const float* bias, Activation act, float* y, std::int64_t m,
                                     std::int64_t n) {
    const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
    for (std::int64_t r = blockIdx.y; r < m; r += gridDim.y) {
        const float xs = xScale[xPerRow ? r : 0];
        const std::int32_t* ar = acc + r * n; // (N)
        float* yr = y + r * n;                // (N)
        if constexpr (kVec4) {
            for (std::int64_t c4 = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; c4 < n / 4;
                 c4 += stride) {
                const int4 a = __ldcs(reinterpret_cast<const int4*>(ar) + c4); // read once: do not keep in L2
                const float4 ws = wPerColumn ? __ldg(reinterpret_cast<const float4*>(wScale) + c4)
                                             : make_float4(wScale[0], wScale[0], wScale[0], wScale[0]);
                const float4 b = bias ? __ldg(reinterpret_cast<const float4*>(bias) + c4) : make_float4(0, 0, 0, 0);
                float4 o;
                o.x = finishOne(__fmaf_rn(static_cast<float>(a.x) * xs, ws.x, b.x), act);
                o.y = finishOne(__fmaf_rn(static_cast<float>(a.y) * xs, ws.y, b.y), act);
                o.z = finishOne(__fmaf_rn(static_cast<float>(a.z) * xs, ws.z, b.z), act);
                o.w = finishOne(__fmaf_rn(static_cast<float>(a.w) * xs, ws.w, b.w), act);
                __stcs(reinterpret_cast<float4*>(yr) + c4, o);
            }
        } else {
            for (std::int64_t c = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; c < n; c += stride)
                yr[c] = dequantizeOne(ar[c], xs, wScale, wPerColumn, bias, act, c);
        }
    }
}

} // namespace

void launchQuantizeRows(const float* x, std::int8_t* xq, float* scale, std::int64_t rows, std::int64_t cols,
                        bool dynamic, cudaStream_t stream) {
    if (rows == 0 || cols == 0) {
        if (dynamic && rows > 0) LATHE_CUDA_CHECK(cudaMemsetAsync(scale, 0, rows * sizeof(float), stream));
        return;
    }
    if (dynamic) {
        quantize_rows_dynamic_kernel<<<static_cast<unsigned>(rows), rowBlock(cols), 0, stream>>>(x, xq, scale,
                                                                                                 cols); // (M, K)
        LATHE_CUDA_CHECK_LAUNCH("quantize_rows_dynamic_kernel");
    } else {
        quantize_rows_static_kernel<<<gridFor(rows * cols), kBlock, 0, stream>>>(x, xq, scale, rows * cols); // (M, K)
        LATHE_CUDA_CHECK_LAUNCH("quantize_rows_static_kernel");
    }
}

void launchInt8GemmNaive(const std::int8_t* x, const std::int8_t* w, std::int32_t* acc, std::int64_t m,
                         std::int64_t n, std::int64_t k, cudaStream_t stream) {
    if (m == 0 || n == 0) return;
    int8_gemm_naive_kernel<<<gridFor(m * n), kBlock, 0, stream>>>(x, w, acc, m, n, k); // (M, N)
    LATHE_CUDA_CHECK_LAUNCH("int8_gemm_naive_kernel");
}

void launchInt8Epilogue(const std::int32_t* acc, const float* xScale, bool xPerRow, const float* wScale,
                        bool wPerColumn, const float* bias, Activation act, float* y, std::int64_t m, std::int64_t n,
                        cudaStream_t stream) {
    if (m == 0 || n == 0) return;
    auto aligned = [](const void* p) { return !p || reinterpret_cast<std::uintptr_t>(p) % 16 == 0; };
    const bool vec4 = n % 4 == 0 && aligned(acc) && aligned(y) && aligned(bias) && (!wPerColumn || aligned(wScale));
    const std::int64_t perRow = vec4 ? n / 4 : n;
    const dim3 grid(static_cast<unsigned>(std::min<std::int64_t>((perRow + kBlock - 1) / kBlock, 1024)),
                    static_cast<unsigned>(std::min<std::int64_t>(m, 65535)));
    if (vec4)
        int8_epilogue_kernel<true><<<grid, kBlock, 0, stream>>>(acc, xScale, xPerRow, wScale, wPerColumn, bias, act, y,
                                                               m, n); // (M, N)
    else
        int8_epilogue_kernel<false><<<grid, kBlock, 0, stream>>>(acc, xScale, xPerRow, wScale, wPerColumn, bias, act,
                                                                y, m, n); // (M, N)
    LATHE_CUDA_CHECK_LAUNCH("int8_epilogue_kernel");
}

} // namespace lathe::cuda

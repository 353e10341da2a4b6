// Private device helpers for the CUDA kernels: element loads/stores through float, dtype dispatch,
// warp/block reductions and a grid-size helper. Included only by .cu files.
#pragma once

#include "engine/backends/cuda/cuda_check.h"
#include "engine/core/dtype.h"
#include "engine/core/errors.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

namespace lathe::cuda {

constexpr int kBlock = 256;

__device__ __forceinline__ float toF(float x) { return x; }
__device__ __forceinline__ float toF(__half x) { return __half2float(x); }
__device__ __forceinline__ float toF(__nv_bfloat16 x) { return __bfloat162float(x); }

template <class T> __device__ __forceinline__ T fromF(float x);
template <> __device__ __forceinline__ float fromF<float>(float x) { return x; }
// Round to nearest even, like the host traits (floatToHalf / floatToBf16).
template <> __device__ __forceinline__ __half fromF<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 fromF<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

// Grid for a grid-stride loop over n elements (capped: the loop covers the rest).
inline unsigned gridFor(std::int64_t n, int block = kBlock) {
    const std::int64_t blocks = (n + block - 1) / block;
    return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65535 * 8 ? 65535 * 8 : blocks));
}

// Calls f(T{}) with T the element type of a float dtype; other dtypes throw naming the op.
template <class F>
void dispatchFloat(DType dt, const char* op, F&& f) {
    switch (dt) {
    case DType::F32: f(float{}); return;
    case DType::F16: f(__half{}); return;
    case DType::BF16: f(__nv_bfloat16{}); return;
    default: throw BackendError(std::string("cuda: ") + op + " has no kernel for " + dtypeName(dt));
    }
}

__device__ __forceinline__ float warpSum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warpMax(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Block-wide sum/max for blockDim.x a multiple of 32 (<= 1024); every thread gets the result.
// `scratch` holds 32 floats of shared memory; the trailing barrier lets the caller reuse it.
__device__ __forceinline__ float blockSum(float v, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warpSum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : 0.0f;
    v = warpSum(v);
    __syncthreads();
    return v;
}
__device__ __forceinline__ float blockMax(float v, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warpMax(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : -INFINITY;
    v = warpMax(v);
    __syncthreads();
    return v;
}

// Threads per row for row-wise kernels: a multiple of 32, at most 1024, about the row length.
inline int rowBlock(std::int64_t cols) {
    int t = 32;
    while (t < 1024 && t < cols) t *= 2;
    return t;
}

// Records the bad (row, value) pair of the lowest row in the 8-byte flag (preset to all ones by the host):
// one 64-bit atomicMin on (row << 32 | value), so the first bad row wins whichever thread gets there first,
// and its value travels with it.
__device__ __forceinline__ void reportBadIndex(int* flag, std::int64_t row, std::int32_t value) {
    const unsigned long long packed =
        (static_cast<unsigned long long>(row) << 32) | static_cast<std::uint32_t>(value);
    atomicMin(reinterpret_cast<unsigned long long*>(flag), packed);
}

} // namespace lathe::cuda

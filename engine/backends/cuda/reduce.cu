// Reductions: the bias gradient (sum over every axis but the channel) and the row-wise argmax.
// Sums run in a fixed order per launch configuration, so results are reproducible run to run.
#include "engine/backends/cuda/cuda_device.cuh"
#include "engine/backends/cuda/cuda_kernels.h"

namespace lathe::cuda {
namespace {

// dy (N, C) with inner == 1: 32 columns per block, 8 row lanes; coalesced across the columns.
template <class T>
__global__ void bias_grad_rows_kernel(const T* dy, T* dbias, std::int64_t rows, std::int64_t cols,
                                      bool accumulate) {
    __shared__ float partial[8][33];
    const std::int64_t c = blockIdx.x * 32 + threadIdx.x;
    float s = 0.0f;
    if (c < cols)
        for (std::int64_t r = threadIdx.y; r < rows; r += 8) s += toF(dy[r * cols + c]);
    partial[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        float t = 0.0f;
        for (int k = 0; k < 8; ++k) t += partial[k][threadIdx.x];
        dbias[c] = fromF<T>(accumulate ? toF(dbias[c]) + t : t);
    }
}

// dy (outer, C, inner) with inner > 1: one block per channel, threads walk the contiguous inner runs.
template <class T>
__global__ void bias_grad_planes_kernel(const T* dy, T* dbias, std::int64_t outer, std::int64_t channels,
                                        std::int64_t inner, bool accumulate) {
    __shared__ float scratch[32];
    const std::int64_t c = blockIdx.x;
    const std::int64_t total = outer * inner;
    float s = 0.0f;
    for (std::int64_t k = threadIdx.x; k < total; k += blockDim.x) {
        const std::int64_t o = k / inner, i = k % inner;
        s += toF(dy[(o * channels + c) * inner + i]);
    }
    s = blockSum(s, scratch);
    if (threadIdx.x == 0) dbias[c] = fromF<T>(accumulate ? toF(dbias[c]) + s : s);
}

// x (N, C) -> out (N): first index of the maximum; blockIdx.x = row.
template <class T>
__global__ void argmax_rows_kernel(const T* x, std::int32_t* out, std::int64_t cols) {
    __shared__ float bestV[32];
    __shared__ std::int64_t bestI[32];
    const T* row = x + blockIdx.x * cols;
    float v = -INFINITY;
    std::int64_t idx = cols; // "none yet": loses every tie
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        const float xv = toF(row[c]);
        if (xv > v || idx == cols) {
            v = xv;
            idx = c;
        }
    }
    // Warp then block: larger value wins, the smaller index wins a tie.
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, v, o);
        const std::int64_t oi = __shfl_xor_sync(0xffffffffu, idx, o);
        if (ov > v || (ov == v && oi < idx) || (idx == cols && oi < cols)) {
            v = ov;
            idx = oi;
        }
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) {
        bestV[warp] = v;
        bestI[warp] = idx;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < static_cast<int>(blockDim.x >> 5); ++w)
            if (bestV[w] > v || (bestV[w] == v && bestI[w] < idx) || (idx == cols && bestI[w] < cols)) {
                v = bestV[w];
                idx = bestI[w];
            }
        out[blockIdx.x] = static_cast<std::int32_t>(idx == cols ? 0 : idx);
    }
}

} // namespace

void launchBiasGrad(const void* dy, void* dbias, DType dt, std::int64_t outer, std::int64_t channels,
                    std::int64_t inner, bool accumulate, cudaStream_t stream) {
    if (channels == 0) return;
    dispatchFloat(dt, "bias_grad", [&](auto tag) {
        using T = decltype(tag);
        if (inner == 1) {
            const dim3 block(32, 8);
            const unsigned grid = static_cast<unsigned>((channels + 31) / 32);
            bias_grad_rows_kernel<T><<<grid, block, 0, stream>>>(static_cast<const T*>(dy), static_cast<T*>(dbias),
                                                                  outer, channels, accumulate); // (N, C)
            LATHE_CUDA_CHECK_LAUNCH("bias_grad_rows_kernel");
        } else {
            bias_grad_planes_kernel<T><<<static_cast<unsigned>(channels), kBlock, 0, stream>>>(
                static_cast<const T*>(dy), static_cast<T*>(dbias), outer, channels, inner, accumulate); // (N, C, inner)
            LATHE_CUDA_CHECK_LAUNCH("bias_grad_planes_kernel");
        }
    });
}

void launchArgmaxRows(const void* x, DType dt, std::int32_t* out, std::int64_t rows, std::int64_t cols,
                      cudaStream_t stream) {
    if (rows == 0) return;
    dispatchFloat(dt, "argmax_rows", [&](auto tag) {
        using T = decltype(tag);
        argmax_rows_kernel<T><<<static_cast<unsigned>(rows), rowBlock(cols), 0, stream>>>(
            static_cast<const T*>(x), out, cols); // (N, C) -> (N)
        LATHE_CUDA_CHECK_LAUNCH("argmax_rows_kernel");
    });
}

} // namespace lathe::cuda

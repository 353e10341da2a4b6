// The CUDA backend's weight-only GEMM kernels (W in quant_matrix.h's int8 / int4 / nf4 / fp8 group-wise formats):
// a fused dequantize-GEMV for a few rows of x, and for more rows a dequantize kernel into a scratch f32 tile
// (the cuBLAS GEMM follows, ops_weight_only.cpp) with the bias + activation epilogue kernel after it.
#include "engine/backends/cuda/activation.cuh"
#include "engine/backends/cuda/cuda_device.cuh"
#include "engine/backends/cuda/cuda_kernels.h"
#include "engine/core/quant_blocks.h"

#include <cuda_fp8.h>

#include <atomic>

namespace lathe::cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 4;   // one output row of W per warp
constexpr int kRowsPerPass = 4;     // rows of x a warp sums at once, reusing each decoded code
constexpr int kSymmetricZero = 8;   // int4 without stored zero points
constexpr std::int64_t kMaxSharedX = 48 * 1024; // bytes of x staged per block without opting in to more

static_assert(kNf4Codebook.size() == 16, "one nf4 code is 4 bits");
__constant__ float kCodebook[16] = {kNf4Codebook[0],  kNf4Codebook[1],  kNf4Codebook[2],  kNf4Codebook[3],
                                    kNf4Codebook[4],  kNf4Codebook[5],  kNf4Codebook[6],  kNf4Codebook[7],
                                    kNf4Codebook[8],  kNf4Codebook[9],  kNf4Codebook[10], kNf4Codebook[11],
                                    kNf4Codebook[12], kNf4Codebook[13], kNf4Codebook[14], kNf4Codebook[15]};

// One code per byte (int8, fp8) rather than two (int4, nf4).
template <WeightFormat F>
constexpr bool kByteCodes = F == WeightFormat::Int8 || F == WeightFormat::Fp8;

// An E4M3 byte's value, through the hardware's fp8 -> f16 conversion (exact; f16 holds every E4M3 value).
__device__ __forceinline__ float fp8Value(std::uint32_t byte) {
    return __half2float(__half(__nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(byte), __NV_E4M3)));
}

// Code i (0-based, in k order) of a 32-bit word of packed codes, before its group's scale.
template <WeightFormat F>
__device__ __forceinline__ float decodeInWord(std::uint32_t word, int i, int zero, const float* codebook) {
    if constexpr (F == WeightFormat::Int8) {
        return static_cast<float>(static_cast<signed char>((word >> (8 * i)) & 0xFFu));
    } else if constexpr (F == WeightFormat::Fp8) {
        return fp8Value((word >> (8 * i)) & 0xFFu);
    } else {
        const int q = static_cast<int>((word >> (4 * i)) & 0xFu);
        if constexpr (F == WeightFormat::Int4) return static_cast<float>(q - zero);
        else return codebook[q];
    }
}

// Code k of a row, before its group's scale.
template <WeightFormat F>
__device__ __forceinline__ float decodeAt(const std::uint8_t* row, std::int64_t k, int zero, const float* codebook) {
    if constexpr (kByteCodes<F>) return decodeInWord<F>(row[k], 0, zero, codebook);
    else return decodeInWord<F>(row[k >> 1], static_cast<int>(k & 1), zero, codebook);
}

__device__ __forceinline__ int zeroOf(const WeightOnlyView& w, std::int64_t n, std::int64_t g) {
    return w.zeros ? w.zeros[n * w.groups + g] : kSymmetricZero;
}

// Where x[r][k] sits in shared memory: one float of padding after every 32, so that the lanes of a warp,
// each reading its own run of 16 or 32 consecutive k, hit 32 different banks.
__device__ __forceinline__ std::int64_t paddedIndex(std::int64_t k) { return k + (k >> 5); }

// Warp w of block (bx, by) computes y[r][n] for n = bx * kWarpsPerBlock + w and the R rows of x from
// r0 = by * R, their codes decoded once. Vectorized (rows of codes 16-byte aligned, K and the group
// multiples of the codes in one 16-byte load): each lane loads 16 bytes of codes at a time, all in one
// group. Otherwise lanes stride over single codes. x is staged in shared memory when it fits.
template <WeightFormat F, int R, bool kVector>
__global__ void weight_only_gemv_kernel(const float* __restrict__ x, WeightOnlyView w, const float* __restrict__ bias,
                                        Activation act, float* __restrict__ y, std::int64_t m, bool sharedX) {
    extern __shared__ float xs[]; // (R, paddedIndex(K) + 1) when sharedX
    __shared__ float codebook[16];
    const std::int64_t k = w.k, r0 = static_cast<std::int64_t>(blockIdx.y) * R;
    const int rows = static_cast<int>(m - r0 < R ? m - r0 : R);
    const std::int64_t xStride = sharedX ? paddedIndex(k) + 1 : k;
    if (threadIdx.x < 16) codebook[threadIdx.x] = kCodebook[threadIdx.x];
    if (sharedX)
        for (std::int64_t i = threadIdx.x; i < rows * k; i += blockDim.x)
            xs[(i / k) * xStride + paddedIndex(i % k)] = x[r0 * k + i];
    __syncthreads();
    const float* xp = sharedX ? xs : x + r0 * k; // (rows, xStride)

    const int lane = threadIdx.x % kWarp;
    const std::int64_t n = static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
    if (n >= w.rows) return; // the whole warp leaves together
    const std::uint8_t* row = w.codes + n * w.rowBytes; // (rowBytes)
    float acc[R] = {};
    if constexpr (kVector) {
        constexpr int kCodesPerLoad = kByteCodes<F> ? 16 : 32, kCodesPerWord = kCodesPerLoad / 4;
        const std::int64_t loads = w.rowBytes / 16;
        for (std::int64_t j = lane; j < loads; j += kWarp) {
            const uint4 q = reinterpret_cast<const uint4*>(row)[j];
            const std::int64_t k0 = j * kCodesPerLoad, g = k0 / w.group;
            const int zero = F == WeightFormat::Int4 ? zeroOf(w, n, g) : 0;
            const std::uint32_t words[4] = {q.x, q.y, q.z, q.w};
            float part[R] = {};
#pragma unroll
            for (int wd = 0; wd < 4; ++wd)
#pragma unroll
                for (int i = 0; i < kCodesPerWord; ++i) {
                    const float v = decodeInWord<F>(words[wd], i, zero, codebook);
                    const std::int64_t kk = k0 + wd * kCodesPerWord + i;
                    const std::int64_t at = sharedX ? paddedIndex(kk) : kk;
#pragma unroll
                    for (int r = 0; r < R; ++r)
                        if (r < rows) part[r] += v * xp[r * xStride + at];
                }
            const float scale = w.scales[n * w.groups + g];
#pragma unroll
            for (int r = 0; r < R; ++r) acc[r] += scale * part[r];
        }
    } else {
        for (std::int64_t kk = lane; kk < k; kk += kWarp) {
            const std::int64_t g = kk / w.group;
            const int zero = F == WeightFormat::Int4 ? zeroOf(w, n, g) : 0;
            const float v = w.scales[n * w.groups + g] * decodeAt<F>(row, kk, zero, codebook);
            const std::int64_t at = sharedX ? paddedIndex(kk) : kk;
#pragma unroll
            for (int r = 0; r < R; ++r)
                if (r < rows) acc[r] += v * xp[r * xStride + at];
        }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
        const float sum = warpSum(acc[r]);
        if (lane == 0 && r < rows) y[(r0 + r) * w.rows + n] = activate(sum + (bias ? bias[n] : 0.0f), act);
    }
}

// Code i (0-based, in k order) of a 32-bit word, minus its zero point, as a float, without a conversion
// instruction: the code is or-ed into the mantissa of 2^23 and magic = 2^23 + zero (+ 128 for int8, whose
// codes are biased to unsigned by the xor) subtracted: two full-rate instructions, exact for these integers.
template <WeightFormat F>
__device__ __forceinline__ float codeMinusZero(std::uint32_t word, int i, float magic, const float* codebook) {
    if constexpr (F == WeightFormat::Int8) {
        return __uint_as_float(0x4B000000u | (((word >> (8 * i)) & 0xFFu) ^ 0x80u)) - magic;
    } else if constexpr (F == WeightFormat::Fp8) {
        return fp8Value((word >> (8 * i)) & 0xFFu);
    } else if constexpr (F == WeightFormat::Int4) {
        return __uint_as_float(0x4B000000u | ((word >> (4 * i)) & 0xFu)) - magic;
    } else {
        return codebook[(word >> (4 * i)) & 0xFu];
    }
}

// The batch-1 (and few-row) GEMV where the codes load 16 bytes at a time (rows 16-byte aligned, K and the
// group multiples of the codes in one load, x 16-byte aligned): memory-bound on the codes, so each warp takes
// kRowsPerWarp output rows and each lane a 16-byte chunk of each of them per step, reusing the chunk's x
// (loaded as float4 through the read-only path, no staging) across the rows: 2 bytes of x from L1 per byte of
// codes from memory instead of 8. R rows of x per block row (grid.y covers the rest).
constexpr int kFastRowsPerWarp = 4;
constexpr int kFastWarps = 8;
// x staged per block for the batch-1 GEMV up to K = 16384 and a little more (73.7 KB for int4 there): with the
// registers' three blocks per multiprocessor it fits the 228 KB of shared memory.
constexpr std::int64_t kMaxFastSharedX = 74 * 1024;
constexpr int kMaxDevices = 64;

//
// kSharedX (batch 1, x small enough): the block first copies x into shared memory with coalesced loads, each
// chunk's kPer / 4 float4 followed by one float4 of padding, so that the eight lanes of each quarter-warp
// phase, reading chunks j..j+7, fall in eight different bank groups. Read straight from global memory, each
// lane's float4 lies 128 bytes from its neighbour's: 32 separate L1 wavefronts per load, which Nsight Compute
// showed as the limit (L1/TEX 86% busy, DRAM 29%).
template <WeightFormat F, int R, bool kSharedX>
__global__ void __launch_bounds__(kFastWarps * kWarp)
    weight_only_gemv_fast_kernel(const float* __restrict__ x, WeightOnlyView w, const float* __restrict__ bias,
                                 Activation act, float* __restrict__ y, std::int64_t m) {
    constexpr int kPer = kByteCodes<F> ? 16 : 32; // codes per 16-byte load
    constexpr int kPerWord = kPer / 4;
    constexpr int kV = kPer / 4; // float4 of x per chunk
    extern __shared__ float4 xsh[];
    __shared__ float codebook[16];
    if (threadIdx.x < 16) codebook[threadIdx.x] = kCodebook[threadIdx.x];
    if constexpr (kSharedX) {
        const float4* x4 = reinterpret_cast<const float4*>(x + static_cast<std::int64_t>(blockIdx.y) * R * w.k);
        for (std::int64_t t = threadIdx.x; t < w.k / 4; t += blockDim.x) xsh[(t / kV) * (kV + 1) + t % kV] = x4[t];
    }
    __syncthreads();
    const int lane = threadIdx.x % kWarp;
    const std::int64_t n0 =
        (static_cast<std::int64_t>(blockIdx.x) * kFastWarps + threadIdx.x / kWarp) * kFastRowsPerWarp;
    if (n0 >= w.rows) return; // the whole warp leaves together
    const std::int64_t r0 = static_cast<std::int64_t>(blockIdx.y) * R;
    const int rows = static_cast<int>(m - r0 < R ? m - r0 : R);
    const std::int64_t chunks = w.rowBytes / 16;
    float acc[kFastRowsPerWarp][R] = {};
    for (std::int64_t j = lane; j < chunks; j += kWarp) {
        const std::int64_t k0 = j * kPer, g = k0 / w.group;
        uint4 q[kFastRowsPerWarp];
        float scale[kFastRowsPerWarp], magic[kFastRowsPerWarp];
#pragma unroll
        for (int i = 0; i < kFastRowsPerWarp; ++i) {
            const std::int64_t n = n0 + i;
            const bool in = n < w.rows;
            q[i] = in ? __ldg(reinterpret_cast<const uint4*>(w.codes + n * w.rowBytes) + j) : make_uint4(0, 0, 0, 0);
            scale[i] = in ? __ldg(w.scales + n * w.groups + g) : 0.0f;
            const int zero = F == WeightFormat::Int4 ? (in ? zeroOf(w, n, g) : 0) : 0;
            magic[i] = 8388608.0f + static_cast<float>(zero) + (F == WeightFormat::Int8 ? 128.0f : 0.0f);
        }
#pragma unroll
        for (int r = 0; r < R; ++r) {
            if (r >= rows) break;
            const float4* xv = kSharedX ? xsh + j * (kV + 1) : reinterpret_cast<const float4*>(x + (r0 + r) * w.k + k0);
            float part[kFastRowsPerWarp] = {};
            // One 32-bit word of codes at a time: its kPerWord values of x (two float4, or one for int8) stay in
            // registers for the kFastRowsPerWarp rows, so few registers are live and many warps fit.
#pragma unroll
            for (int wd = 0; wd < 4; ++wd) {
                float xs[kPerWord];
#pragma unroll
                for (int v = 0; v < kPerWord / 4; ++v) {
                    float4 t;
                    if constexpr (kSharedX) t = xv[wd * (kPerWord / 4) + v];
                    else t = __ldg(xv + wd * (kPerWord / 4) + v);
                    xs[4 * v] = t.x, xs[4 * v + 1] = t.y, xs[4 * v + 2] = t.z, xs[4 * v + 3] = t.w;
                }
#pragma unroll
                for (int i = 0; i < kFastRowsPerWarp; ++i) {
                    const std::uint32_t word = wd == 0 ? q[i].x : wd == 1 ? q[i].y : wd == 2 ? q[i].z : q[i].w;
#pragma unroll
                    for (int c = 0; c < kPerWord; ++c)
                        part[i] += codeMinusZero<F>(word, c, magic[i], codebook) * xs[c];
                }
            }
#pragma unroll
            for (int i = 0; i < kFastRowsPerWarp; ++i) acc[i][r] += scale[i] * part[i];
        }
    }
#pragma unroll
    for (int i = 0; i < kFastRowsPerWarp; ++i)
#pragma unroll
        for (int r = 0; r < R; ++r) {
            const float sum = warpSum(acc[i][r]);
            const std::int64_t n = n0 + i;
            if (lane == 0 && r < rows && n < w.rows)
                y[(r0 + r) * w.rows + n] = activate(sum + (bias ? bias[n] : 0.0f), act);
        }
}

// out (rows, K) = the f32 values of W's rows [n0, n0 + rows), one thread per value.
template <WeightFormat F>
__global__ void weight_only_dequant_kernel(WeightOnlyView w, std::int64_t n0, std::int64_t rows, float* out) {
    const std::int64_t total = rows * w.k;
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
        const std::int64_t n = n0 + i / w.k, k = i % w.k, g = k / w.group;
        const int zero = F == WeightFormat::Int4 ? zeroOf(w, n, g) : 0;
        out[i] = w.scales[n * w.groups + g] * decodeAt<F>(w.codes + n * w.rowBytes, k, zero, kCodebook);
    }
}

// The same values where the codes load 16 bytes at a time (as for the fast GEMV): one thread per 16-byte chunk
// of codes, kPer values decoded without conversion instructions and stored as float4; the row and group come
// from one division per chunk instead of one per value.
template <WeightFormat F>
__global__ void weight_only_dequant_vec_kernel(WeightOnlyView w, std::int64_t n0, std::int64_t rows, float* out) {
    constexpr int kPer = kByteCodes<F> ? 16 : 32, kPerWord = kPer / 4;
    __shared__ float codebook[16];
    if (threadIdx.x < 16) codebook[threadIdx.x] = kCodebook[threadIdx.x];
    __syncthreads();
    const std::int64_t perRow = w.rowBytes / 16, total = rows * perRow;
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
        const std::int64_t r = i / perRow, j = i % perRow, n = n0 + r, g = j * kPer / w.group;
        const uint4 q = __ldg(reinterpret_cast<const uint4*>(w.codes + n * w.rowBytes) + j);
        const float scale = w.scales[n * w.groups + g];
        const int zero = F == WeightFormat::Int4 ? zeroOf(w, n, g) : 0;
        const float magic = 8388608.0f + static_cast<float>(zero) + (F == WeightFormat::Int8 ? 128.0f : 0.0f);
        float4* dst = reinterpret_cast<float4*>(out + r * w.k + j * kPer);
        const std::uint32_t words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int wd = 0; wd < 4; ++wd)
#pragma unroll
            for (int c = 0; c < kPerWord; c += 4) {
                float4 v;
                v.x = scale * codeMinusZero<F>(words[wd], c, magic, codebook);
                v.y = scale * codeMinusZero<F>(words[wd], c + 1, magic, codebook);
                v.z = scale * codeMinusZero<F>(words[wd], c + 2, magic, codebook);
                v.w = scale * codeMinusZero<F>(words[wd], c + 3, magic, codebook);
                dst[(wd * kPerWord + c) / 4] = v;
            }
    }
}

__global__ void bias_activation_kernel(float* y, std::int64_t rows, std::int64_t cols, std::int64_t ldy,
                                       const float* bias, Activation act) {
    const std::int64_t total = rows * cols;
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < total;
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
        const std::int64_t r = i / cols, c = i % cols;
        float& v = y[r * ldy + c];
        v = activate(v + (bias ? bias[c] : 0.0f), act);
    }
}

template <WeightFormat F, int R>
void launchGemv(const float* x, const WeightOnlyView& w, const float* bias, Activation act, float* y,
                std::int64_t m, cudaStream_t stream) {
    constexpr int kCodesPerLoad = kByteCodes<F> ? 16 : 32;
    const bool vector = w.rowBytes % 16 == 0 && w.k % kCodesPerLoad == 0 &&
                        (w.group % kCodesPerLoad == 0 || w.group >= w.k) &&
                        reinterpret_cast<std::uintptr_t>(w.codes) % 16 == 0;
    const std::int64_t sharedBytes = R * ((w.k + (w.k >> 5)) + 1) * static_cast<std::int64_t>(sizeof(float));
    const bool sharedX = sharedBytes <= kMaxSharedX;
    const std::int64_t batchBlocks = (m + R - 1) / R;
    if (batchBlocks > 65535) throw BackendError("cuda gemm_weight_only: too many rows of x for the GEMV");
    const dim3 grid(static_cast<unsigned>((w.rows + kWarpsPerBlock - 1) / kWarpsPerBlock),
                    static_cast<unsigned>(batchBlocks));
    const std::size_t smem = sharedX ? static_cast<std::size_t>(sharedBytes) : 0;
    if (vector && reinterpret_cast<std::uintptr_t>(x) % 16 == 0) {
        const dim3 fastGrid(static_cast<unsigned>((w.rows + kFastWarps * kFastRowsPerWarp - 1) /
                                                  (kFastWarps * kFastRowsPerWarp)),
                            static_cast<unsigned>(batchBlocks));
        constexpr int kV = kCodesPerLoad / 4;
        const std::int64_t xBytes = (w.k / kCodesPerLoad) * (kV + 1) * 16; // x's chunks, padded
        if (R == 1 && xBytes <= kMaxFastSharedX) {
            auto* kernel = &weight_only_gemv_fast_kernel<F, R, true>;
            // More than 48 KB of dynamic shared memory is opted into per kernel and device, once.
            static std::atomic<bool> raised[kMaxDevices] = {};
            int device = 0;
            LATHE_CUDA_CHECK(cudaGetDevice(&device));
            if (device >= kMaxDevices || !raised[device].load(std::memory_order_acquire)) {
                LATHE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                      static_cast<int>(kMaxFastSharedX)));
                if (device < kMaxDevices) raised[device].store(true, std::memory_order_release);
            }
            kernel<<<fastGrid, kFastWarps * kWarp, static_cast<std::size_t>(xBytes), stream>>>(x, w, bias, act, y,
                                                                                              m); // (M, N)
        } else {
            weight_only_gemv_fast_kernel<F, R, false><<<fastGrid, kFastWarps * kWarp, 0, stream>>>(x, w, bias, act,
                                                                                                  y, m); // (M, N)
        }
        LATHE_CUDA_CHECK_LAUNCH("weight_only_gemv_fast_kernel");
        return;
    }
    if (vector)
        weight_only_gemv_kernel<F, R, true><<<grid, kWarpsPerBlock * kWarp, smem, stream>>>(x, w, bias, act, y, m,
                                                                                          sharedX); // (M, N)
    else
        weight_only_gemv_kernel<F, R, false><<<grid, kWarpsPerBlock * kWarp, smem, stream>>>(x, w, bias, act, y, m,
                                                                                           sharedX); // (M, N)
    LATHE_CUDA_CHECK_LAUNCH("weight_only_gemv_kernel");
}

template <WeightFormat F>
void launchGemvRows(const float* x, const WeightOnlyView& w, const float* bias, Activation act, float* y,
                    std::int64_t m, cudaStream_t stream) {
    if (m == 1) launchGemv<F, 1>(x, w, bias, act, y, m, stream);
    else launchGemv<F, kRowsPerPass>(x, w, bias, act, y, m, stream);
}

} // namespace

void launchWeightOnlyGemv(const float* x, const WeightOnlyView& w, const float* bias, Activation act, float* y,
                          std::int64_t m, cudaStream_t stream) {
    if (m == 0 || w.rows == 0) return;
    switch (w.format) {
    case WeightFormat::Int8: return launchGemvRows<WeightFormat::Int8>(x, w, bias, act, y, m, stream);
    case WeightFormat::Int4: return launchGemvRows<WeightFormat::Int4>(x, w, bias, act, y, m, stream);
    case WeightFormat::Nf4: return launchGemvRows<WeightFormat::Nf4>(x, w, bias, act, y, m, stream);
    case WeightFormat::Fp8: return launchGemvRows<WeightFormat::Fp8>(x, w, bias, act, y, m, stream);
    }
}

void launchWeightOnlyDequant(const WeightOnlyView& w, std::int64_t n0, std::int64_t rows, float* out,
                             cudaStream_t stream) {
    if (rows == 0) return;
    const int per = w.format == WeightFormat::Int8 || w.format == WeightFormat::Fp8 ? 16 : 32;
    const bool vector = w.rowBytes % 16 == 0 && w.k % per == 0 && (w.group % per == 0 || w.group >= w.k) &&
                        reinterpret_cast<std::uintptr_t>(w.codes) % 16 == 0 &&
                        reinterpret_cast<std::uintptr_t>(out) % 16 == 0;
    if (vector) {
        const unsigned vgrid = gridFor(rows * (w.rowBytes / 16));
        switch (w.format) {
        case WeightFormat::Int8:
            weight_only_dequant_vec_kernel<WeightFormat::Int8><<<vgrid, kBlock, 0, stream>>>(w, n0, rows, out);
            break;
        case WeightFormat::Int4:
            weight_only_dequant_vec_kernel<WeightFormat::Int4><<<vgrid, kBlock, 0, stream>>>(w, n0, rows, out);
            break;
        case WeightFormat::Nf4:
            weight_only_dequant_vec_kernel<WeightFormat::Nf4><<<vgrid, kBlock, 0, stream>>>(w, n0, rows, out);
            break;
        case WeightFormat::Fp8:
            weight_only_dequant_vec_kernel<WeightFormat::Fp8><<<vgrid, kBlock, 0, stream>>>(w, n0, rows, out);
            break;
        }
        LATHE_CUDA_CHECK_LAUNCH("weight_only_dequant_vec_kernel"); // (rows, K)
        return;
    }
    const unsigned grid = gridFor(rows * w.k);
    switch (w.format) {
    case WeightFormat::Int8:
        weight_only_dequant_kernel<WeightFormat::Int8><<<grid, kBlock, 0, stream>>>(w, n0, rows, out); // (rows, K)
        break;
    case WeightFormat::Int4:
        weight_only_dequant_kernel<WeightFormat::Int4><<<grid, kBlock, 0, stream>>>(w, n0, rows, out); // (rows, K)
        break;
    case WeightFormat::Nf4:
        weight_only_dequant_kernel<WeightFormat::Nf4><<<grid, kBlock, 0, stream>>>(w, n0, rows, out); // (rows, K)
        break;
    case WeightFormat::Fp8:
        weight_only_dequant_kernel<WeightFormat::Fp8><<<grid, kBlock, 0, stream>>>(w, n0, rows, out); // (rows, K)
        break;
    }
    LATHE_CUDA_CHECK_LAUNCH("weight_only_dequant_kernel");
}

void launchBiasActivation(float* y, std::int64_t rows, std::int64_t cols, std::int64_t ldy, const float* bias,
                          Activation act, cudaStream_t stream) {
    if (rows == 0 || cols == 0 || (!bias && act == Activation::None)) return;
    bias_activation_kernel<<<gridFor(rows * cols), kBlock, 0, stream>>>(y, rows, cols, ldy, bias, act); // (rows, cols)
    LATHE_CUDA_CHECK_LAUNCH("bias_activation_kernel");
}

} // namespace lathe::cuda

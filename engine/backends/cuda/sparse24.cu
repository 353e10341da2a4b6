// The CUDA backend's 2:4 sparse-weight product: y (N, out) = x (N, in) @ W^T with W in the 2:4 format of
// sparse24.h. This is a kernel of our own on the ordinary FP32 cores: cuSPARSELt (which drives the sparse
// tensor cores) is not used, so it multiplies half the weights of a dense GEMM but does not run on the
// hardware's 2:4 path.
#include "engine/backends/cuda/cuda_device.cuh"
#include "engine/backends/cuda/cuda_kernels.h"
#include "engine/backends/sparse24.h"

namespace lathe::cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 4; // one output row per warp
constexpr int kBatchPerWarp = 4;  // batch rows a warp sums at once, reusing each decoded group

// Warp w of block (bx, by) owns output row o = bx * kWarpsPerBlock + w; its lanes stride over the row's
// groups, decode each group's two positions once and add both products for kBatchPerWarp batch rows,
// then the warp sums the lanes' partials. Positions past the last column (a malformed last group) are
// skipped rather than read.
__global__ void spmm24_kernel(const float* x, const float* values, const std::uint8_t* meta, float* y,
                              std::int64_t n, std::int64_t in, std::int64_t out, std::int64_t groups,
                              std::int64_t metaPerRow) {
    const int lane = threadIdx.x % kWarp;
    const std::int64_t o = static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
    if (o >= out) return; // the whole warp leaves together
    const float* v = values + o * 2 * groups;   // (2 * groups)
    const std::uint8_t* m = meta + o * metaPerRow; // (metaPerRow)
    for (std::int64_t r0 = static_cast<std::int64_t>(blockIdx.y) * kBatchPerWarp; r0 < n;
         r0 += static_cast<std::int64_t>(gridDim.y) * kBatchPerWarp) {
        float acc[kBatchPerWarp] = {};
        for (std::int64_t g = lane; g < groups; g += kWarp) {
            const int nibble = (m[g >> 1] >> (4 * (g & 1))) & 0xf;
            std::int64_t c0 = 4 * g + (nibble & 3), c1 = 4 * g + (nibble >> 2);
            float v0 = v[2 * g], v1 = v[2 * g + 1];
            if (c0 >= in) { c0 = 0; v0 = 0.0f; }
            if (c1 >= in) { c1 = 0; v1 = 0.0f; }
#pragma unroll
            for (int i = 0; i < kBatchPerWarp; ++i) {
                const std::int64_t r = r0 + i;
                if (r < n) acc[i] += v0 * x[r * in + c0] + v1 * x[r * in + c1];
            }
        }
#pragma unroll
        for (int i = 0; i < kBatchPerWarp; ++i) {
            const float sum = warpSum(acc[i]);
            if (lane == 0 && r0 + i < n) y[(r0 + i) * out + o] = sum;
        }
    }
}

} // namespace

void launchSpmm24(const float* x, const float* values, const std::uint8_t* meta, float* y, std::int64_t n,
                  std::int64_t in, std::int64_t out, cudaStream_t stream) {
    if (n == 0 || out == 0) return;
    const std::int64_t groups = sparse24Groups(in), metaPerRow = sparse24MetaBytesPerRow(in);
    const std::int64_t batchBlocks = (n + kBatchPerWarp - 1) / kBatchPerWarp;
    const dim3 grid(static_cast<unsigned>((out + kWarpsPerBlock - 1) / kWarpsPerBlock),
                    static_cast<unsigned>(batchBlocks > 65535 ? 65535 : batchBlocks));
    spmm24_kernel<<<grid, kWarpsPerBlock * kWarp, 0, stream>>>(x, values, meta, y, n, in, out, groups,
                                                               metaPerRow); // (N, out)
    LATHE_CUDA_CHECK_LAUNCH("spmm24_kernel");
}

} // namespace lathe::cuda

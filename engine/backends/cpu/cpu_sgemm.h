// The CPU backend's own f32 GEMM for y (M, N) = act(x (M, K) @ W^T + bias), W (N, K) row-major as a Linear
// stores it: the product of every dense f32 Linear's forward (gemm with W transposed, and gemm_bias_act) from
// two rows up. AVX-512 only (elsewhere, for one row, and for every other transpose, OpenBLAS runs it): W is
// packed per call into 32-column panels, a 12 x 32 tile of sums stays in 24 zmm over the whole of K, and the
// bias and activation are applied as the tile is stored, while it is in registers. Each output element is
// one sum over k in order, so the result does not depend on how rows and panels are split between threads.
#pragma once

#include "engine/backends/backend.h"

#include <cstdint>
#include <functional>

namespace lathe::cpu {

// Whether this CPU (and OS) runs the kernel: AVX-512F.
bool ownSgemmAvailable();
// Whether CpuBackend::sgemm takes it for x @ W^T (process-wide): where available, unless the environment says
// LATHE_CPU_SGEMM=openblas. Tests and benchmarks switch it to run both; enabling it where it is not available
// throws BackendError.
bool ownSgemmEnabled();
void setOwnSgemmEnabled(bool enabled);

// Floats of W's packed copy (N rounded up to 32, times K), which the calling thread keeps for its next call. The
// backend packs at most kSgemmNtMaxPacked floats (16 MB) at once: a larger W (a 4096 x 4096 layer) goes to
// OpenBLAS, which packs in blocks, or, where the backend splits the product into column panels, each panel to
// this kernel.
std::int64_t sgemmNtPackedFloats(std::int64_t n, std::int64_t k);
constexpr std::int64_t kSgemmNtMaxPacked = std::int64_t(1) << 22;

// y[i][j] = act(sum_k x[i][k] w[j][k] + bias[j]); bias (N) or null; act None, Relu or Gelu (GELU exact, as
// geluExact). `forChunks(count, fn)` runs fn(0 .. count - 1), on any threads.
void sgemmNt(std::int64_t m, std::int64_t n, std::int64_t k, const float* x, std::int64_t ldx, const float* w,
             std::int64_t ldw, float* y, std::int64_t ldy, const float* bias, Activation act,
             const std::function<void(std::int64_t, const std::function<void(std::int64_t)>&)>& forChunks);

// y[i][j] = act(sum_k x[i][k] b[k][j] + bias[j]), B (K, N) row-major with row stride ldb, read in place (its
// rows already hold what a packed panel does); the same tiles, sums and epilogue as sgemmNt.
void sgemmNn(std::int64_t m, std::int64_t n, std::int64_t k, const float* x, std::int64_t ldx, const float* b,
             std::int64_t ldb, float* y, std::int64_t ldy, const float* bias, Activation act,
             const std::function<void(std::int64_t, const std::function<void(std::int64_t)>&)>& forChunks);

} // namespace lathe::cpu

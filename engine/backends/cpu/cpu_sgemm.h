// The CPU backend's own f32 GEMM: y = act(beta y + op(A) op(B) + bias) with alpha 1 and beta 0 or 1, every
// transpose: a dense f32 Linear's forward (x W^T, and gemm_bias_act), its input gradient (dy W) and its weight
// gradient (dy^T x, accumulated), a convolution's forward over its im2col columns, attention's P V. AVX-512 only
// (elsewhere, and for one row or one column, OpenBLAS runs them): B is read in 32-column panels, in place or
// packed from W per call (or once, for inference: sgemmPackNt, sgemmPackNt16), a 12 x 32 tile of sums stays in
// 24 zmm over the whole of K, and the bias and activation are applied as the tile is stored, while it is in
// registers. Each output element is one sum over k in order, so the result does not depend on how rows and panels
// are split between threads.
#pragma once

#include "engine/backends/backend.h"

#include <cstdint>
#include <functional>

namespace lathe::cpu {

// Whether this CPU (and OS) runs the kernel: AVX-512F.
bool ownSgemmAvailable();
// Whether the backend's GEMMs take it (process-wide): where available, unless the environment says
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

using ChunkRunner = std::function<void(std::int64_t, const std::function<void(std::int64_t)>&)>;

// y (M, N) = act(beta * y + op(A) @ op(B) + bias), beta 1 if `accumulate` else 0 (alpha is 1). op(A) (M, K): A
// row-major with row stride lda, or with `ta` A stored (K, M). op(B) (K, N): B row-major (K, N), read in place,
// or with `tb` B stored (N, K) (a Linear's W), packed first. bias (N) or null; act None, Relu or Gelu (GELU exact,
// as geluExact). Each y[i][j] is one sum in k order (from y's value when accumulating), so the result does not
// depend on the split. `forChunks(count, fn)` runs fn(0 .. count - 1), on any threads.
void sgemmOwn(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const float* a, std::int64_t lda,
              const float* b, std::int64_t ldb, bool accumulate, float* y, std::int64_t ldy, const float* bias,
              Activation act, const ChunkRunner& forChunks);

// W (N, K) laid out once as the kernel reads it, sgemmNtPackedFloats(n, k) floats at `packed`: what sgemmOwn does to
// W on every call with `tb`, kept for many calls (Backend::prepackGemmWeight).
void sgemmPackNt(std::int64_t n, std::int64_t k, const float* w, std::int64_t ldw, float* packed);
// y (M, N) = act(A (M, K) @ W^T + bias) from W packed by sgemmPackNt: sgemmOwn with `tb` and beta 0, the same sums.
void sgemmOwnPackedNt(std::int64_t m, std::int64_t n, std::int64_t k, const float* a, std::int64_t lda,
                      const float* packed, float* y, std::int64_t ldy, const float* bias, Activation act,
                      const ChunkRunner& forChunks);
// The same for a 16-bit weight, f16 or (with `bf16`) bf16 codes (N, K): packed once into the same panels of 16-bit
// elements (zeros past N), widened to f32 in registers as the kernel loads them (exactly), so the sums are those of
// sgemmOwnPackedNt on the widened weight, with half the bytes to read; each sum is then rounded to the weight's
// format, as the 16-bit GEMM's output is, before the bias and the activation: y = act(round(A W^T) + bias). Any M
// from 1.
void sgemmPackNt16(std::int64_t n, std::int64_t k, const std::uint16_t* w, std::int64_t ldw, std::uint16_t* packed);
void sgemmOwnPackedNt16(bool bf16, std::int64_t m, std::int64_t n, std::int64_t k, const float* a, std::int64_t lda,
                        const std::uint16_t* packed, float* y, std::int64_t ldy, const float* bias, Activation act,
                        const ChunkRunner& forChunks);

} // namespace lathe::cpu

// Multi-head scaled-dot-product attention on the GPU, F32: the fused forward (one kernel: tiles of 32 keys and
// values in shared memory, an online softmax per query row, FlashAttention-style), the masked softmax of the
// unfused reference path (its GEMMs are cuBLAS, ops_attention.cpp), and the backward kernels (dq per query row,
// dk and dv per key row, recomputing the probabilities from the forward's log-sum-exp). Also the mean pooling
// over valid steps and the row L2 normalisation of sentence embeddings.
#include "engine/backends/cuda/cuda_device.cuh"
#include "engine/backends/cuda/cuda_kernels.h"

namespace lathe::cuda {
namespace {

constexpr int kTileKeys = 32; // keys per shared-memory tile: one per lane when scoring
constexpr int kWarpsPerBlock = 4;

// Keys sequence n's queries may see at all (right padding), and those query i sees.
__device__ __forceinline__ std::int64_t keysOf(const AttentionLaunch& a, const std::int32_t* lens, std::int64_t n) {
    if (!lens) return a.keyLen;
    const std::int64_t l = lens[n];
    return l < 0 ? 0 : (l > a.keyLen ? a.keyLen : l);
}
__device__ __forceinline__ std::int64_t visibleOf(const AttentionLaunch& a, std::int64_t keys, std::int64_t i) {
    if (!a.causal) return keys;
    const std::int64_t c = a.keyLen - a.queryLen + i + 1;
    return c < keys ? c : keys;
}

// grid (ceil(Tq / 4), H, N), 4 warps: one query row per warp. q, k, v as AttentionLaunch lays them out;
// out (N, Tq, H * Dh), lse (N, H, Tq). Shared: the block's 4 query rows and one tile of K and V (rows padded
// by one float so that lane j reading key j's row does not hit one bank). PER_LANE = ceil(Dh / 32).
template <int PER_LANE>
__global__ void attention_forward_fused_kernel(const float* q, const float* k, const float* v,
                                               const std::int32_t* lens, float* out, float* lse, AttentionLaunch a) {
    extern __shared__ float smem[];
    const int dh = static_cast<int>(a.headDim), ld = dh + 1;
    float* qs = smem;                                // (4, Dh + 1)
    float* ks = qs + kWarpsPerBlock * ld;            // (32, Dh + 1)
    float* vs = ks + kTileKeys * ld;                 // (32, Dh + 1)
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const std::int64_t n = blockIdx.z, h = blockIdx.y;
    const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + warp;
    const bool active = i < a.queryLen;
    const std::int64_t keys = keysOf(a, lens, n);
    const float* kBase = k + n * a.kRows * a.kStride + a.kOffset + h * dh;
    const float* vBase = v + n * a.vRows * a.vStride + a.vOffset + h * dh;
    if (active) {
        const float* qRow = q + (n * a.qRows + i) * a.qStride + a.qOffset + h * dh;
        for (int c = lane; c < dh; c += 32) qs[warp * ld + c] = qRow[c] * a.scale;
    }
    // The block's last query bounds the keys any of its rows sees.
    const std::int64_t blockEnd = static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + kWarpsPerBlock;
    const std::int64_t lastRow = (blockEnd < a.queryLen ? blockEnd : a.queryLen) - 1;
    const std::int64_t blockKeys = visibleOf(a, keys, lastRow);
    const std::int64_t vis = active ? visibleOf(a, keys, i) : 0;
    float acc[PER_LANE];
#pragma unroll
    for (int r = 0; r < PER_LANE; ++r) acc[r] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    for (std::int64_t t0 = 0; t0 < blockKeys; t0 += kTileKeys) {
        __syncthreads(); // the previous tile is consumed (and qs is written before the first)
        for (int e = threadIdx.x; e < kTileKeys * dh; e += blockDim.x) {
            const int r = e / dh, c = e % dh;
            const std::int64_t j = t0 + r;
            const bool in = j < blockKeys;
            ks[r * ld + c] = in ? kBase[j * a.kStride + c] : 0.0f;
            vs[r * ld + c] = in ? vBase[j * a.vStride + c] : 0.0f;
        }
        __syncthreads();
        if (!active || t0 >= vis) continue; // uniform per warp
        // Lane j scores key t0 + j.
        const std::int64_t j = t0 + lane;
        float s = -INFINITY;
        if (j < vis) {
            float d = 0.0f;
            for (int c = 0; c < dh; ++c) d += qs[warp * ld + c] * ks[lane * ld + c];
            s = d;
        }
        const float mNew = fmaxf(m, warpMax(s)); // finite: key t0 < vis is visible
        const float p = j < vis ? expf(s - mNew) : 0.0f;
        const float corr = expf(m - mNew); // 0 on the first tile (m = -inf)
        l = l * corr + warpSum(p);
#pragma unroll
        for (int r = 0; r < PER_LANE; ++r) acc[r] *= corr;
        const std::int64_t left = vis - t0;
        const int tileVisible = left < kTileKeys ? static_cast<int>(left) : kTileKeys;
        for (int jj = 0; jj < tileVisible; ++jj) {
            const float pj = __shfl_sync(0xffffffffu, p, jj);
#pragma unroll
            for (int r = 0; r < PER_LANE; ++r) {
                const int c = lane + 32 * r;
                if (c < dh) acc[r] += pj * vs[jj * ld + c];
            }
        }
        m = mNew;
    }
    if (!active) return;
    float* oRow = out + (n * a.queryLen + i) * (a.heads * dh) + h * dh;
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
    for (int r = 0; r < PER_LANE; ++r) {
        const int c = lane + 32 * r;
        if (c < dh) oRow[c] = acc[r] * inv;
    }
    if (lane == 0) lse[(n * a.heads + h) * a.queryLen + i] = l > 0.0f ? m + logf(l) : -INFINITY;
}

// The unfused path's softmax over scores s (H, Tq, Tk) of sequence n, in place: masked entries become 0, lse
// (H, Tq) of that sequence receives each row's log-sum-exp (-inf for a row that sees no key). One block per row.
__global__ void attention_masked_softmax_kernel(float* s, float* lse, const std::int32_t* lens, std::int64_t n,
                                                AttentionLaunch a) {
    __shared__ float scratch[32];
    const std::int64_t row = blockIdx.x; // h * Tq + i
    const std::int64_t i = row % a.queryLen;
    const std::int64_t vis = visibleOf(a, keysOf(a, lens, n), i);
    float* r = s + row * a.keyLen;
    float mx = -INFINITY;
    for (std::int64_t j = threadIdx.x; j < vis; j += blockDim.x) mx = fmaxf(mx, r[j]);
    mx = blockMax(mx, scratch);
    float sum = 0.0f;
    for (std::int64_t j = threadIdx.x; j < vis; j += blockDim.x) sum += expf(r[j] - mx);
    sum = blockSum(sum, scratch);
    const float rowLse = vis > 0 ? mx + logf(sum) : -INFINITY;
    for (std::int64_t j = threadIdx.x; j < a.keyLen; j += blockDim.x) r[j] = j < vis ? expf(r[j] - rowLse) : 0.0f;
    if (threadIdx.x == 0) lse[row] = rowLse;
}

// Dot product of a Dh-long row held PER_LANE values per lane with one in memory, summed over the warp.
template <int PER_LANE>
__device__ __forceinline__ float warpDot(const float (&reg)[PER_LANE], const float* row, int dh, int lane) {
    float d = 0.0f;
#pragma unroll
    for (int r = 0; r < PER_LANE; ++r) {
        const int c = lane + 32 * r;
        if (c < dh) d += reg[r] * row[c];
    }
    return warpSum(d);
}

template <int PER_LANE>
__device__ __forceinline__ void loadRow(float (&reg)[PER_LANE], const float* row, int dh, int lane, float s = 1.0f) {
#pragma unroll
    for (int r = 0; r < PER_LANE; ++r) {
        const int c = lane + 32 * r;
        reg[r] = c < dh ? row[c] * s : 0.0f;
    }
}

// delta (N, H, Tq) = dO_i . O_i per row (the softmax Jacobian's row term). One warp per row.
template <int PER_LANE>
__global__ void attention_backward_delta_kernel(const float* dout, const float* out, float* delta, AttentionLaunch a) {
    const int lane = threadIdx.x & 31;
    const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
    const std::int64_t rows = a.batch * a.heads * a.queryLen;
    if (row >= rows) return;
    const std::int64_t i = row % a.queryLen, nh = row / a.queryLen, h = nh % a.heads, n = nh / a.heads;
    const int dh = static_cast<int>(a.headDim);
    const std::int64_t off = (n * a.queryLen + i) * (a.heads * dh) + h * dh;
    float o[PER_LANE];
    loadRow<PER_LANE>(o, out + off, dh, lane);
    const float d = warpDot<PER_LANE>(o, dout + off, dh, lane);
    if (lane == 0) delta[row] = d;
}

// dq of one query row per warp: dq_i = scale * sum_j p_ij (dp_ij - delta_i) k_j, p recomputed from lse.
template <int PER_LANE>
__global__ void attention_backward_dq_kernel(const float* q, const float* k, const float* v, const std::int32_t* lens,
                                             const float* dout, const float* lse, const float* delta, float* dq,
                                             AttentionLaunch a) {
    const int lane = threadIdx.x & 31;
    const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
    if (row >= a.batch * a.heads * a.queryLen) return;
    const std::int64_t i = row % a.queryLen, nh = row / a.queryLen, h = nh % a.heads, n = nh / a.heads;
    const int dh = static_cast<int>(a.headDim);
    const std::int64_t vis = visibleOf(a, keysOf(a, lens, n), i);
    float qr[PER_LANE], g[PER_LANE], acc[PER_LANE];
    loadRow<PER_LANE>(qr, q + (n * a.qRows + i) * a.qStride + a.qOffset + h * dh, dh, lane, a.scale);
    loadRow<PER_LANE>(g, dout + (n * a.queryLen + i) * (a.heads * dh) + h * dh, dh, lane);
#pragma unroll
    for (int r = 0; r < PER_LANE; ++r) acc[r] = 0.0f;
    const float rowLse = lse[row], di = delta[row];
    const float* kBase = k + n * a.kRows * a.kStride + a.kOffset + h * dh;
    const float* vBase = v + n * a.vRows * a.vStride + a.vOffset + h * dh;
    for (std::int64_t j = 0; j < vis; ++j) {
        const float* kr = kBase + j * a.kStride;
        const float p = expf(warpDot<PER_LANE>(qr, kr, dh, lane) - rowLse);
        const float ds = p * (warpDot<PER_LANE>(g, vBase + j * a.vStride, dh, lane) - di);
#pragma unroll
        for (int r = 0; r < PER_LANE; ++r) {
            const int c = lane + 32 * r;
            if (c < dh) acc[r] += ds * kr[c];
        }
    }
    float* dqRow = dq + (n * a.qRows + i) * a.qStride + a.qOffset + h * dh;
#pragma unroll
    for (int r = 0; r < PER_LANE; ++r) {
        const int c = lane + 32 * r;
        if (c < dh) dqRow[c] = acc[r] * a.scale;
    }
}

// dk, dv of one key row per warp: dv_j = sum_i p_ij dO_i, dk_j = scale * sum_i p_ij (dp_ij - delta_i) q_i, over
// the queries that see key j. Masked keys get zeros.
template <int PER_LANE>
__global__ void attention_backward_dkdv_kernel(const float* q, const float* k, const float* v, const std::int32_t* lens,
                                               const float* dout, const float* lse, const float* delta, float* dk,
                                               float* dv, AttentionLaunch a) {
    const int lane = threadIdx.x & 31;
    const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
    if (row >= a.batch * a.heads * a.keyLen) return;
    const std::int64_t j = row % a.keyLen, nh = row / a.keyLen, h = nh % a.heads, n = nh / a.heads;
    const int dh = static_cast<int>(a.headDim);
    const std::int64_t keys = keysOf(a, lens, n);
    float kr[PER_LANE], vr[PER_LANE], dka[PER_LANE], dva[PER_LANE];
    loadRow<PER_LANE>(kr, k + (n * a.kRows + j) * a.kStride + a.kOffset + h * dh, dh, lane, a.scale);
    loadRow<PER_LANE>(vr, v + (n * a.vRows + j) * a.vStride + a.vOffset + h * dh, dh, lane);
#pragma unroll
    for (int r = 0; r < PER_LANE; ++r) dka[r] = dva[r] = 0.0f;
    if (j < keys) {
        // Causal: query i sees key j when j <= keyLen - queryLen + i.
        std::int64_t first = a.causal ? j - (a.keyLen - a.queryLen) : 0;
        if (first < 0) first = 0;
        for (std::int64_t i = first; i < a.queryLen; ++i) {
            const std::int64_t qi = (n * a.heads + h) * a.queryLen + i;
            const float* qRow = q + (n * a.qRows + i) * a.qStride + a.qOffset + h * dh;
            const float* gRow = dout + (n * a.queryLen + i) * (a.heads * dh) + h * dh;
            const float p = expf(warpDot<PER_LANE>(kr, qRow, dh, lane) - lse[qi]);
            const float ds = p * (warpDot<PER_LANE>(vr, gRow, dh, lane) - delta[qi]);
#pragma unroll
            for (int r = 0; r < PER_LANE; ++r) {
                const int c = lane + 32 * r;
                if (c < dh) {
                    dva[r] += p * gRow[c];
                    dka[r] += ds * qRow[c];
                }
            }
        }
    }
    float* dkRow = dk + (n * a.kRows + j) * a.kStride + a.kOffset + h * dh;
    float* dvRow = dv + (n * a.vRows + j) * a.vStride + a.vOffset + h * dh;
#pragma unroll
    for (int r = 0; r < PER_LANE; ++r) {
        const int c = lane + 32 * r;
        if (c < dh) {
            dkRow[c] = dka[r] * a.scale;
            dvRow[c] = dva[r];
        }
    }
}

// y (N, D) = mean of x (N, T, D) over the valid steps; one thread per (n, d).
__global__ void mean_pool_forward_kernel(const float* x, const std::int32_t* lens, float* y, std::int64_t n,
                                         std::int64_t t, std::int64_t d) {
    for (std::int64_t e = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; e < n * d;
         e += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
        const std::int64_t b = e / d, c = e % d;
        std::int64_t len = lens ? lens[b] : t;
        len = len < 0 ? 0 : (len > t ? t : len);
        float s = 0.0f;
        for (std::int64_t i = 0; i < len; ++i) s += x[(b * t + i) * d + c];
        y[e] = len > 0 ? s / static_cast<float>(len) : 0.0f;
    }
}

__global__ void mean_pool_backward_kernel(const float* dy, const std::int32_t* lens, float* dx, std::int64_t n,
                                          std::int64_t t, std::int64_t d) {
    for (std::int64_t e = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; e < n * t * d;
         e += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
        const std::int64_t c = e % d, i = (e / d) % t, b = e / (d * t);
        std::int64_t len = lens ? lens[b] : t;
        len = len < 0 ? 0 : (len > t ? t : len);
        dx[e] = i < len ? dy[b * d + c] / static_cast<float>(len) : 0.0f;
    }
}

// One block per row.
__global__ void l2_normalize_forward_kernel(const float* x, float* y, float* norm, std::int64_t d, float eps) {
    __shared__ float scratch[32];
    const float* r = x + blockIdx.x * d;
    float s = 0.0f;
    for (std::int64_t c = threadIdx.x; c < d; c += blockDim.x) s += r[c] * r[c];
    const float nr = sqrtf(blockSum(s, scratch));
    const float inv = 1.0f / fmaxf(nr, eps);
    for (std::int64_t c = threadIdx.x; c < d; c += blockDim.x) y[blockIdx.x * d + c] = r[c] * inv;
    if (threadIdx.x == 0) norm[blockIdx.x] = nr;
}

__global__ void l2_normalize_backward_kernel(const float* dy, const float* y, const float* norm, float* dx,
                                             std::int64_t d, float eps) {
    __shared__ float scratch[32];
    const std::int64_t off = blockIdx.x * d;
    const float nr = norm[blockIdx.x];
    if (nr <= eps) {
        for (std::int64_t c = threadIdx.x; c < d; c += blockDim.x) dx[off + c] = dy[off + c] / eps;
        return;
    }
    float s = 0.0f;
    for (std::int64_t c = threadIdx.x; c < d; c += blockDim.x) s += dy[off + c] * y[off + c];
    const float dot = blockSum(s, scratch);
    for (std::int64_t c = threadIdx.x; c < d; c += blockDim.x) dx[off + c] = (dy[off + c] - y[off + c] * dot) / nr;
}

// Calls f(std::integral_constant<int, PER_LANE>) for the head size, or throws naming the op.
template <class F>
void dispatchHeadDim(std::int64_t headDim, const char* op, F&& f) {
    if (headDim <= 32) f(std::integral_constant<int, 1>{});
    else if (headDim <= 64) f(std::integral_constant<int, 2>{});
    else if (headDim <= 128) f(std::integral_constant<int, 4>{});
    else
        throw BackendError(std::string("cuda ") + op + ": head_dim " + std::to_string(headDim) +
                           " exceeds the kernels' 128 (use the unfused attention kernel)");
}

unsigned warpBlocks(std::int64_t rows) {
    return static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
}

} // namespace

void launchAttentionForwardFused(const float* q, const float* k, const float* v, const std::int32_t* lens, float* out,
                                 float* lse, const AttentionLaunch& a, cudaStream_t stream) {
    if (a.batch * a.heads * a.queryLen == 0) return;
    const std::size_t smem = static_cast<std::size_t>(kWarpsPerBlock + 2 * kTileKeys) * (a.headDim + 1) * sizeof(float);
    const dim3 grid(warpBlocks(a.queryLen), static_cast<unsigned>(a.heads), static_cast<unsigned>(a.batch));
    dispatchHeadDim(a.headDim, "attention_forward", [&](auto perLane) {
        attention_forward_fused_kernel<decltype(perLane)::value>
            <<<grid, kWarpsPerBlock * 32, smem, stream>>>(q, k, v, lens, out, lse, a); // (N, Tq, H * Dh)
    });
    LATHE_CUDA_CHECK_LAUNCH("attention_forward_fused_kernel");
}

void launchAttentionMaskedSoftmax(float* scores, float* lse, const std::int32_t* lens, std::int64_t n,
                                  const AttentionLaunch& a, cudaStream_t stream) {
    const std::int64_t rows = a.heads * a.queryLen;
    if (rows == 0) return;
    attention_masked_softmax_kernel<<<static_cast<unsigned>(rows), rowBlock(a.keyLen), 0, stream>>>(
        scores, lse, lens, n, a); // (H, Tq, Tk)
    LATHE_CUDA_CHECK_LAUNCH("attention_masked_softmax_kernel");
}

void launchAttentionBackward(const float* q, const float* k, const float* v, const std::int32_t* lens,
                             const float* dout, const float* out, const float* lse, float* delta, float* dq, float* dk,
                             float* dv, const AttentionLaunch& a, cudaStream_t stream) {
    const std::int64_t qRows = a.batch * a.heads * a.queryLen, kRows = a.batch * a.heads * a.keyLen;
    dispatchHeadDim(a.headDim, "attention_backward", [&](auto perLane) {
        constexpr int kPerLane = decltype(perLane)::value;
        if (qRows > 0) {
            attention_backward_delta_kernel<kPerLane>
                <<<warpBlocks(qRows), kWarpsPerBlock * 32, 0, stream>>>(dout, out, delta, a); // (N, H, Tq)
            LATHE_CUDA_CHECK_LAUNCH("attention_backward_delta_kernel");
            attention_backward_dq_kernel<kPerLane><<<warpBlocks(qRows), kWarpsPerBlock * 32, 0, stream>>>(
                q, k, v, lens, dout, lse, delta, dq, a); // dq like q
            LATHE_CUDA_CHECK_LAUNCH("attention_backward_dq_kernel");
        }
        if (kRows > 0) {
            attention_backward_dkdv_kernel<kPerLane><<<warpBlocks(kRows), kWarpsPerBlock * 32, 0, stream>>>(
                q, k, v, lens, dout, lse, delta, dk, dv, a); // dk, dv like k, v
            LATHE_CUDA_CHECK_LAUNCH("attention_backward_dkdv_kernel");
        }
    });
}

void launchMeanPoolForward(const float* x, const std::int32_t* lens, float* y, std::int64_t n, std::int64_t t,
                           std::int64_t d, cudaStream_t stream) {
    if (n * d == 0) return;
    mean_pool_forward_kernel<<<gridFor(n * d), kBlock, 0, stream>>>(x, lens, y, n, t, d); // (N, D)
    LATHE_CUDA_CHECK_LAUNCH("mean_pool_forward_kernel");
}

void launchMeanPoolBackward(const float* dy, const std::int32_t* lens, float* dx, std::int64_t n, std::int64_t t,
                            std::int64_t d, cudaStream_t stream) {
    if (n * t * d == 0) return;
    mean_pool_backward_kernel<<<gridFor(n * t * d), kBlock, 0, stream>>>(dy, lens, dx, n, t, d); // (N, T, D)
    LATHE_CUDA_CHECK_LAUNCH("mean_pool_backward_kernel");
}

void launchL2NormalizeForward(const float* x, float* y, float* norm, std::int64_t n, std::int64_t d, float eps,
                              cudaStream_t stream) {
    if (n == 0) return;
    l2_normalize_forward_kernel<<<static_cast<unsigned>(n), rowBlock(d), 0, stream>>>(x, y, norm, d, eps); // (N, D)
    LATHE_CUDA_CHECK_LAUNCH("l2_normalize_forward_kernel");
}

void launchL2NormalizeBackward(const float* dy, const float* y, const float* norm, float* dx, std::int64_t n,
                               std::int64_t d, float eps, cudaStream_t stream) {
    if (n == 0) return;
    l2_normalize_backward_kernel<<<static_cast<unsigned>(n), rowBlock(d), 0, stream>>>(dy, y, norm, dx, d, eps);
    LATHE_CUDA_CHECK_LAUNCH("l2_normalize_backward_kernel");
}

} // namespace lathe::cuda

// CPU transformer ops: multi-head scaled-dot-product attention (forward and backward, causal and key-length
// masks) as GEMMs over each (sequence, head) pair, mean pooling over the valid steps and L2 normalisation.
// This is the unfused arithmetic (scores, masked softmax, weighted sum) that the CUDA kernels are checked against.
#include "engine/backends/cpu/cpu_backend_impl.h"

#include "engine/core/errors.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace lathe::cpu {
namespace {

// Where head h of sequence n lives in each tensor, and how many keys its queries can see.
struct HeadView {
    const float *q, *k, *v; // row i at q + i * g.qStride (likewise k, v)
    std::int64_t keys;      // keys [0, keys) can be visible: min(key length of n, keyLen)
};

HeadView headView(const AttentionGeometry& g, const float* q, const float* k, const float* v, const std::int32_t* lens,
                  std::int64_t n, std::int64_t h) {
    HeadView hv;
    hv.q = q + n * g.qRows * g.qStride + g.qOffset + h * g.headDim;
    hv.k = k + n * g.kRows * g.kStride + g.kOffset + h * g.headDim;
    hv.v = v + n * g.vRows * g.vStride + g.vOffset + h * g.headDim;
    hv.keys = lens ? std::clamp<std::int64_t>(lens[n], 0, g.keyLen) : g.keyLen;
    return hv;
}

// Keys query i may see: [0, visible).
std::int64_t visibleKeys(const AttentionGeometry& g, std::int64_t keys, std::int64_t i) {
    if (!g.causal) return keys;
    return std::min(keys, g.keyLen - g.queryLen + i + 1);
}

const std::int32_t* lengthsOf(const Tensor* t) { return t ? t->ptr<const std::int32_t>() : nullptr; }

// s (Tq, keys) = scale * Q K^T for one head.
void scores(const AttentionGeometry& g, const HeadView& hv, float* s) {
    sgemmRowMajor(false, true, g.queryLen, hv.keys, g.headDim, g.scale, hv.q, g.qStride, hv.k, g.kStride, 0.0f, s,
                  hv.keys);
}

} // namespace

void CpuBackend::attentionForward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* keyLengths,
                                  Tensor& out, Tensor& lse, const AttentionParams& p) {
    for (const Tensor* t : {&q, &k, &v, static_cast<const Tensor*>(&out), static_cast<const Tensor*>(&lse)})
        checkCpu(*t, "attention_forward", "a tensor");
    if (keyLengths) checkCpu(*keyLengths, "attention_forward", "key_lengths");
    require(Op::AttentionForward, q.dtype());
    const AttentionGeometry g = checkAttention("cpu attention_forward", q, k, v, keyLengths, p, &out, &lse);
    const std::int64_t width = g.width();
    const float *pq = q.ptr<const float>(), *pk = k.ptr<const float>(), *pv = v.ptr<const float>();
    const std::int32_t* lens = lengthsOf(keyLengths);
    float *po = out.ptr<float>(), *pl = lse.ptr<float>();
    m_threads.forChunks(g.batch * g.heads, [&](std::int64_t task) {
        const std::int64_t n = task / g.heads, h = task % g.heads;
        const HeadView hv = headView(g, pq, pk, pv, lens, n, h);
        float* o = po + n * g.queryLen * width + h * g.headDim; // row i at o + i * width
        float* l = pl + (n * g.heads + h) * g.queryLen;         // (Tq)
        if (hv.keys == 0) {
            for (std::int64_t i = 0; i < g.queryLen; ++i) {
                std::fill_n(o + i * width, g.headDim, 0.0f);
                l[i] = -std::numeric_limits<float>::infinity();
            }
            return;
        }
        thread_local std::vector<float> buf;
        buf.resize(static_cast<std::size_t>(g.queryLen * hv.keys));
        float* s = buf.data(); // (Tq, keys): scores, then probabilities
        scores(g, hv, s);
        for (std::int64_t i = 0; i < g.queryLen; ++i) {
            float* row = s + i * hv.keys;
            const std::int64_t vis = visibleKeys(g, hv.keys, i);
            if (vis <= 0) {
                std::fill_n(row, hv.keys, 0.0f);
                l[i] = -std::numeric_limits<float>::infinity();
                continue;
            }
            float m = row[0];
            for (std::int64_t j = 1; j < vis; ++j) m = std::max(m, row[j]);
            double sum = 0;
            for (std::int64_t j = 0; j < vis; ++j) sum += std::exp(static_cast<double>(row[j] - m));
            const float rowLse = m + static_cast<float>(std::log(sum));
            for (std::int64_t j = 0; j < vis; ++j) row[j] = std::exp(row[j] - rowLse);
            std::fill(row + vis, row + hv.keys, 0.0f);
            l[i] = rowLse;
        }
        // O (Tq, Dh) = P V
        sgemmRowMajor(false, false, g.queryLen, g.headDim, hv.keys, 1.0f, s, hv.keys, hv.v, g.vStride, 0.0f, o, width);
        for (std::int64_t i = 0; i < g.queryLen; ++i)
            if (visibleKeys(g, hv.keys, i) <= 0) std::fill_n(o + i * width, g.headDim, 0.0f);
    });
}

void CpuBackend::attentionBackward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                   const Tensor* keyLengths, const Tensor& out, const Tensor& lse, Tensor& dq,
                                   Tensor& dk, Tensor& dv, const AttentionParams& p) {
    for (const Tensor* t : {&dout, &q, &k, &v, &out, &lse, static_cast<const Tensor*>(&dq),
                            static_cast<const Tensor*>(&dk), static_cast<const Tensor*>(&dv)})
        checkCpu(*t, "attention_backward", "a tensor");
    if (keyLengths) checkCpu(*keyLengths, "attention_backward", "key_lengths");
    require(Op::AttentionBackward, dout.dtype());
    const AttentionGeometry g = checkAttention("cpu attention_backward", q, k, v, keyLengths, p, &out, &lse);
    checkSameShape(dout, out, "attention_backward", "dout", "out");
    checkSameShape(dq, q, "attention_backward", "dq", "q");
    checkSameShape(dk, k, "attention_backward", "dk", "k");
    checkSameShape(dv, v, "attention_backward", "dv", "v");
    const std::int64_t width = g.width();
    const float *pq = q.ptr<const float>(), *pk = k.ptr<const float>(), *pv = v.ptr<const float>();
    const float *pdo = dout.ptr<const float>(), *po = out.ptr<const float>(), *pl = lse.ptr<const float>();
    const std::int32_t* lens = lengthsOf(keyLengths);
    float *pdq = dq.ptr<float>(), *pdk = dk.ptr<float>(), *pdv = dv.ptr<float>();
    m_threads.forChunks(g.batch * g.heads, [&](std::int64_t task) {
        const std::int64_t n = task / g.heads, h = task % g.heads;
        const HeadView hv = headView(g, pq, pk, pv, lens, n, h);
        const float* dO = pdo + n * g.queryLen * width + h * g.headDim; // row stride width
        const float* O = po + n * g.queryLen * width + h * g.headDim;
        const float* l = pl + (n * g.heads + h) * g.queryLen;
        float* dQ = pdq + n * g.qRows * g.qStride + g.qOffset + h * g.headDim;
        float* dK = pdk + n * g.kRows * g.kStride + g.kOffset + h * g.headDim;
        float* dV = pdv + n * g.vRows * g.vStride + g.vOffset + h * g.headDim;
        // Masked keys (beyond the sequence's length) get no gradient.
        for (std::int64_t j = hv.keys; j < g.keyLen; ++j) {
            std::fill_n(dK + j * g.kStride, g.headDim, 0.0f);
            std::fill_n(dV + j * g.vStride, g.headDim, 0.0f);
        }
        if (hv.keys == 0) {
            for (std::int64_t i = 0; i < g.queryLen; ++i) std::fill_n(dQ + i * g.qStride, g.headDim, 0.0f);
            return;
        }
        thread_local std::vector<float> buf;
        const std::size_t block = static_cast<std::size_t>(g.queryLen * hv.keys);
        buf.resize(2 * block);
        float* P = buf.data();      // (Tq, keys)
        float* dS = P + block;      // (Tq, keys): dP, then dS
        scores(g, hv, P);
        for (std::int64_t i = 0; i < g.queryLen; ++i) {
            float* row = P + i * hv.keys;
            const std::int64_t vis = visibleKeys(g, hv.keys, i);
            for (std::int64_t j = 0; j < hv.keys; ++j) row[j] = j < vis ? std::exp(row[j] - l[i]) : 0.0f;
        }
        // dP (Tq, keys) = dO V^T
        sgemmRowMajor(false, true, g.queryLen, hv.keys, g.headDim, 1.0f, dO, width, hv.v, g.vStride, 0.0f, dS, hv.keys);
        for (std::int64_t i = 0; i < g.queryLen; ++i) {
            // D_i = dO_i . O_i = sum_j P_ij dP_ij: the softmax's Jacobian applied once per row.
            double d = 0;
            for (std::int64_t c = 0; c < g.headDim; ++c)
                d += static_cast<double>(dO[i * width + c]) * O[i * width + c];
            const float di = static_cast<float>(d);
            float* ds = dS + i * hv.keys;
            const float* pr = P + i * hv.keys;
            for (std::int64_t j = 0; j < hv.keys; ++j) ds[j] = pr[j] * (ds[j] - di);
        }
        // dQ (Tq, Dh) = scale dS K; dK (keys, Dh) = scale dS^T Q; dV (keys, Dh) = P^T dO
        sgemmRowMajor(false, false, g.queryLen, g.headDim, hv.keys, g.scale, dS, hv.keys, hv.k, g.kStride, 0.0f, dQ,
                      g.qStride);
        sgemmRowMajor(true, false, hv.keys, g.headDim, g.queryLen, g.scale, dS, hv.keys, hv.q, g.qStride, 0.0f, dK,
                      g.kStride);
        sgemmRowMajor(true, false, hv.keys, g.headDim, g.queryLen, 1.0f, P, hv.keys, dO, width, 0.0f, dV, g.vStride);
    });
}

void CpuBackend::meanPoolForward(const Tensor& x, const Tensor* lengths, Tensor& y) {
    checkCpu(x, "mean_pool_forward", "x");
    checkCpu(y, "mean_pool_forward", "y");
    if (lengths) checkCpu(*lengths, "mean_pool_forward", "lengths");
    require(Op::MeanPoolForward, x.dtype());
    checkMeanPool("cpu mean_pool_forward", x, lengths, y);
    const std::int64_t n = x.dim(0), t = x.dim(1), d = x.dim(2);
    const std::int32_t* lens = lengthsOf(lengths);
    const float* px = x.ptr<const float>();
    float* py = y.ptr<float>();
    for (std::int64_t b = 0; b < n; ++b) {
        const std::int64_t len = lens ? std::clamp<std::int64_t>(lens[b], 0, t) : t;
        float* out = py + b * d;
        for (std::int64_t c = 0; c < d; ++c) {
            double s = 0;
            for (std::int64_t i = 0; i < len; ++i) s += px[(b * t + i) * d + c];
            out[c] = len > 0 ? static_cast<float>(s / static_cast<double>(len)) : 0.0f;
        }
    }
}

void CpuBackend::meanPoolBackward(const Tensor& dy, const Tensor* lengths, Tensor& dx) {
    checkCpu(dy, "mean_pool_backward", "dy");
    checkCpu(dx, "mean_pool_backward", "dx");
    if (lengths) checkCpu(*lengths, "mean_pool_backward", "lengths");
    require(Op::MeanPoolBackward, dy.dtype());
    checkMeanPool("cpu mean_pool_backward", dx, lengths, dy);
    const std::int64_t n = dx.dim(0), t = dx.dim(1), d = dx.dim(2);
    const std::int32_t* lens = lengthsOf(lengths);
    const float* pdy = dy.ptr<const float>();
    float* pdx = dx.ptr<float>();
    for (std::int64_t b = 0; b < n; ++b) {
        const std::int64_t len = lens ? std::clamp<std::int64_t>(lens[b], 0, t) : t;
        const float w = len > 0 ? 1.0f / static_cast<float>(len) : 0.0f;
        for (std::int64_t i = 0; i < t; ++i)
            for (std::int64_t c = 0; c < d; ++c) pdx[(b * t + i) * d + c] = i < len ? pdy[b * d + c] * w : 0.0f;
    }
}

void CpuBackend::l2NormalizeForward(const Tensor& x, Tensor& y, Tensor& norm, float eps) {
    checkCpu(x, "l2_normalize_forward", "x");
    require(Op::L2NormalizeForward, x.dtype());
    if (x.rank() != 2) throw BackendError("cpu l2_normalize_forward: x is " + x.describe() + ", expected (N, D)");
    checkSameShape(x, y, "l2_normalize_forward", "x", "y");
    checkShape(norm, {x.dim(0)}, "l2_normalize_forward", "norm");
    const std::int64_t n = x.dim(0), d = x.dim(1);
    const float* px = x.ptr<const float>();
    float *py = y.ptr<float>(), *pn = norm.ptr<float>();
    for (std::int64_t r = 0; r < n; ++r) {
        double s = 0;
        for (std::int64_t c = 0; c < d; ++c) s += static_cast<double>(px[r * d + c]) * px[r * d + c];
        const float nr = static_cast<float>(std::sqrt(s));
        pn[r] = nr;
        const float inv = 1.0f / std::max(nr, eps);
        for (std::int64_t c = 0; c < d; ++c) py[r * d + c] = px[r * d + c] * inv;
    }
}

void CpuBackend::l2NormalizeBackward(const Tensor& dy, const Tensor& y, const Tensor& norm, Tensor& dx, float eps) {
    checkCpu(dy, "l2_normalize_backward", "dy");
    require(Op::L2NormalizeBackward, dy.dtype());
    if (dy.rank() != 2) throw BackendError("cpu l2_normalize_backward: dy is " + dy.describe() + ", expected (N, D)");
    checkSameShape(dy, y, "l2_normalize_backward", "dy", "y");
    checkSameShape(dy, dx, "l2_normalize_backward", "dy", "dx");
    checkShape(norm, {dy.dim(0)}, "l2_normalize_backward", "norm");
    const std::int64_t n = dy.dim(0), d = dy.dim(1);
    const float *pdy = dy.ptr<const float>(), *py = y.ptr<const float>(), *pn = norm.ptr<const float>();
    float* pdx = dx.ptr<float>();
    for (std::int64_t r = 0; r < n; ++r) {
        const float* g = pdy + r * d;
        float* out = pdx + r * d;
        if (pn[r] <= eps) { // the clamped branch: y = x / eps is linear in x
            for (std::int64_t c = 0; c < d; ++c) out[c] = g[c] / eps;
            continue;
        }
        double dot = 0;
        for (std::int64_t c = 0; c < d; ++c) dot += static_cast<double>(g[c]) * py[r * d + c];
        const float inv = 1.0f / pn[r], fd = static_cast<float>(dot);
        for (std::int64_t c = 0; c < d; ++c) out[c] = (g[c] - py[r * d + c] * fd) * inv;
    }
}

} // namespace lathe::cpu

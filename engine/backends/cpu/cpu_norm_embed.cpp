// CPU layer and batch normalisation (forward and backward) and embedding lookup / scatter-add.
#include "engine/backends/cpu/cpu_backend_impl.h"

#include "engine/core/errors.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>

namespace lathe::cpu {

void CpuBackend::layerNormForward(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& y, Tensor& mean,
                                  Tensor& rstd, float eps) {
    checkCpu(x, "layernorm_forward", "x");
    require(Op::LayerNormForward, x.dtype());
    if (x.rank() != 2) throw BackendError("cpu layernorm_forward: x is " + x.describe() + ", expected (N, D)");
    const std::int64_t n = x.dim(0), d = x.dim(1);
    checkShape(gamma, {d}, "layernorm_forward", "gamma");
    checkShape(beta, {d}, "layernorm_forward", "beta");
    checkSameShape(x, y, "layernorm_forward", "x", "y");
    checkShape(mean, {n}, "layernorm_forward", "mean");
    checkShape(rstd, {n}, "layernorm_forward", "rstd");
    for (const Tensor* t : std::initializer_list<const Tensor*>{&gamma, &beta, &mean, &rstd}) checkDType(*t, DType::F32, "layernorm_forward", "a parameter");
    const float *px = x.ptr<const float>(), *pg = gamma.ptr<const float>(), *pb = beta.ptr<const float>();
    float *py = y.ptr<float>(), *pm = mean.ptr<float>(), *pr = rstd.ptr<float>();
    forEach(n, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t r = b; r < e; ++r) {
            const float* in = px + r * d;
            // Two passes (mean, then centred variance): stable where E[x^2] - E[x]^2 is not.
            double s = 0;
            for (std::int64_t j = 0; j < d; ++j) s += in[j];
            const double mu = s / static_cast<double>(d);
            double v = 0;
            for (std::int64_t j = 0; j < d; ++j) v += (in[j] - mu) * (in[j] - mu);
            const float rs = static_cast<float>(1.0 / std::sqrt(v / static_cast<double>(d) + eps));
            const float m = static_cast<float>(mu);
            pm[r] = m;
            pr[r] = rs;
            float* out = py + r * d;
            for (std::int64_t j = 0; j < d; ++j) out[j] = (in[j] - m) * rs * pg[j] + pb[j];
        }
    }, std::max<std::int64_t>(1, kInlineElements / 4 / std::max<std::int64_t>(1, d)));
}

void CpuBackend::layerNormBackward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                   const Tensor& rstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta, bool accumulate) {
    checkCpu(x, "layernorm_backward", "x");
    require(Op::LayerNormBackward, x.dtype());
    if (x.rank() != 2) throw BackendError("cpu layernorm_backward: x is " + x.describe() + ", expected (N, D)");
    const std::int64_t n = x.dim(0), d = x.dim(1);
    checkSameShape(x, dy, "layernorm_backward", "x", "dy");
    checkSameShape(x, dx, "layernorm_backward", "x", "dx");
    checkShape(gamma, {d}, "layernorm_backward", "gamma");
    checkShape(mean, {n}, "layernorm_backward", "mean");
    checkShape(rstd, {n}, "layernorm_backward", "rstd");
    checkShape(dgamma, {d}, "layernorm_backward", "dgamma");
    checkShape(dbeta, {d}, "layernorm_backward", "dbeta");
    for (const Tensor* t : std::initializer_list<const Tensor*>{&gamma, &mean, &rstd, &dgamma, &dbeta})
        checkDType(*t, DType::F32, "layernorm_backward", "a parameter");
    const float *pdy = dy.ptr<const float>(), *px = x.ptr<const float>(), *pg = gamma.ptr<const float>();
    const float *pm = mean.ptr<const float>(), *pr = rstd.ptr<const float>();
    float *pdx = dx.ptr<float>(), *pdg = dgamma.ptr<float>(), *pdb = dbeta.ptr<float>();
    // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma, xhat = (x - mean) * rstd.
    forEach(n, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t r = b; r < e; ++r) {
            const float *in = px + r * d, *gy = pdy + r * d;
            const float m = pm[r], rs = pr[r];
            double sg = 0, sgx = 0;
            for (std::int64_t j = 0; j < d; ++j) {
                const float gj = gy[j] * pg[j];
                sg += gj;
                sgx += gj * (in[j] - m) * rs;
            }
            const float mg = static_cast<float>(sg / static_cast<double>(d));
            const float mgx = static_cast<float>(sgx / static_cast<double>(d));
            float* out = pdx + r * d;
            for (std::int64_t j = 0; j < d; ++j) out[j] = rs * (gy[j] * pg[j] - mg - (in[j] - m) * rs * mgx);
        }
    }, std::max<std::int64_t>(1, kInlineElements / 4 / std::max<std::int64_t>(1, d)));
    // Parameter gradients: each thread owns a range of columns.
    forEach(d, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t j = b; j < e; ++j) {
            double sgm = 0, sb = 0;
            for (std::int64_t r = 0; r < n; ++r) {
                const float g = pdy[r * d + j];
                sgm += g * (px[r * d + j] - pm[r]) * pr[r];
                sb += g;
            }
            pdg[j] = static_cast<float>(accumulate ? pdg[j] + sgm : sgm);
            pdb[j] = static_cast<float>(accumulate ? pdb[j] + sb : sb);
        }
    }, std::max<std::int64_t>(1, kInlineElements / 4 / std::max<std::int64_t>(1, n)));
}

namespace {

// (N, C, inner...) -> N, C, inner, after the checks every batch-norm op shares.
struct ChannelLayout {
    std::int64_t n = 0, c = 0, inner = 1;
    std::int64_t perChannel() const { return n * inner; } // M
};

ChannelLayout channelLayout(const Tensor& x, const char* op) {
    if (x.rank() < 2) throw BackendError(std::string("cpu ") + op + ": x is " + x.describe() + ", expected (N, C, ...)");
    ChannelLayout l;
    l.n = x.dim(0);
    l.c = x.dim(1);
    for (std::size_t i = 2; i < x.rank(); ++i) l.inner *= x.dim(i);
    return l;
}

} // namespace

void CpuBackend::batchNormForward(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& runningMean,
                                  Tensor& runningVar, Tensor& y, Tensor& mean, Tensor& rstd, const BatchNormParams& p) {
    const char* op = "batchnorm_forward";
    checkCpu(x, op, "x");
    require(Op::BatchNormForward, x.dtype());
    const ChannelLayout l = channelLayout(x, op);
    checkSameShape(x, y, op, "x", "y");
    for (const Tensor* t : {&gamma, &beta, static_cast<const Tensor*>(&runningMean),
                            static_cast<const Tensor*>(&runningVar), static_cast<const Tensor*>(&mean),
                            static_cast<const Tensor*>(&rstd)}) {
        checkShape(*t, {l.c}, op, "a per-channel tensor");
        checkDType(*t, DType::F32, op, "a per-channel tensor");
    }
    const std::int64_t m = l.perChannel();
    if (p.training && m < 2)
        throw BackendError("cpu batchnorm_forward: training needs more than one value per channel, x is " +
                           x.describe());
    const float *px = x.ptr<const float>(), *pg = gamma.ptr<const float>(), *pb = beta.ptr<const float>();
    float *prm = runningMean.ptr<float>(), *prv = runningVar.ptr<float>();
    float *py = y.ptr<float>(), *pm = mean.ptr<float>(), *pr = rstd.ptr<float>();
    forEach(l.c, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t c = b; c < e; ++c) {
            float mu = prm[c], rs = static_cast<float>(1.0 / std::sqrt(static_cast<double>(prv[c]) + p.eps));
            if (p.training) {
                // Two passes in double (mean, then centred variance), as layernorm.
                double sum = 0;
                for (std::int64_t n = 0; n < l.n; ++n) {
                    const float* in = px + (n * l.c + c) * l.inner;
                    for (std::int64_t i = 0; i < l.inner; ++i) sum += in[i];
                }
                const double dmu = sum / static_cast<double>(m);
                double sq = 0;
                for (std::int64_t n = 0; n < l.n; ++n) {
                    const float* in = px + (n * l.c + c) * l.inner;
                    for (std::int64_t i = 0; i < l.inner; ++i) sq += (in[i] - dmu) * (in[i] - dmu);
                }
                const double var = sq / static_cast<double>(m);
                mu = static_cast<float>(dmu);
                rs = static_cast<float>(1.0 / std::sqrt(var + p.eps));
                const double unbiased = sq / static_cast<double>(m - 1);
                prm[c] = static_cast<float>((1.0 - p.momentum) * prm[c] + p.momentum * dmu);
                prv[c] = static_cast<float>((1.0 - p.momentum) * prv[c] + p.momentum * unbiased);
            }
            pm[c] = mu;
            pr[c] = rs;
            const float scale = rs * pg[c], shift = pb[c] - mu * scale;
            for (std::int64_t n = 0; n < l.n; ++n) {
                const std::int64_t off = (n * l.c + c) * l.inner;
                for (std::int64_t i = 0; i < l.inner; ++i) py[off + i] = px[off + i] * scale + shift;
            }
        }
    }, std::max<std::int64_t>(1, kInlineElements / 4 / std::max<std::int64_t>(1, m)));
}

void CpuBackend::batchNormBackward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                   const Tensor& rstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta, bool accumulate) {
    const char* op = "batchnorm_backward";
    checkCpu(x, op, "x");
    require(Op::BatchNormBackward, x.dtype());
    const ChannelLayout l = channelLayout(x, op);
    checkSameShape(x, dy, op, "x", "dy");
    checkSameShape(x, dx, op, "x", "dx");
    for (const Tensor* t : {&gamma, &mean, &rstd, static_cast<const Tensor*>(&dgamma),
                            static_cast<const Tensor*>(&dbeta)}) {
        checkShape(*t, {l.c}, op, "a per-channel tensor");
        checkDType(*t, DType::F32, op, "a per-channel tensor");
    }
    const std::int64_t m = l.perChannel();
    const float *pdy = dy.ptr<const float>(), *px = x.ptr<const float>(), *pg = gamma.ptr<const float>();
    const float *pm = mean.ptr<const float>(), *pr = rstd.ptr<const float>();
    float *pdx = dx.ptr<float>(), *pdg = dgamma.ptr<float>(), *pdb = dbeta.ptr<float>();
    forEach(l.c, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t c = b; c < e; ++c) {
            const float mu = pm[c], rs = pr[c];
            double sdy = 0, sdyx = 0;
            for (std::int64_t n = 0; n < l.n; ++n) {
                const std::int64_t off = (n * l.c + c) * l.inner;
                for (std::int64_t i = 0; i < l.inner; ++i) {
                    sdy += pdy[off + i];
                    sdyx += pdy[off + i] * (px[off + i] - mu) * rs;
                }
            }
            const float mdy = static_cast<float>(sdy / static_cast<double>(m));
            const float mdyx = static_cast<float>(sdyx / static_cast<double>(m));
            const float k = pg[c] * rs;
            for (std::int64_t n = 0; n < l.n; ++n) {
                const std::int64_t off = (n * l.c + c) * l.inner;
                for (std::int64_t i = 0; i < l.inner; ++i)
                    pdx[off + i] = k * (pdy[off + i] - mdy - (px[off + i] - mu) * rs * mdyx);
            }
            pdg[c] = static_cast<float>(accumulate ? pdg[c] + sdyx : sdyx);
            pdb[c] = static_cast<float>(accumulate ? pdb[c] + sdy : sdy);
        }
    }, std::max<std::int64_t>(1, kInlineElements / 4 / std::max<std::int64_t>(1, m)));
}

namespace {
void checkIds(const Tensor& ids, std::int64_t vocab, const char* op) {
    const std::int32_t* p = ids.ptr<const std::int32_t>();
    for (std::int64_t i = 0; i < ids.numel(); ++i)
        if (p[i] < 0 || p[i] >= vocab)
            throw BackendError(std::string("cpu ") + op + ": id " + std::to_string(p[i]) + " at position " +
                               std::to_string(i) + " is outside the table's " + std::to_string(vocab) + " rows");
}
} // namespace

void CpuBackend::embeddingForward(const Tensor& ids, const Tensor& table, Tensor& y) {
    checkCpu(ids, "embedding_forward", "ids");
    checkCpu(table, "embedding_forward", "table");
    require(Op::EmbeddingForward, table.dtype());
    checkDType(ids, DType::I32, "embedding_forward", "ids");
    if (ids.rank() != 1 || table.rank() != 2)
        throw BackendError("cpu embedding_forward: expects ids (N) and table (V, D), got " + ids.describe() + " and " +
                           table.describe());
    const std::int64_t n = ids.dim(0), v = table.dim(0), d = table.dim(1);
    checkShape(y, {n, d}, "embedding_forward", "y");
    checkDType(y, DType::F32, "embedding_forward", "y");
    checkIds(ids, v, "embedding_forward");
    const std::int32_t* pi = ids.ptr<const std::int32_t>();
    const float* pt = table.ptr<const float>();
    float* py = y.ptr<float>();
    forEach(n, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t r = b; r < e; ++r)
            std::memcpy(py + r * d, pt + static_cast<std::int64_t>(pi[r]) * d, static_cast<std::size_t>(d) * 4);
    }, std::max<std::int64_t>(1, kInlineElements / std::max<std::int64_t>(1, d)));
}

void CpuBackend::embeddingBackward(const Tensor& ids, const Tensor& dy, Tensor& dtable, bool accumulate) {
    checkCpu(ids, "embedding_backward", "ids");
    checkCpu(dtable, "embedding_backward", "dtable");
    require(Op::EmbeddingBackward, dtable.dtype());
    checkDType(ids, DType::I32, "embedding_backward", "ids");
    if (ids.rank() != 1 || dtable.rank() != 2)
        throw BackendError("cpu embedding_backward: expects ids (N) and dtable (V, D), got " + ids.describe() +
                           " and " + dtable.describe());
    const std::int64_t n = ids.dim(0), v = dtable.dim(0), d = dtable.dim(1);
    checkShape(dy, {n, d}, "embedding_backward", "dy");
    checkDType(dy, DType::F32, "embedding_backward", "dy");
    checkIds(ids, v, "embedding_backward");
    if (!accumulate) fill(dtable, 0.0f);
    const std::int32_t* pi = ids.ptr<const std::int32_t>();
    const float* pdy = dy.ptr<const float>();
    float* pt = dtable.ptr<float>();
    // Repeated ids write the same row, so threads split the columns, not the ids; each row is added
    // in id order, which keeps the result deterministic for any thread count.
    forEach(d, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t r = 0; r < n; ++r) {
            float* row = pt + static_cast<std::int64_t>(pi[r]) * d;
            const float* g = pdy + r * d;
            for (std::int64_t j = b; j < e; ++j) row[j] += g[j];
        }
    }, std::max<std::int64_t>(16, kInlineElements / 2 / std::max<std::int64_t>(1, n)));
}

} // namespace lathe::cpu

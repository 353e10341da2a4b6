// CPU element-wise and row-wise ops: bias, arithmetic, activations, dropout, softmax,
// cross-entropy and argmax. Plain loops the compiler vectorises; big tensors are split over threads.
#include "engine/backends/cpu/cpu_backend_impl.h"

#include "engine/core/errors.h"
#include "engine/core/rng.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace lathe::cpu {
namespace {

constexpr float kInvSqrt2Pi = 0.39894228040143267794f;

// (outer, C, inner) view of a tensor whose dim 1 is the channel dim.
struct BiasLayout {
    std::int64_t outer = 1, channels = 1, inner = 1;
};

BiasLayout biasLayout(const Tensor& x, const Tensor& bias, const char* op, const char* what) {
    if (x.rank() < 2) throw BackendError(std::string("cpu ") + op + ": " + what + " is " + x.describe() +
                                         ", expected at least 2 dimensions (outer, C, ...)");
    BiasLayout l;
    l.outer = x.dim(0);
    l.channels = x.dim(1);
    for (int i = 2; i < x.rank(); ++i) l.inner *= x.dim(i);
    checkShape(bias, {l.channels}, op, "bias");
    return l;
}

void checkRows(const Tensor& x, const char* op, const char* what) {
    checkCpu(x, op, what);
    if (x.rank() != 2) throw BackendError(std::string("cpu ") + op + ": " + what + " is " + x.describe() +
                                          ", expected (N, C)");
}

} // namespace

void CpuBackend::biasAdd(Tensor& x, const Tensor& bias) {
    checkCpu(x, "bias_add", "x");
    require(Op::BiasAdd, x.dtype());
    checkDType(bias, x.dtype(), "bias_add", "bias");
    const BiasLayout l = biasLayout(x, bias, "bias_add", "x");
    float* px = x.ptr<float>();
    const float* pb = bias.ptr<const float>();
    const std::int64_t rows = l.outer * l.channels; // one row = one (outer, channel) run of `inner`
    forEach(rows, [&](std::int64_t b, std::int64_t e) {
        if (l.inner == 1) {
            for (std::int64_t r = b; r < e;) { // whole or partial rows of C
                const std::int64_t c0 = r % l.channels;
                const std::int64_t len = std::min(e - r, l.channels - c0);
                float* row = px + r;
                const float* bb = pb + c0;
                for (std::int64_t j = 0; j < len; ++j) row[j] += bb[j];
                r += len;
            }
            return;
        }
        for (std::int64_t r = b; r < e; ++r) {
            const float v = pb[r % l.channels];
            float* row = px + r * l.inner;
            for (std::int64_t j = 0; j < l.inner; ++j) row[j] += v;
        }
    }, std::max<std::int64_t>(1, kInlineElements / 2 / l.inner));
}

void CpuBackend::biasGrad(const Tensor& dy, Tensor& dbias, bool accumulate) {
    checkCpu(dy, "bias_grad", "dy");
    require(Op::BiasGrad, dy.dtype());
    checkDType(dbias, dy.dtype(), "bias_grad", "dbias");
    const BiasLayout l = biasLayout(dy, dbias, "bias_grad", "dy");
    const float* p = dy.ptr<const float>();
    float* db = dbias.ptr<float>();
    // Parallel over channels: every thread owns its output entries, so no reduction race.
    forEach(l.channels, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t c = b; c < e; ++c) {
            double s = 0; // double: sums over a whole batch of activations
            for (std::int64_t o = 0; o < l.outer; ++o) {
                const float* row = p + (o * l.channels + c) * l.inner;
                for (std::int64_t j = 0; j < l.inner; ++j) s += row[j];
            }
            db[c] = static_cast<float>(accumulate ? db[c] + s : s);
        }
    }, std::max<std::int64_t>(1, kInlineElements / 2 / std::max<std::int64_t>(1, l.outer * l.inner)));
}

void CpuBackend::add(const Tensor& a, const Tensor& b, Tensor& out) {
    checkSameShape(a, b, "add", "a", "b");
    checkSameShape(a, out, "add", "a", "out");
    require(Op::Add, a.dtype());
    const float *pa = a.ptr<const float>(), *pb = b.ptr<const float>();
    float* po = out.ptr<float>();
    forEach(a.numel(), [&](std::int64_t s, std::int64_t e) {
        for (std::int64_t i = s; i < e; ++i) po[i] = pa[i] + pb[i];
    });
}

void CpuBackend::mul(const Tensor& a, const Tensor& b, Tensor& out) {
    checkSameShape(a, b, "mul", "a", "b");
    checkSameShape(a, out, "mul", "a", "out");
    require(Op::Mul, a.dtype());
    const float *pa = a.ptr<const float>(), *pb = b.ptr<const float>();
    float* po = out.ptr<float>();
    forEach(a.numel(), [&](std::int64_t s, std::int64_t e) {
        for (std::int64_t i = s; i < e; ++i) po[i] = pa[i] * pb[i];
    });
}

void CpuBackend::axpy(float alpha, const Tensor& x, Tensor& y) {
    checkSameShape(x, y, "axpy", "x", "y");
    require(Op::Axpy, x.dtype());
    const float* px = x.ptr<const float>();
    float* py = y.ptr<float>();
    forEach(x.numel(), [&](std::int64_t s, std::int64_t e) {
        for (std::int64_t i = s; i < e; ++i) py[i] += alpha * px[i];
    });
}

void CpuBackend::scale(Tensor& x, float s) {
    checkCpu(x, "scale", "x");
    require(Op::Scale, x.dtype());
    float* p = x.ptr<float>();
    forEach(x.numel(), [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t i = b; i < e; ++i) p[i] *= s;
    });
}

void CpuBackend::relu(const Tensor& x, Tensor& y) {
    checkSameShape(x, y, "relu", "x", "y");
    require(Op::Relu, x.dtype());
    const float* px = x.ptr<const float>();
    float* py = y.ptr<float>();
    forEach(x.numel(), [&](std::int64_t s, std::int64_t e) {
        for (std::int64_t i = s; i < e; ++i) py[i] = px[i] > 0.0f ? px[i] : 0.0f;
    });
}

void CpuBackend::reluBackward(const Tensor& x, const Tensor& dy, Tensor& dx) {
    checkSameShape(x, dy, "relu_backward", "x", "dy");
    checkSameShape(x, dx, "relu_backward", "x", "dx");
    require(Op::ReluBackward, x.dtype());
    const float *px = x.ptr<const float>(), *pdy = dy.ptr<const float>();
    float* pdx = dx.ptr<float>();
    forEach(x.numel(), [&](std::int64_t s, std::int64_t e) {
        for (std::int64_t i = s; i < e; ++i) pdx[i] = px[i] > 0.0f ? pdy[i] : 0.0f;
    });
}

void CpuBackend::gelu(const Tensor& x, Tensor& y) {
    checkSameShape(x, y, "gelu", "x", "y");
    require(Op::Gelu, x.dtype());
    const float* px = x.ptr<const float>();
    float* py = y.ptr<float>();
    forEach(x.numel(), [&](std::int64_t s, std::int64_t e) {
        for (std::int64_t i = s; i < e; ++i) py[i] = geluExact(px[i]);
    }, kInlineElements / 8);
}

void CpuBackend::geluBackward(const Tensor& x, const Tensor& dy, Tensor& dx) {
    checkSameShape(x, dy, "gelu_backward", "x", "dy");
    checkSameShape(x, dx, "gelu_backward", "x", "dx");
    require(Op::GeluBackward, x.dtype());
    const float *px = x.ptr<const float>(), *pdy = dy.ptr<const float>();
    float* pdx = dx.ptr<float>();
    forEach(x.numel(), [&](std::int64_t s, std::int64_t e) {
        for (std::int64_t i = s; i < e; ++i) {
            const float v = px[i];
            // d/dx [x * Phi(x)] = Phi(x) + x * phi(x)
            const float cdf = 0.5f * (1.0f + std::erf(v * kInvSqrt2));
            const float pdf = kInvSqrt2Pi * std::exp(-0.5f * v * v);
            pdx[i] = pdy[i] * (cdf + v * pdf);
        }
    }, kInlineElements / 8);
}

void CpuBackend::dropout(const Tensor& x, Tensor& y, Tensor& mask, float p, std::uint64_t seed) {
    checkSameShape(x, y, "dropout", "x", "y");
    checkSameShape(x, mask, "dropout", "x", "mask");
    require(Op::Dropout, x.dtype());
    if (!(p >= 0.0f && p <= 1.0f))
        throw BackendError("cpu dropout: p = " + std::to_string(p) + " is outside [0, 1]");
    const float keep = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    const float* px = x.ptr<const float>();
    float *py = y.ptr<float>(), *pm = mask.ptr<float>();
    forEach(x.numel(), [&](std::int64_t s, std::int64_t e) {
        for (std::int64_t i = s; i < e; ++i) {
            const float m = hashUniform(seed, static_cast<std::uint64_t>(i)) >= p ? keep : 0.0f;
            pm[i] = m;
            py[i] = px[i] * m;
        }
    }, kInlineElements / 4);
}

void CpuBackend::softmax(const Tensor& x, Tensor& y) {
    checkRows(x, "softmax", "x");
    checkSameShape(x, y, "softmax", "x", "y");
    require(Op::Softmax, x.dtype());
    const std::int64_t n = x.dim(0), c = x.dim(1);
    const float* px = x.ptr<const float>();
    float* py = y.ptr<float>();
    forEach(n, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t r = b; r < e; ++r) {
            const float* in = px + r * c;
            float* out = py + r * c;
            const float mx = *std::max_element(in, in + c);
            float sum = 0.0f;
            for (std::int64_t j = 0; j < c; ++j) {
                out[j] = std::exp(in[j] - mx);
                sum += out[j];
            }
            const float inv = 1.0f / sum;
            for (std::int64_t j = 0; j < c; ++j) out[j] *= inv;
        }
    }, std::max<std::int64_t>(1, kInlineElements / 8 / std::max<std::int64_t>(1, c)));
}

namespace {

// One row of softmax cross-entropy: returns -log softmax(in)[label] and writes d = (softmax - onehot) *
// gradScale. Log-sum-exp around the row maximum: no overflow for large logits. distillationLoss's hard part
// is this same arithmetic, so its alpha = 0 reproduces cross-entropy bit for bit.
float crossEntropyRow(const float* in, std::int64_t c, std::int32_t label, float gradScale, float* d) {
    const float mx = *std::max_element(in, in + c);
    double sum = 0.0;
    for (std::int64_t j = 0; j < c; ++j) {
        d[j] = std::exp(in[j] - mx);
        sum += d[j];
    }
    const float lse = mx + static_cast<float>(std::log(sum));
    const float inv = static_cast<float>(1.0 / sum);
    for (std::int64_t j = 0; j < c; ++j) d[j] = d[j] * inv * gradScale;
    d[label] -= gradScale;
    return lse - in[label];
}

void checkLabels(const Tensor& labels, std::int64_t c, const char* op) {
    const std::int32_t* lab = labels.ptr<const std::int32_t>();
    for (std::int64_t r = 0; r < labels.numel(); ++r)
        if (lab[r] < 0 || lab[r] >= c)
            throw BackendError(std::string("cpu ") + op + ": label " + std::to_string(lab[r]) + " at row " +
                               std::to_string(r) + " is outside [0, " + std::to_string(c) + ")");
}

} // namespace

void CpuBackend::softmaxCrossEntropy(const Tensor& logits, const Tensor& labels, Tensor& losses, Tensor& dlogits,
                                     float gradScale) {
    checkRows(logits, "softmax_cross_entropy", "logits");
    require(Op::SoftmaxCrossEntropy, logits.dtype());
    const std::int64_t n = logits.dim(0), c = logits.dim(1);
    checkShape(labels, {n}, "softmax_cross_entropy", "labels");
    checkDType(labels, DType::I32, "softmax_cross_entropy", "labels");
    checkShape(losses, {n}, "softmax_cross_entropy", "losses");
    checkDType(losses, DType::F32, "softmax_cross_entropy", "losses");
    checkSameShape(logits, dlogits, "softmax_cross_entropy", "logits", "dlogits");
    checkLabels(labels, c, "softmax_cross_entropy");
    const std::int32_t* lab = labels.ptr<const std::int32_t>();
    const float* px = logits.ptr<const float>();
    float *pl = losses.ptr<float>(), *pd = dlogits.ptr<float>();
    forEach(n, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t r = b; r < e; ++r) pl[r] = crossEntropyRow(px + r * c, c, lab[r], gradScale, pd + r * c);
    }, std::max<std::int64_t>(1, kInlineElements / 8 / std::max<std::int64_t>(1, c)));
}

void CpuBackend::distillationLoss(const Tensor& student, const Tensor& teacher, const Tensor& labels,
                                  float temperature, float alpha, Tensor& losses, Tensor& parts, Tensor& dstudent,
                                  float gradScale) {
    const char* op = "distillation_loss";
    checkRows(student, op, "student");
    require(Op::DistillationLoss, student.dtype());
    const std::int64_t n = student.dim(0), c = student.dim(1);
    checkSameShape(student, teacher, op, "student", "teacher");
    checkDType(teacher, DType::F32, op, "teacher");
    checkShape(labels, {n}, op, "labels");
    checkDType(labels, DType::I32, op, "labels");
    checkShape(losses, {n}, op, "losses");
    checkDType(losses, DType::F32, op, "losses");
    checkShape(parts, {n, 2}, op, "parts");
    checkDType(parts, DType::F32, op, "parts");
    checkSameShape(student, dstudent, op, "student", "dstudent");
    if (!(temperature > 0.0f) || !std::isfinite(temperature))
        throw BackendError("cpu distillation_loss: temperature " + std::to_string(temperature) + " is not > 0");
    if (!(alpha >= 0.0f && alpha <= 1.0f))
        throw BackendError("cpu distillation_loss: alpha " + std::to_string(alpha) + " is outside [0, 1]");
    checkLabels(labels, c, op);
    const std::int32_t* lab = labels.ptr<const std::int32_t>();
    const float *ps = student.ptr<const float>(), *pt = teacher.ptr<const float>();
    float *pl = losses.ptr<float>(), *pp = parts.ptr<float>(), *pd = dstudent.ptr<float>();
    const float invT = 1.0f / temperature, hardWeight = 1.0f - alpha, softScale = alpha * temperature * gradScale;
    forEach(n, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t r = b; r < e; ++r) {
            const float* s = ps + r * c;
            const float* t = pt + r * c;
            float* d = pd + r * c;
            const float hard = crossEntropyRow(s, c, lab[r], gradScale, d);
            // log-softmax of both at temperature T, around their maxima
            const float ms = *std::max_element(s, s + c) * invT, mt = *std::max_element(t, t + c) * invT;
            double qs = 0.0, pts = 0.0;
            for (std::int64_t j = 0; j < c; ++j) {
                qs += std::exp(s[j] * invT - ms);
                pts += std::exp(t[j] * invT - mt);
            }
            const float logQ = ms + static_cast<float>(std::log(qs)), logP = mt + static_cast<float>(std::log(pts));
            double kl = 0.0;
            for (std::int64_t j = 0; j < c; ++j) {
                const float lp = t[j] * invT - logP, lq = s[j] * invT - logQ;
                const float p = std::exp(lp), q = std::exp(lq);
                if (p > 0.0f) kl += static_cast<double>(p) * (lp - lq);
                d[j] = hardWeight * d[j] + softScale * (q - p);
            }
            const float soft = temperature * temperature * static_cast<float>(kl);
            pp[2 * r] = soft;
            pp[2 * r + 1] = hard;
            pl[r] = alpha * soft + hardWeight * hard;
        }
    }, std::max<std::int64_t>(1, kInlineElements / 16 / std::max<std::int64_t>(1, c)));
}

void CpuBackend::argmaxRows(const Tensor& x, Tensor& out) {
    checkRows(x, "argmax_rows", "x");
    require(Op::ArgmaxRows, x.dtype());
    const std::int64_t n = x.dim(0), c = x.dim(1);
    checkShape(out, {n}, "argmax_rows", "out");
    checkDType(out, DType::I32, "argmax_rows", "out");
    if (c == 0) throw BackendError("cpu argmax_rows: x " + x.describe() + " has no columns");
    const float* px = x.ptr<const float>();
    std::int32_t* po = out.ptr<std::int32_t>();
    forEach(n, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t r = b; r < e; ++r) {
            const float* in = px + r * c;
            std::int64_t best = 0;
            for (std::int64_t j = 1; j < c; ++j)
                if (in[j] > in[best]) best = j;
            po[r] = static_cast<std::int32_t>(best);
        }
    }, std::max<std::int64_t>(1, kInlineElements / 2 / c));
}

} // namespace lathe::cpu

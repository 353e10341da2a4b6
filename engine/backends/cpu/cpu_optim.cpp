// CPU optimizer steps with PyTorch's semantics (torch.optim.SGD, Adam, AdamW), element-wise.
#include "engine/backends/cpu/cpu_backend_impl.h"

#include "engine/core/errors.h"

#include <cmath>

namespace lathe::cpu {

void CpuBackend::sgdStep(Tensor& param, const Tensor& grad, Tensor& velocity, const SgdParams& p, bool firstStep) {
    checkSameShape(param, grad, "sgd_step", "param", "grad");
    require(Op::SgdStep, param.dtype());
    const bool momentum = p.momentum != 0.0f;
    if (momentum) checkSameShape(param, velocity, "sgd_step", "param", "velocity");
    if (p.nesterov && !momentum) throw BackendError("cpu sgd_step: nesterov needs a momentum > 0");
    float* w = param.ptr<float>();
    const float* g = grad.ptr<const float>();
    float* buf = momentum ? velocity.ptr<float>() : nullptr;
    forEach(param.numel(), [&](std::int64_t s, std::int64_t e) {
        for (std::int64_t i = s; i < e; ++i) {
            float d = g[i] + p.weightDecay * w[i];
            if (momentum) {
                // PyTorch: the first step copies the gradient into the buffer (dampening 0).
                buf[i] = firstStep ? d : p.momentum * buf[i] + d;
                d = p.nesterov ? d + p.momentum * buf[i] : buf[i];
            }
            w[i] -= p.lr * d;
        }
    });
}

void CpuBackend::adamStep(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamParams& p,
                          std::int64_t step) {
    checkSameShape(param, grad, "adam_step", "param", "grad");
    checkSameShape(param, m, "adam_step", "param", "m");
    checkSameShape(param, v, "adam_step", "param", "v");
    require(Op::AdamStep, param.dtype());
    if (step < 1) throw BackendError("cpu adam_step: step " + std::to_string(step) + " must count from 1");
    const double bc1 = 1.0 - std::pow(static_cast<double>(p.beta1), static_cast<double>(step));
    const double bc2 = 1.0 - std::pow(static_cast<double>(p.beta2), static_cast<double>(step));
    const float stepSize = static_cast<float>(p.lr / bc1);
    const float bc2Sqrt = static_cast<float>(std::sqrt(bc2));
    const float decay = p.decoupled ? 1.0f - p.lr * p.weightDecay : 1.0f;
    const float l2 = p.decoupled ? 0.0f : p.weightDecay;
    float *w = param.ptr<float>(), *pm = m.ptr<float>(), *pv = v.ptr<float>();
    const float* g = grad.ptr<const float>();
    forEach(param.numel(), [&](std::int64_t s, std::int64_t e) {
        for (std::int64_t i = s; i < e; ++i) {
            w[i] *= decay; // AdamW: decay the weight before the update
            const float gi = g[i] + l2 * w[i];
            pm[i] = p.beta1 * pm[i] + (1.0f - p.beta1) * gi;
            pv[i] = p.beta2 * pv[i] + (1.0f - p.beta2) * gi * gi;
            const float denom = std::sqrt(pv[i]) / bc2Sqrt + p.eps;
            w[i] -= stepSize * pm[i] / denom;
        }
    });
}

} // namespace lathe::cpu

// The CUDA backend's optimizer steps, PyTorch semantics (optim.cu).
#include "engine/backends/cuda/cuda_backend_impl.h"
#include "engine/backends/cuda/cuda_kernels.h"

#include "engine/core/errors.h"

#include <cmath>

namespace lathe::cuda {

void CudaBackend::sgdStep(Tensor& param, const Tensor& grad, Tensor& velocity, const SgdParams& p, bool firstStep) {
    begin(Op::SgdStep, param.dtype(), {&param, &grad});
    checkSame("sgd_step", {&param, &grad});
    if (p.nesterov && p.momentum == 0.0f) throw BackendError("sgd_step: nesterov needs a momentum > 0");
    float* vel = nullptr;
    if (p.momentum != 0.0f) {
        checkOnDevice(velocity, "sgd_step", "velocity");
        checkSame("sgd_step", {&param, &velocity});
        vel = velocity.ptr<float>();
    }
    launchSgdStep(param.ptr<float>(), grad.ptr<float>(), vel, param.numel(), p, firstStep, stream());
}

void CudaBackend::adamStep(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamParams& p,
              std::int64_t step) {
    begin(Op::AdamStep, param.dtype(), {&param, &grad, &m, &v});
    checkSame("adam_step", {&param, &grad, &m, &v});
    if (step < 1) throw BackendError("adam_step: step counts from 1, got " + std::to_string(step));
    const double s = static_cast<double>(step);
    const float bc1 = static_cast<float>(1.0 - std::pow(static_cast<double>(p.beta1), s));
    const float bc2 = static_cast<float>(1.0 - std::pow(static_cast<double>(p.beta2), s));
    launchAdamStep(param.ptr<float>(), grad.ptr<float>(), m.ptr<float>(), v.ptr<float>(), param.numel(), p, bc1,
                   bc2, stream());
}

} // namespace lathe::cuda

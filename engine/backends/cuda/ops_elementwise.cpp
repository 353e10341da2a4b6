// The CUDA backend's elementwise family: bias add/grad, arithmetic, activations and dropout
// (kernels in elementwise.cu and reduce.cu).
#include "engine/backends/cuda/cuda_backend_impl.h"
#include "engine/backends/cuda/cuda_kernels.h"

#include "engine/core/errors.h"

namespace lathe::cuda {
namespace {

// Product of the dimensions after the channel dimension (1 for a 2-D tensor).
std::int64_t innerOf(const Tensor& x) {
    std::int64_t inner = 1;
    for (int i = 2; i < x.rank(); ++i) inner *= x.dim(i);
    return inner;
}

} // namespace

void CudaBackend::checkBias(const Tensor& x, const Tensor& bias, const char* op) {
    if (x.rank() < 2) throw BackendError(std::string(op) + ": expects (outer, C, ...), got " + x.describe());
    checkShape(bias, {x.dim(1)}, x.dtype(), op, "bias");
}

void CudaBackend::biasAdd(Tensor& x, const Tensor& bias) {
    begin(Op::BiasAdd, x.dtype(), {&x, &bias});
    checkBias(x, bias, "bias_add");
    launchBiasAdd(x.data(), bias.data(), x.dtype(), x.dim(0), x.dim(1), innerOf(x), stream());
}

void CudaBackend::biasGrad(const Tensor& dy, Tensor& dbias, bool accumulate) {
    begin(Op::BiasGrad, dy.dtype(), {&dy, &dbias});
    checkBias(dy, dbias, "bias_grad");
    launchBiasGrad(dy.data(), dbias.data(), dy.dtype(), dy.dim(0), dy.dim(1), innerOf(dy), accumulate, stream());
}

void CudaBackend::add(const Tensor& a, const Tensor& b, Tensor& out) {
    begin(Op::Add, a.dtype(), {&a, &b, &out});
    checkSame("add", {&a, &b, &out});
    launchAdd(a.data(), b.data(), out.data(), a.dtype(), a.numel(), stream());
}

void CudaBackend::mul(const Tensor& a, const Tensor& b, Tensor& out) {
    begin(Op::Mul, a.dtype(), {&a, &b, &out});
    checkSame("mul", {&a, &b, &out});
    launchMul(a.data(), b.data(), out.data(), a.dtype(), a.numel(), stream());
}

void CudaBackend::axpy(float alpha, const Tensor& x, Tensor& y) {
    begin(Op::Axpy, x.dtype(), {&x, &y});
    checkSame("axpy", {&x, &y});
    launchAxpy(alpha, x.data(), y.data(), x.dtype(), x.numel(), stream());
}

void CudaBackend::scale(Tensor& x, float s) {
    begin(Op::Scale, x.dtype(), {&x});
    launchScale(x.data(), s, x.dtype(), x.numel(), stream());
}

void CudaBackend::relu(const Tensor& x, Tensor& y) {
    begin(Op::Relu, x.dtype(), {&x, &y});
    checkSame("relu", {&x, &y});
    launchRelu(x.data(), y.data(), x.dtype(), x.numel(), stream());
}

void CudaBackend::reluBackward(const Tensor& x, const Tensor& dy, Tensor& dx) {
    begin(Op::ReluBackward, x.dtype(), {&x, &dy, &dx});
    checkSame("relu_backward", {&x, &dy, &dx});
    launchReluBackward(x.data(), dy.data(), dx.data(), x.dtype(), x.numel(), stream());
}

void CudaBackend::gelu(const Tensor& x, Tensor& y) {
    begin(Op::Gelu, x.dtype(), {&x, &y});
    checkSame("gelu", {&x, &y});
    launchGelu(x.data(), y.data(), x.dtype(), x.numel(), stream());
}

void CudaBackend::geluBackward(const Tensor& x, const Tensor& dy, Tensor& dx) {
    begin(Op::GeluBackward, x.dtype(), {&x, &dy, &dx});
    checkSame("gelu_backward", {&x, &dy, &dx});
    launchGeluBackward(x.data(), dy.data(), dx.data(), x.dtype(), x.numel(), stream());
}

void CudaBackend::dropout(const Tensor& x, Tensor& y, Tensor& mask, float p, std::uint64_t seed) {
    begin(Op::Dropout, x.dtype(), {&x, &y, &mask});
    checkSame("dropout", {&x, &y, &mask});
    if (!(p >= 0.0f && p <= 1.0f)) throw BackendError("dropout: p = " + std::to_string(p) + " is outside [0, 1]");
    launchDropout(x.data(), y.data(), mask.data(), x.dtype(), x.numel(), p, seed, stream());
}

} // namespace lathe::cuda

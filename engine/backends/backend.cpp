// Host-side helpers shared by every backend.
#include "engine/backends/backend.h"

#include "engine/core/errors.h"

#include <cstring>

namespace lathe {

namespace {

std::string pair(std::int64_t a, std::int64_t b) { return std::to_string(a) + "x" + std::to_string(b); }

} // namespace

void checkConvGeometry(const Conv2dGeometry& g, const std::string& op) {
    if (g.batch < 0 || g.inChannels < 1 || g.outChannels < 1 || g.kernelH < 1 || g.kernelW < 1 || g.strideH < 1 ||
        g.strideW < 1 || g.padH < 0 || g.padW < 0 || g.height + 2 * g.padH < g.kernelH ||
        g.width + 2 * g.padW < g.kernelW)
        throw BackendError(op + ": invalid convolution geometry (N=" + std::to_string(g.batch) + ", C=" +
                           std::to_string(g.inChannels) + ", H=" + std::to_string(g.height) + ", W=" +
                           std::to_string(g.width) + ", K=" + std::to_string(g.outChannels) + ", kernel " +
                           pair(g.kernelH, g.kernelW) + ", stride " + pair(g.strideH, g.strideW) + ", padding " +
                           pair(g.padH, g.padW) + "): kernel and stride must be >= 1, padding >= 0, and the padded "
                           "input at least one kernel wide");
    if (g.groups < 1 || g.inChannels % g.groups != 0 || g.outChannels % g.groups != 0)
        throw BackendError(op + ": groups=" + std::to_string(g.groups) +
                           " must divide both the input channels (C=" + std::to_string(g.inChannels) +
                           ") and the output channels (K=" + std::to_string(g.outChannels) + ")");
}

void checkPoolGeometry(const Pool2dGeometry& g, const std::string& op) {
    if (g.batch < 0 || g.channels < 1 || g.kernelH < 1 || g.kernelW < 1 || g.strideH < 1 || g.strideW < 1 ||
        g.padH < 0 || g.padW < 0 || 2 * g.padH > g.kernelH || 2 * g.padW > g.kernelW ||
        g.height + 2 * g.padH < g.kernelH || g.width + 2 * g.padW < g.kernelW)
        throw BackendError(op + ": invalid pooling geometry (N=" + std::to_string(g.batch) + ", C=" +
                           std::to_string(g.channels) + ", input " + pair(g.height, g.width) + ", kernel " +
                           pair(g.kernelH, g.kernelW) + ", stride " + pair(g.strideH, g.strideW) + ", padding " +
                           pair(g.padH, g.padW) + "): kernel and stride must be >= 1, padding between 0 and half "
                           "the kernel, and the padded input at least one kernel wide");
}

void Backend::require(const OpDesc& desc) const {
    if (!supports(desc)) throw BackendError(name() + " does not support " + desc.toString());
}

OpDesc weightOnlyGemmDesc(WeightFormat format) {
    switch (format) {
    case WeightFormat::Int8: return OpDesc::gemm(DType::F32, DType::I8, DType::F32, DType::F32, OpLayout::Int8Groups);
    case WeightFormat::Int4: return OpDesc::gemm(DType::F32, DType::U8, DType::F32, DType::F32, OpLayout::Int4Groups);
    case WeightFormat::Nf4: return OpDesc::gemm(DType::F32, DType::U8, DType::F32, DType::F32, OpLayout::Nf4Groups);
    case WeightFormat::Fp8:
        return OpDesc::gemm(DType::F32, DType::F8E4M3, DType::F32, DType::F32, OpLayout::Fp8Groups);
    }
    throw BackendError("weight-only gemm: no such format");
}

OpDesc fp8GemmDesc(Fp8Mode mode) {
    return OpDesc::gemm(DType::F8E4M3, DType::F8E4M3, DType::F32, DType::F32,
                        mode == Fp8Mode::Native ? OpLayout::Dense : OpLayout::Fp8Emulated);
}

void Backend::gemmFp8(const Tensor&, const QuantizedWeights&, const Tensor*, Activation, Fp8Mode mode, Tensor&) {
    require(fp8GemmDesc(mode));
    throw BackendError(name() + ": gemm_fp8 is in its op table but not implemented");
}

OpDesc int8GemmDesc() { return OpDesc::gemm(DType::I8, DType::I8, DType::F32, DType::I32); }

void Backend::gemmBiasAct(const Tensor& x, const Tensor&, const Tensor*, Activation, Tensor&) {
    require(Op::GemmBiasAct, x.dtype());
    throw BackendError(name() + ": gemm_bias_act is in its op table but not implemented");
}

Tensor Backend::prepackGemmWeight(const Tensor&) {
    return Tensor();
}

void Backend::gemmBiasActPacked(const Tensor& x, const Tensor& w, const Tensor&, const Tensor* bias, Activation act,
                                Tensor& y) {
    gemmBiasAct(x, w, bias, act, y);
}

void Backend::gemmWeightOnly(const Tensor&, const QuantizedWeights& w, const Tensor*, Activation, Tensor&) {
    require(weightOnlyGemmDesc(w.spec.format));
    throw BackendError(name() + ": gemm_weight_only is in its op table but not implemented");
}

void Backend::quantizeRows(const Tensor& x, Tensor&, Tensor&, bool) {
    require(Op::QuantizeRows, x.dtype());
    throw BackendError(name() + ": quantize_rows is in its op table but not implemented");
}

void Backend::im2colRows(const Tensor& x, Tensor&, const Conv2dGeometry&) {
    require(Op::Im2colRows, x.dtype());
    throw BackendError(name() + ": im2col_rows is in its op table but not implemented");
}

void Backend::rowsToChannels(const Tensor& rows, Tensor&, std::int64_t) {
    require(Op::RowsToChannels, rows.dtype());
    throw BackendError(name() + ": rows_to_channels is in its op table but not implemented");
}

Tensor Backend::prepackInt8(const Tensor& wq) {
    require(int8GemmDesc());
    return wq;
}

void Backend::gemmInt8(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor*, Activation, Tensor&) {
    require(int8GemmDesc());
    throw BackendError(name() + ": the int8 gemm is in its op table but not implemented");
}

Tensor Backend::empty(const Shape& shape, DType dtype) {
    return Tensor(allocate(tensorBytes(shape, dtype)), shape, dtype);
}

Tensor Backend::zeros(const Shape& shape, DType dtype) {
    Tensor t = empty(shape, dtype);
    fill(t, 0.0f);
    return t;
}

Tensor Backend::upload(const Tensor& hostTensor) {
    if (!hostTensor.isHost()) throw BackendError("upload expects a host tensor, got " + hostTensor.describe());
    Tensor t = empty(hostTensor.shape(), hostTensor.dtype());
    copyFromHost(t, hostTensor.data());
    return t;
}

namespace {

// One typed vector of numel(shape) elements into a new tensor of dtype dt on `be`.
template <class T>
Tensor uploadVector(Backend& be, const std::vector<T>& values, const Shape& shape, DType dt) {
    if (static_cast<std::int64_t>(values.size()) != numel(shape))
        throw BackendError("upload: " + std::to_string(values.size()) + " values for shape " + shapeToString(shape));
    Tensor t = be.empty(shape, dt);
    be.copyFromHost(t, values.data());
    return t;
}

} // namespace

Tensor Backend::upload(const std::vector<float>& values, const Shape& shape) {
    return uploadVector(*this, values, shape, DType::F32);
}

Tensor Backend::uploadI32(const std::vector<std::int32_t>& values, const Shape& shape) {
    return uploadVector(*this, values, shape, DType::I32);
}

Tensor Backend::uploadU8(const std::vector<std::uint8_t>& values, const Shape& shape) {
    return uploadVector(*this, values, shape, DType::U8);
}

Tensor Backend::download(const Tensor& t) {
    Tensor h = Tensor::host(t.shape(), t.dtype());
    copyToHost(t, h.data());
    return h;
}

std::vector<float> Backend::downloadF32(const Tensor& t) {
    Tensor h = download(t);
    std::vector<float> out(static_cast<std::size_t>(t.numel()));
    traits(t.dtype()).toFloat(h.data(), out.data(), out.size());
    return out;
}

} // namespace lathe

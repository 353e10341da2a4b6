// Host-side helpers shared by every backend.
#include "engine/backends/backend.h"

#include "engine/core/errors.h"

#include <cstring>

namespace lathe {

void Backend::require(const OpDesc& desc) const {
    if (!supports(desc)) throw BackendError(name() + " does not support " + desc.toString());
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

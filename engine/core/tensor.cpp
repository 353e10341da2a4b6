// Tensor views and host storage.
#include "engine/core/tensor.h"

#include "engine/core/errors.h"

#include <cstdlib>
#include <new>

namespace lathe {

std::string Device::toString() const {
    return kind == DeviceKind::Cpu ? std::string("cpu") : "cuda:" + std::to_string(index);
}

HostStorage::HostStorage(std::size_t bytes)
    : Storage(Device{DeviceKind::Cpu, 0}, nullptr, bytes) {
    const std::size_t rounded = (bytes + 63) / 64 * 64;
    m_data = rounded ? std::aligned_alloc(64, rounded) : nullptr;
    if (rounded && !m_data) throw std::bad_alloc();
}

HostStorage::~HostStorage() { std::free(m_data); }

void checkBlockShape(const Shape& shape, DType dtype) {
    // Block formats quantize along the last dimension: every row holds whole blocks, so rows can be
    // sliced and addressed by bytes.
    const auto& tr = traits(dtype);
    if (tr.blockSize > 1 && (shape.empty() || shape.back() % tr.blockSize != 0))
        throw BackendError(std::string("a ") + tr.name + " tensor of shape " + shapeToString(shape) +
                           " needs a last dimension that is a multiple of its block size " +
                           std::to_string(tr.blockSize));
}

std::size_t tensorBytes(const Shape& shape, DType dtype) {
    checkBlockShape(shape, dtype);
    return storageBytes(dtype, static_cast<std::size_t>(lathe::numel(shape)));
}

Tensor::Tensor(std::shared_ptr<Storage> storage, Shape shape, DType dtype, std::size_t offsetBytes)
    : m_storage(std::move(storage)), m_offset(offsetBytes), m_shape(std::move(shape)), m_dtype(dtype) {
    for (auto d : m_shape)
        if (d < 0) throw BackendError("negative extent in shape " + shapeToString(m_shape));
    checkBlockShape(m_shape, m_dtype);
    if (m_storage && m_offset + bytes() > m_storage->bytes())
        throw BackendError("tensor " + describe() + " does not fit its storage of " +
                           std::to_string(m_storage->bytes()) + " bytes");
}

Tensor Tensor::host(const Shape& shape, DType dtype) {
    auto st = std::make_shared<HostStorage>(tensorBytes(shape, dtype));
    return Tensor(std::move(st), shape, dtype);
}

std::int64_t Tensor::dim(int i) const {
    const int r = rank();
    if (i < 0) i += r;
    if (i < 0 || i >= r) throw BackendError("dimension " + std::to_string(i) + " out of range for " + describe());
    return m_shape[static_cast<std::size_t>(i)];
}

Device Tensor::device() const { return m_storage ? m_storage->device() : Device{}; }

void* Tensor::data() const {
    return m_storage ? static_cast<char*>(m_storage->data()) + m_offset : nullptr;
}

Tensor Tensor::view(const Shape& shape) const {
    if (lathe::numel(shape) != numel())
        throw BackendError("cannot view " + describe() + " as " + shapeToString(shape));
    return Tensor(m_storage, shape, m_dtype, m_offset);
}

Tensor Tensor::slice0(std::int64_t begin, std::int64_t end) const {
    if (rank() == 0 || begin < 0 || end < begin || end > m_shape[0])
        throw BackendError("slice [" + std::to_string(begin) + ", " + std::to_string(end) + ") out of range for " +
                           describe());
    Shape s = m_shape;
    s[0] = end - begin;
    const std::size_t rowBytes = m_shape[0] ? bytes() / static_cast<std::size_t>(m_shape[0]) : 0;
    return Tensor(m_storage, s, m_dtype, m_offset + rowBytes * static_cast<std::size_t>(begin));
}

std::string Tensor::describe() const {
    return std::string(dtypeName(m_dtype)) + shapeToString(m_shape) + " on " + device().toString();
}

} // namespace lathe

// Tensor: a typed, shaped view over an owning device buffer (Storage). Contiguous row-major.
// Storage is allocated by a Backend and frees itself (RAII); tensors share it by reference.
#pragma once

#include "engine/core/dtype.h"
#include "engine/core/shape.h"

#include <cstddef>
#include <memory>
#include <string>

namespace lathe {

enum class DeviceKind : std::uint8_t { Cpu, Cuda };

struct Device {
    DeviceKind kind = DeviceKind::Cpu;
    int index = 0;
    std::string toString() const; // "cpu", "cuda:0"
    bool operator==(const Device&) const = default;
};

// An owning buffer on one device. Subclasses free their memory in the destructor and never throw there.
class Storage {
public:
    Storage(Device device, void* data, std::size_t bytes) : m_device(device), m_data(data), m_bytes(bytes) {}
    virtual ~Storage() = default;
    Storage(const Storage&) = delete;
    Storage& operator=(const Storage&) = delete;

    void* data() const { return m_data; }
    std::size_t bytes() const { return m_bytes; }
    Device device() const { return m_device; }

protected:
    Device m_device;
    void* m_data;
    std::size_t m_bytes;
};

// Host memory, 64-byte aligned.
class HostStorage final : public Storage {
public:
    explicit HostStorage(std::size_t bytes);
    ~HostStorage() override;
};

// Block formats (traits(dtype).blockSize > 1) need a last dimension that is a whole number of blocks;
// throws BackendError naming the shape otherwise.
void checkBlockShape(const Shape& shape, DType dtype);
// Storage bytes of a contiguous tensor (after checkBlockShape).
std::size_t tensorBytes(const Shape& shape, DType dtype);

class Tensor {
public:
    Tensor() = default;
    Tensor(std::shared_ptr<Storage> storage, Shape shape, DType dtype, std::size_t offsetBytes = 0);

    // A host tensor (for data loading, checkpoints, references).
    static Tensor host(const Shape& shape, DType dtype);

    bool defined() const { return static_cast<bool>(m_storage); }
    const Shape& shape() const { return m_shape; }
    Shape strides() const { return contiguousStrides(m_shape); }
    int rank() const { return static_cast<int>(m_shape.size()); }
    std::int64_t dim(int i) const; // negative counts from the end
    std::int64_t numel() const { return lathe::numel(m_shape); }
    DType dtype() const { return m_dtype; }
    std::size_t bytes() const { return storageBytes(m_dtype, static_cast<std::size_t>(numel())); }
    Device device() const;
    bool isHost() const { return device().kind == DeviceKind::Cpu; }

    void* data() const;
    template <class T>
    T* ptr() const { return static_cast<T*>(data()); }

    // Same storage, another shape with the same number of elements.
    Tensor view(const Shape& shape) const;
    // Rows [begin, end) of dimension 0, sharing storage.
    Tensor slice0(std::int64_t begin, std::int64_t end) const;

    const std::shared_ptr<Storage>& storage() const { return m_storage; }
    std::string describe() const; // "f32[64, 784] on cpu"

private:
    std::shared_ptr<Storage> m_storage;
    std::size_t m_offset = 0;
    Shape m_shape;
    DType m_dtype = DType::F32;
};

} // namespace lathe

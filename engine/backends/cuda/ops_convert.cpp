// The CUDA backend's fill and dtype conversion (kernels in elementwise.cu and convert.cu).
#include "engine/backends/cuda/cuda_backend_impl.h"
#include "engine/backends/cuda/cuda_kernels.h"

#include "engine/core/errors.h"

#include <algorithm>

namespace lathe::cuda {

void CudaBackend::fill(Tensor& x, float value) {
    begin(Op::Fill, x.dtype(), {&x});
    launchFill(x.data(), x.dtype(), x.numel(), value, stream());
}

void CudaBackend::convert(const Tensor& src, Tensor& dst) {
    begin(OpDesc::convert(src.dtype(), dst.dtype()), {&src, &dst});
    if (src.numel() != dst.numel())
        throw BackendError("convert: " + src.describe() + " and " + dst.describe() + " differ in element count");
    const std::int64_t group = std::max(traits(src.dtype()).blockSize, traits(dst.dtype()).blockSize);
    if (src.numel() % group != 0)
        throw BackendError("convert: " + src.describe() + " -> " + dst.describe() +
                           ": the element count is not a whole number of the format's blocks");
    if (src.dtype() == dst.dtype()) {
        copy(src, dst);
        return;
    }
    launchConvert(src.data(), src.dtype(), dst.data(), dst.dtype(), src.numel(), stream());
}

} // namespace lathe::cuda

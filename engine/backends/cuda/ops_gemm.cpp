// The CUDA backend's GEMM: argument checks, then the cuBLAS / cuBLASLt engine of cuda_gemm.cpp.
#include "engine/backends/cuda/cuda_backend_impl.h"
#include "engine/backends/cuda/cuda_kernels.h"

#include "engine/core/errors.h"

namespace lathe::cuda {

void CudaBackend::gemm(const Tensor& a, Trans ta, const Tensor& b, Trans tb, Tensor& c, float alpha, float beta) {
    // Mixed dtypes are their own descriptors; the table says which ones have a kernel.
    begin(OpDesc::gemm(a.dtype(), b.dtype(), c.dtype(), OpDesc::accumulatorFor(c.dtype())), {&a, &b, &c});
    if (a.rank() != 2 || b.rank() != 2 || c.rank() != 2)
        throw BackendError("gemm: expects 2-D tensors, got " + a.describe() + ", " + b.describe() + ", " +
                           c.describe());
    const std::int64_t m = ta == Trans::No ? a.dim(0) : a.dim(1);
    const std::int64_t k = ta == Trans::No ? a.dim(1) : a.dim(0);
    const std::int64_t kb = tb == Trans::No ? b.dim(0) : b.dim(1);
    const std::int64_t n = tb == Trans::No ? b.dim(1) : b.dim(0);
    if (k != kb || c.dim(0) != m || c.dim(1) != n)
        throw BackendError("gemm: shapes do not agree: op(a) is (" + std::to_string(m) + ", " + std::to_string(k) +
                           "), op(b) is (" + std::to_string(kb) + ", " + std::to_string(n) + "), c is " +
                           shapeToString(c.shape()));
    // a (M, K) or (K, M); b (K, N) or (N, K); c (M, N)
    m_gemm.run(a.dtype(), ta, tb, m, n, k, alpha, a.data(), a.dim(1), b.data(), b.dim(1), beta, c.data(), n);
}

} // namespace lathe::cuda

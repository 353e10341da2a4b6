// The CUDA backend's sparse-weight products, used by the pruned Linear's inference paths: CSR through
// cuSPARSE's generic SpMM (CSR x dense), 2:4 through our own kernel (sparse24.cu). Row-major x (N, in) and y (N, out) are read by cuSPARSE as the
// column-major matrices x^T (in, N) and y^T (out, N), so y^T = W x^T is one non-transposed SpMM.
#include "engine/backends/cuda/cuda_backend_impl.h"
#include "engine/backends/cuda/cuda_kernels.h"
#include "engine/backends/sparse24.h"

#include "engine/core/errors.h"

#include <cusparse.h>

#include <cstdio>

namespace lathe::cuda {
namespace {

[[noreturn]] void throwCusparseError(cusparseStatus_t status, const char* call, const char* file, int line) {
    throw BackendError(std::string("cuSPARSE error: ") + call + " failed at " + shortPath(file) + ":" +
                       std::to_string(line) + ": " + cusparseGetErrorString(status) + " (" +
                       std::to_string(static_cast<int>(status)) + ")");
}

#define LATHE_CUSPARSE_CHECK(call)                                                               \
    do {                                                                                         \
        const cusparseStatus_t lathe_st_ = (call);                                               \
        if (lathe_st_ != CUSPARSE_STATUS_SUCCESS) throwCusparseError(lathe_st_, #call, __FILE__, __LINE__); \
    } while (0)

// Descriptors that destroy themselves when a later call throws.
struct SpMat {
    cusparseSpMatDescr_t d = nullptr;
    ~SpMat() { if (d) cusparseDestroySpMat(d); }
};
struct DnMat {
    cusparseDnMatDescr_t d = nullptr;
    ~DnMat() { if (d) cusparseDestroyDnMat(d); }
};

} // namespace

struct CudaBackend::SparseState {
    cusparseHandle_t handle = nullptr;
    void* workspace = nullptr;
    std::size_t workspaceBytes = 0;
    ~SparseState() {
        if (workspace) cudaFree(workspace);
        if (handle) cusparseDestroy(handle);
    }
};

void CudaBackend::SparseStateDeleter::operator()(SparseState* s) const { delete s; }

void CudaBackend::spmmCsr(const Tensor& x, const Tensor& rowPtr, const Tensor& colIdx, const Tensor& values,
                          Tensor& y) {
    const char* op = "spmm_csr";
    begin(OpDesc::uniform(Op::SpmmCsr, x.dtype()), {&x, &rowPtr, &colIdx, &values, &y});
    if (x.rank() != 2 || rowPtr.rank() != 1 || rowPtr.numel() < 1)
        throw BackendError("spmm_csr: expects x (N, in) and rowPtr (out + 1), got " + x.describe() + ", " +
                           rowPtr.describe());
    const std::int64_t n = x.dim(0), in = x.dim(1), out = rowPtr.numel() - 1, nnz = colIdx.numel();
    checkShape(colIdx, {nnz}, DType::I32, op, "colIdx");
    checkShape(values, {nnz}, x.dtype(), op, "values");
    checkShape(y, {n, out}, x.dtype(), op, "y");
    if (n == 0 || out == 0) return;
    if (nnz == 0) { // cuSPARSE is not asked about an empty matrix: y is zero
        LATHE_CUDA_CHECK(cudaMemsetAsync(y.data(), 0, y.bytes(), stream()));
        return;
    }
    if (!m_sparse) {
        m_sparse.reset(new SparseState);
        LATHE_CUSPARSE_CHECK(cusparseCreate(&m_sparse->handle));
    }
    cusparseHandle_t h = m_sparse->handle;
    LATHE_CUSPARSE_CHECK(cusparseSetStream(h, stream()));

    SpMat w;    // W (out, in), CSR
    DnMat xT;   // x^T (in, N), column-major, ld = in
    DnMat yT;   // y^T (out, N), column-major, ld = out
    LATHE_CUSPARSE_CHECK(cusparseCreateCsr(&w.d, out, in, nnz, const_cast<void*>(rowPtr.data()),
                                           const_cast<void*>(colIdx.data()), const_cast<void*>(values.data()),
                                           CUSPARSE_INDEX_32I, CUSPARSE_INDEX_32I, CUSPARSE_INDEX_BASE_ZERO,
                                           CUDA_R_32F));
    LATHE_CUSPARSE_CHECK(cusparseCreateDnMat(&xT.d, in, n, in, const_cast<void*>(x.data()), CUDA_R_32F,
                                             CUSPARSE_ORDER_COL));
    LATHE_CUSPARSE_CHECK(cusparseCreateDnMat(&yT.d, out, n, out, y.data(), CUDA_R_32F, CUSPARSE_ORDER_COL));
    const float alpha = 1.0f, beta = 0.0f;
    std::size_t bytes = 0;
    LATHE_CUSPARSE_CHECK(cusparseSpMM_bufferSize(h, CUSPARSE_OPERATION_NON_TRANSPOSE,
                                                 CUSPARSE_OPERATION_NON_TRANSPOSE, &alpha, w.d, xT.d, &beta, yT.d,
                                                 CUDA_R_32F, CUSPARSE_SPMM_ALG_DEFAULT, &bytes));
    if (bytes > m_sparse->workspaceBytes) {
        LATHE_CUDA_CHECK(cudaStreamSynchronize(stream())); // the old workspace may still be in use
        if (m_sparse->workspace) LATHE_CUDA_CHECK(cudaFree(m_sparse->workspace));
        m_sparse->workspace = nullptr;
        m_sparse->workspaceBytes = 0;
        LATHE_CUDA_CHECK(cudaMalloc(&m_sparse->workspace, bytes));
        m_sparse->workspaceBytes = bytes;
    }
    LATHE_CUSPARSE_CHECK(cusparseSpMM(h, CUSPARSE_OPERATION_NON_TRANSPOSE, CUSPARSE_OPERATION_NON_TRANSPOSE, &alpha,
                                      w.d, xT.d, &beta, yT.d, CUDA_R_32F, CUSPARSE_SPMM_ALG_DEFAULT,
                                      m_sparse->workspace));
}

void CudaBackend::spmm24(const Tensor& x, const Tensor& values, const Tensor& meta, Tensor& y) {
    const char* op = "spmm_24";
    begin(OpDesc::uniform(Op::Spmm24, x.dtype()), {&x, &values, &meta, &y});
    if (x.rank() != 2 || values.rank() != 2)
        throw BackendError("spmm_24: expects x (N, in) and values (out, 2 * groups), got " + x.describe() + ", " +
                           values.describe());
    const std::int64_t n = x.dim(0), in = x.dim(1), out = values.dim(0);
    checkShape(values, {out, Sparse24Layout::kKept * sparse24Groups(in)}, x.dtype(), op, "values");
    checkShape(meta, {out, sparse24MetaBytesPerRow(in)}, DType::U8, op, "meta");
    checkShape(y, {n, out}, x.dtype(), op, "y");
    launchSpmm24(x.ptr<float>(), values.ptr<float>(), meta.ptr<std::uint8_t>(), y.ptr<float>(), n, in, out,
                 stream());
}

} // namespace lathe::cuda

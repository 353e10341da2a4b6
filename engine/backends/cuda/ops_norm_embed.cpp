// The CUDA backend's layer and batch norms and embedding lookups (layernorm.cu, batchnorm.cu, embedding.cu).
#include "engine/backends/cuda/cuda_backend_impl.h"
#include "engine/backends/cuda/cuda_kernels.h"

#include "engine/core/errors.h"

namespace lathe::cuda {

void CudaBackend::layerNormForward(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& y, Tensor& mean,
                      Tensor& rstd, float eps) {
    begin(Op::LayerNormForward, x.dtype(), {&x, &gamma, &beta, &y, &mean, &rstd});
    checkRank(x, 2, "layernorm_forward", "x");
    const std::int64_t rows = x.dim(0), dim = x.dim(1);
    checkShape(gamma, {dim}, DType::F32, "layernorm_forward", "gamma");
    checkShape(beta, {dim}, DType::F32, "layernorm_forward", "beta");
    checkShape(y, x.shape(), DType::F32, "layernorm_forward", "y");
    checkShape(mean, {rows}, DType::F32, "layernorm_forward", "mean");
    checkShape(rstd, {rows}, DType::F32, "layernorm_forward", "rstd");
    launchLayerNormForward(x.ptr<float>(), gamma.ptr<float>(), beta.ptr<float>(), y.ptr<float>(),
                           mean.ptr<float>(), rstd.ptr<float>(), rows, dim, eps, stream());
}

void CudaBackend::layerNormBackward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                       const Tensor& rstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta, bool accumulate) {
    begin(Op::LayerNormBackward, x.dtype(), {&dy, &x, &gamma, &mean, &rstd, &dx, &dgamma, &dbeta});
    checkRank(x, 2, "layernorm_backward", "x");
    const std::int64_t rows = x.dim(0), dim = x.dim(1);
    checkShape(dy, x.shape(), DType::F32, "layernorm_backward", "dy");
    checkShape(dx, x.shape(), DType::F32, "layernorm_backward", "dx");
    checkShape(gamma, {dim}, DType::F32, "layernorm_backward", "gamma");
    checkShape(dgamma, {dim}, DType::F32, "layernorm_backward", "dgamma");
    checkShape(dbeta, {dim}, DType::F32, "layernorm_backward", "dbeta");
    checkShape(mean, {rows}, DType::F32, "layernorm_backward", "mean");
    checkShape(rstd, {rows}, DType::F32, "layernorm_backward", "rstd");
    launchLayerNormBackward(dy.ptr<float>(), x.ptr<float>(), gamma.ptr<float>(), mean.ptr<float>(),
                            rstd.ptr<float>(), dx.ptr<float>(), dgamma.ptr<float>(), dbeta.ptr<float>(), rows, dim,
                            accumulate, stream());
}

namespace {
// N, C and the product of the dims after C of a batch-norm input (N, C, ...).
void channelLayout(const Tensor& x, const char* op, std::int64_t& n, std::int64_t& c, std::int64_t& inner) {
    if (x.rank() < 2) throw BackendError(std::string("cuda ") + op + ": x is " + x.describe() + ", expected (N, C, ...)");
    n = x.dim(0);
    c = x.dim(1);
    inner = 1;
    for (std::size_t i = 2; i < x.rank(); ++i) inner *= x.dim(i);
}
} // namespace

void CudaBackend::batchNormForward(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& runningMean,
                                   Tensor& runningVar, Tensor& y, Tensor& mean, Tensor& rstd, const BatchNormParams& p) {
    const char* op = "batchnorm_forward";
    begin(Op::BatchNormForward, x.dtype(), {&x, &gamma, &beta, &runningMean, &runningVar, &y, &mean, &rstd});
    std::int64_t n = 0, c = 0, inner = 1;
    channelLayout(x, op, n, c, inner);
    checkShape(y, x.shape(), DType::F32, op, "y");
    for (const Tensor* t : {&gamma, &beta, static_cast<const Tensor*>(&runningMean),
                            static_cast<const Tensor*>(&runningVar), static_cast<const Tensor*>(&mean),
                            static_cast<const Tensor*>(&rstd)})
        checkShape(*t, {c}, DType::F32, op, "a per-channel tensor");
    if (p.training && n * inner < 2)
        throw BackendError("cuda batchnorm_forward: training needs more than one value per channel, x is " +
                           x.describe());
    launchBatchNormForward(x.ptr<float>(), gamma.ptr<float>(), beta.ptr<float>(), runningMean.ptr<float>(),
                           runningVar.ptr<float>(), y.ptr<float>(), mean.ptr<float>(), rstd.ptr<float>(), n, c, inner,
                           p, stream());
}

void CudaBackend::batchNormBackward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                    const Tensor& rstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta, bool accumulate) {
    const char* op = "batchnorm_backward";
    begin(Op::BatchNormBackward, x.dtype(), {&dy, &x, &gamma, &mean, &rstd, &dx, &dgamma, &dbeta});
    std::int64_t n = 0, c = 0, inner = 1;
    channelLayout(x, op, n, c, inner);
    checkShape(dy, x.shape(), DType::F32, op, "dy");
    checkShape(dx, x.shape(), DType::F32, op, "dx");
    for (const Tensor* t : {&gamma, &mean, &rstd, static_cast<const Tensor*>(&dgamma), static_cast<const Tensor*>(&dbeta)})
        checkShape(*t, {c}, DType::F32, op, "a per-channel tensor");
    launchBatchNormBackward(dy.ptr<float>(), x.ptr<float>(), gamma.ptr<float>(), mean.ptr<float>(), rstd.ptr<float>(),
                            dx.ptr<float>(), dgamma.ptr<float>(), dbeta.ptr<float>(), n, c, inner, accumulate,
                            stream());
}

void CudaBackend::embeddingForward(const Tensor& ids, const Tensor& table, Tensor& y) {
    begin(Op::EmbeddingForward, table.dtype(), {&ids, &table, &y});
    checkRank(table, 2, "embedding_forward", "table");
    const std::int64_t n = ids.numel(), vocab = table.dim(0), dim = table.dim(1);
    if (ids.dtype() != DType::I32) throw BackendError("embedding_forward: ids must be i32, got " + ids.describe());
    if (y.dtype() != DType::F32 || y.numel() != n * dim)
        throw BackendError("embedding_forward: y is " + y.describe() + ", expected " + std::to_string(n) + " x " +
                           std::to_string(dim) + " f32 values");
    resetErrorFlag();
    launchEmbeddingForward(ids.ptr<std::int32_t>(), table.ptr<float>(), y.ptr<float>(), n, vocab, dim,
                           m_errorFlag, stream());
    throwIfFlagged([&](int row, int id) {
        return "embedding_forward: id " + std::to_string(id) + " at position " + std::to_string(row) +
               " is out of range [0, " + std::to_string(vocab) + ") for table " + table.describe();
    });
}

void CudaBackend::embeddingBackward(const Tensor& ids, const Tensor& dy, Tensor& dtable, bool accumulate) {
    begin(Op::EmbeddingBackward, dtable.dtype(), {&ids, &dy, &dtable});
    checkRank(dtable, 2, "embedding_backward", "dtable");
    const std::int64_t n = ids.numel(), vocab = dtable.dim(0), dim = dtable.dim(1);
    if (ids.dtype() != DType::I32) throw BackendError("embedding_backward: ids must be i32, got " + ids.describe());
    if (dy.dtype() != DType::F32 || dy.numel() != n * dim)
        throw BackendError("embedding_backward: dy is " + dy.describe() + ", expected " + std::to_string(n) +
                           " x " + std::to_string(dim) + " f32 values");
    // The ids are checked before dtable is touched: a bad id leaves the gradient as it was, as on the CPU.
    resetErrorFlag();
    launchEmbeddingCheck(ids.ptr<std::int32_t>(), n, vocab, m_errorFlag, stream());
    throwIfFlagged([&](int row, int id) {
        return "embedding_backward: id " + std::to_string(id) + " at position " + std::to_string(row) +
               " is out of range [0, " + std::to_string(vocab) + ")";
    });
    if (!accumulate) LATHE_CUDA_CHECK(cudaMemsetAsync(dtable.data(), 0, dtable.bytes(), stream()));
    launchEmbeddingBackward(ids.ptr<std::int32_t>(), dy.ptr<float>(), dtable.ptr<float>(), n, vocab, dim,
                            m_errorFlag, stream());
}

} // namespace lathe::cuda

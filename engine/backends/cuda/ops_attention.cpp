// The CUDA backend's transformer ops (attention.cu): attention forward as the fused kernel or as its unfused
// reference (cuBLAS scores per sequence over all heads, attention.cu's masked softmax, cuBLAS weighted sum),
// attention backward, mean pooling and L2 normalisation.
#include "engine/backends/cuda/cuda_backend_impl.h"
#include "engine/backends/cuda/cuda_kernels.h"

#include "engine/core/errors.h"

namespace lathe::cuda {

namespace {
const std::int32_t* lengthsPtr(const Tensor* t) { return t ? t->ptr<const std::int32_t>() : nullptr; }
} // namespace

void CudaBackend::attentionForward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* keyLengths,
                                   Tensor& out, Tensor& lse, const AttentionParams& p) {
    begin(Op::AttentionForward, q.dtype(), {&q, &k, &v, &out, &lse});
    if (keyLengths) checkOnDevice(*keyLengths, "attention_forward", "key_lengths");
    const AttentionGeometry g = checkAttention(name() + " attention_forward", q, k, v, keyLengths, p, &out, &lse);
    const std::int32_t* lens = lengthsPtr(keyLengths);
    if (p.kernel == AttentionKernel::Fused) {
        launchAttentionForwardFused(q.ptr<float>(), k.ptr<float>(), v.ptr<float>(), lens, out.ptr<float>(),
                                    lse.ptr<float>(), g, stream());
        return;
    }
    // The reference: per sequence, S (H, Tq, Tk) = scale Q K^T for every head in one strided batch, the
    // masked softmax in place, then O = P V into out's columns of each head.
    const std::int64_t width = g.width(), tq = g.queryLen, tk = g.keyLen;
    Tensor scores = empty({g.heads, tq, tk}); // (H, Tq, Tk), reused by each sequence in stream order
    for (std::int64_t n = 0; n < g.batch; ++n) {
        const float* qn = q.ptr<float>() + n * g.qRows * g.qStride + g.qOffset;
        const float* kn = k.ptr<float>() + n * g.kRows * g.kStride + g.kOffset;
        const float* vn = v.ptr<float>() + n * g.vRows * g.vStride + g.vOffset;
        float* on = out.ptr<float>() + n * tq * width;
        m_gemm.runStridedBatched(Trans::No, Trans::Yes, tq, tk, g.headDim, g.scale, qn, g.qStride, g.headDim, kn,
                                 g.kStride, g.headDim, 0.0f, scores.ptr<float>(), tk, tq * tk, g.heads);
        launchAttentionMaskedSoftmax(scores.ptr<float>(), lse.ptr<float>() + n * g.heads * tq, lens, n, g, stream());
        m_gemm.runStridedBatched(Trans::No, Trans::No, tq, g.headDim, tk, 1.0f, scores.ptr<float>(), tk, tq * tk, vn,
                                 g.vStride, g.headDim, 0.0f, on, width, g.headDim, g.heads);
    }
}

void CudaBackend::attentionBackward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor* keyLengths, const Tensor& out, const Tensor& lse, Tensor& dq,
                                    Tensor& dk, Tensor& dv, const AttentionParams& p) {
    begin(Op::AttentionBackward, dout.dtype(), {&dout, &q, &k, &v, &out, &lse, &dq, &dk, &dv});
    if (keyLengths) checkOnDevice(*keyLengths, "attention_backward", "key_lengths");
    const AttentionGeometry g = checkAttention(name() + " attention_backward", q, k, v, keyLengths, p, &out, &lse);
    checkShape(dout, out.shape(), DType::F32, "attention_backward", "dout");
    checkShape(dq, q.shape(), DType::F32, "attention_backward", "dq");
    checkShape(dk, k.shape(), DType::F32, "attention_backward", "dk");
    checkShape(dv, v.shape(), DType::F32, "attention_backward", "dv");
    Tensor delta = empty({g.batch, g.heads, g.queryLen}); // (N, H, Tq)
    launchAttentionBackward(q.ptr<float>(), k.ptr<float>(), v.ptr<float>(), lengthsPtr(keyLengths), dout.ptr<float>(),
                            out.ptr<float>(), lse.ptr<float>(), delta.ptr<float>(), dq.ptr<float>(), dk.ptr<float>(),
                            dv.ptr<float>(), g, stream());
}

void CudaBackend::meanPoolForward(const Tensor& x, const Tensor* lengths, Tensor& y) {
    begin(Op::MeanPoolForward, x.dtype(), {&x, &y});
    if (lengths) checkOnDevice(*lengths, "mean_pool_forward", "lengths");
    checkMeanPool(name() + " mean_pool_forward", x, lengths, y);
    launchMeanPoolForward(x.ptr<float>(), lengthsPtr(lengths), y.ptr<float>(), x.dim(0), x.dim(1), x.dim(2), stream());
}

void CudaBackend::meanPoolBackward(const Tensor& dy, const Tensor* lengths, Tensor& dx) {
    begin(Op::MeanPoolBackward, dy.dtype(), {&dy, &dx});
    if (lengths) checkOnDevice(*lengths, "mean_pool_backward", "lengths");
    checkMeanPool(name() + " mean_pool_backward", dx, lengths, dy);
    launchMeanPoolBackward(dy.ptr<float>(), lengthsPtr(lengths), dx.ptr<float>(), dx.dim(0), dx.dim(1), dx.dim(2),
                           stream());
}

void CudaBackend::l2NormalizeForward(const Tensor& x, Tensor& y, Tensor& norm, float eps) {
    begin(Op::L2NormalizeForward, x.dtype(), {&x, &y, &norm});
    checkRank(x, 2, "l2_normalize_forward", "x");
    checkShape(y, x.shape(), DType::F32, "l2_normalize_forward", "y");
    checkShape(norm, {x.dim(0)}, DType::F32, "l2_normalize_forward", "norm");
    launchL2NormalizeForward(x.ptr<float>(), y.ptr<float>(), norm.ptr<float>(), x.dim(0), x.dim(1), eps, stream());
}

void CudaBackend::l2NormalizeBackward(const Tensor& dy, const Tensor& y, const Tensor& norm, Tensor& dx, float eps) {
    begin(Op::L2NormalizeBackward, dy.dtype(), {&dy, &y, &norm, &dx});
    checkRank(dy, 2, "l2_normalize_backward", "dy");
    checkShape(y, dy.shape(), DType::F32, "l2_normalize_backward", "y");
    checkShape(dx, dy.shape(), DType::F32, "l2_normalize_backward", "dx");
    checkShape(norm, {dy.dim(0)}, DType::F32, "l2_normalize_backward", "norm");
    launchL2NormalizeBackward(dy.ptr<float>(), y.ptr<float>(), norm.ptr<float>(), dx.ptr<float>(), dy.dim(0), dy.dim(1),
                              eps, stream());
}

} // namespace lathe::cuda

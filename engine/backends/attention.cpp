// The transformer ops' shared pieces: the argument checks every backend runs before attention and pooling,
// and the defaults of the Backend interface for a backend that does not implement them.
#include "engine/backends/backend.h"

#include "engine/core/errors.h"

#include <cmath>

namespace lathe {

float AttentionParams::effectiveScale() const {
    return scale != 0.0f ? scale : 1.0f / std::sqrt(static_cast<float>(headDim));
}

namespace {

[[noreturn]] void fail(const std::string& op, const std::string& what) { throw BackendError(op + ": " + what); }

void requireF32Rank3(const std::string& op, const Tensor& t, const char* name) {
    if (!t.defined()) fail(op, std::string(name) + " is undefined");
    if (t.dtype() != DType::F32 || t.rank() != 3)
        fail(op, std::string(name) + " is " + t.describe() + ", expected f32 (N, T, S)");
}

void requireShape(const std::string& op, const Tensor& t, const Shape& shape, DType dt, const char* name) {
    if (!t.defined() || t.shape() != shape || t.dtype() != dt)
        fail(op, std::string(name) + " is " + (t.defined() ? t.describe() : std::string("undefined")) + ", expected " +
                     dtypeName(dt) + shapeToString(shape));
}

} // namespace

AttentionGeometry checkAttention(const std::string& op, const Tensor& q, const Tensor& k, const Tensor& v,
                                 const Tensor* keyLengths, const AttentionParams& p, const Tensor* out,
                                 const Tensor* lse) {
    requireF32Rank3(op, q, "q");
    requireF32Rank3(op, k, "k");
    requireF32Rank3(op, v, "v");
    if (p.heads < 1 || p.headDim < 1)
        fail(op, "heads (" + std::to_string(p.heads) + ") and head_dim (" + std::to_string(p.headDim) +
                     ") must be at least 1");
    AttentionGeometry g;
    g.batch = q.dim(0);
    if (k.dim(0) != g.batch || v.dim(0) != g.batch)
        fail(op, "q " + q.describe() + ", k " + k.describe() + " and v " + v.describe() + " disagree on the batch");
    g.heads = p.heads;
    g.headDim = p.headDim;
    g.qRows = q.dim(1);
    g.kRows = k.dim(1);
    g.vRows = v.dim(1);
    g.queryLen = p.queryLen > 0 ? p.queryLen : g.qRows;
    g.keyLen = p.keyLen > 0 ? p.keyLen : g.kRows;
    if (g.queryLen > g.qRows) fail(op, "query_len " + std::to_string(g.queryLen) + " exceeds q " + q.describe());
    if (g.keyLen > g.kRows || g.keyLen > g.vRows)
        fail(op, "key_len " + std::to_string(g.keyLen) + " exceeds k " + k.describe() + " or v " + v.describe());
    if (p.causal && g.queryLen > g.keyLen)
        fail(op, "causal attention needs query_len (" + std::to_string(g.queryLen) + ") <= key_len (" +
                     std::to_string(g.keyLen) + ")");
    g.qStride = q.dim(2);
    g.kStride = k.dim(2);
    g.vStride = v.dim(2);
    g.qOffset = p.qOffset;
    g.kOffset = p.kOffset;
    g.vOffset = p.vOffset;
    const std::int64_t width = g.width();
    const auto inside = [&](std::int64_t offset, std::int64_t stride, const char* name, const Tensor& t) {
        if (offset < 0 || offset + width > stride)
            fail(op, std::string(name) + " columns [" + std::to_string(offset) + ", " + std::to_string(offset + width) +
                         ") of H * Dh = " + std::to_string(p.heads) + " * " + std::to_string(p.headDim) +
                         " do not fit the rows of " + t.describe());
    };
    inside(g.qOffset, g.qStride, "q", q);
    inside(g.kOffset, g.kStride, "k", k);
    inside(g.vOffset, g.vStride, "v", v);
    if (keyLengths) requireShape(op, *keyLengths, {g.batch}, DType::I32, "key_lengths");
    g.scale = p.effectiveScale();
    g.causal = p.causal;
    if (out) requireShape(op, *out, {g.batch, g.queryLen, width}, DType::F32, "out");
    if (lse) requireShape(op, *lse, {g.batch, g.heads, g.queryLen}, DType::F32, "lse");
    return g;
}

void checkMeanPool(const std::string& op, const Tensor& seq, const Tensor* lengths, const Tensor& pooled) {
    if (seq.dtype() != DType::F32 || seq.rank() != 3) fail(op, "the sequence is " + seq.describe() + ", expected f32 (N, T, D)");
    requireShape(op, pooled, {seq.dim(0), seq.dim(2)}, DType::F32, "pooled");
    if (lengths) requireShape(op, *lengths, {seq.dim(0)}, DType::I32, "lengths");
}

void Backend::attentionForward(const Tensor& q, const Tensor&, const Tensor&, const Tensor*, Tensor&, Tensor&,
                               const AttentionParams&) {
    require(Op::AttentionForward, q.dtype());
    throw BackendError(name() + ": attention_forward is in its op table but not implemented");
}

void Backend::attentionBackward(const Tensor& dout, const Tensor&, const Tensor&, const Tensor&, const Tensor*,
                                const Tensor&, const Tensor&, Tensor&, Tensor&, Tensor&, const AttentionParams&) {
    require(Op::AttentionBackward, dout.dtype());
    throw BackendError(name() + ": attention_backward is in its op table but not implemented");
}

void Backend::meanPoolForward(const Tensor& x, const Tensor*, Tensor&) {
    require(Op::MeanPoolForward, x.dtype());
    throw BackendError(name() + ": mean_pool_forward is in its op table but not implemented");
}

void Backend::meanPoolBackward(const Tensor& dy, const Tensor*, Tensor&) {
    require(Op::MeanPoolBackward, dy.dtype());
    throw BackendError(name() + ": mean_pool_backward is in its op table but not implemented");
}

void Backend::l2NormalizeForward(const Tensor& x, Tensor&, Tensor&, float) {
    require(Op::L2NormalizeForward, x.dtype());
    throw BackendError(name() + ": l2_normalize_forward is in its op table but not implemented");
}

void Backend::l2NormalizeBackward(const Tensor& dy, const Tensor&, const Tensor&, Tensor&, float) {
    require(Op::L2NormalizeBackward, dy.dtype());
    throw BackendError(name() + ": l2_normalize_backward is in its op table but not implemented");
}

} // namespace lathe

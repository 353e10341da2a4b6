// Op names, descriptor construction and printing, and the per-backend descriptor table.
#include "engine/backends/op_desc.h"

#include "engine/core/errors.h"

#include <algorithm>

namespace lathe {

const char* opName(Op op) {
    static constexpr std::array<const char*, static_cast<std::size_t>(Op::Count)> kNames = {
        "fill", "convert", "copy", "gemm", "spmm_csr", "spmm_24", "bias_add", "bias_grad", "add", "mul", "axpy", "scale",
        "relu", "relu_backward", "gelu", "gelu_backward", "dropout", "softmax", "softmax_cross_entropy",
        "distillation_loss", "argmax_rows", "conv2d_forward", "conv2d_backward_data", "conv2d_backward_weight",
        "maxpool2d_forward", "maxpool2d_backward", "layernorm_forward", "layernorm_backward",
        "batchnorm_forward", "batchnorm_backward", "embedding_forward", "embedding_backward", "sgd_step", "adam_step",
        "quantize_rows", "im2col_rows", "rows_to_channels", "gemm_bias_act",
        "attention_forward", "attention_backward", "mean_pool_forward", "mean_pool_backward", "l2_normalize_forward",
        "l2_normalize_backward"};
    return kNames.at(static_cast<std::size_t>(op));
}

const char* opLayoutName(OpLayout layout) {
    switch (layout) {
    case OpLayout::Dense: return "dense";
    case OpLayout::BlockQuantizedWeights: return "block-quantized weights";
    case OpLayout::Sparse24: return "2:4 sparse weights";
    case OpLayout::Csr: return "csr sparse weights";
    case OpLayout::Int8Groups: return "int8 group-wise weights";
    case OpLayout::Int4Groups: return "int4 group-wise weights";
    case OpLayout::Nf4Groups: return "nf4 group-wise weights";
    case OpLayout::Fp8Groups: return "fp8 group-wise weights";
    case OpLayout::Fp8Emulated: return "fp8 emulated in f32";
    }
    return "?";
}

OpDesc::OpDesc(Op o, std::initializer_list<DType> in, DType out) : OpDesc(o, in, out, out) {}

OpDesc::OpDesc(Op o, std::initializer_list<DType> in, DType out, DType acc, OpLayout l)
    : op(o), output(out), accumulator(acc), layout(l) {
    if (in.size() > kMaxInputs)
        throw BackendError(std::string("op descriptor for ") + opName(o) + ": more than " +
                           std::to_string(kMaxInputs) + " input dtypes");
    std::copy(in.begin(), in.end(), inputs.begin());
    inputCount = static_cast<std::uint8_t>(in.size());
}

OpDesc OpDesc::gemm(DType a, DType b, DType c, DType acc, OpLayout layout) {
    return OpDesc(Op::Gemm, {a, b}, c, acc, layout);
}

OpDesc OpDesc::convert(DType from, DType to) { return OpDesc(Op::Convert, {from}, to); }

DType OpDesc::accumulatorFor(DType dt) { return traits(dt).isFloat ? DType::F32 : DType::I32; }

OpDesc OpDesc::uniform(Op op, DType dt) {
    const DType acc = accumulatorFor(dt);
    switch (op) {
    case Op::Fill: return OpDesc(op, {}, dt);
    case Op::Convert:
    case Op::Copy:
    case Op::BiasGrad:
    case Op::Scale:
    case Op::Relu:
    case Op::Gelu:
    case Op::Dropout:
    case Op::Softmax:
    case Op::Im2colRows:
    case Op::RowsToChannels:
    case Op::MaxPool2dForward: return OpDesc(op, {dt}, dt);
    case Op::Gemm:
    case Op::Conv2dForward:
    case Op::Conv2dBackwardData:
    case Op::Conv2dBackwardWeight: return OpDesc(op, {dt, dt}, dt, acc);
    case Op::BiasAdd:
    case Op::Add:
    case Op::Mul:
    case Op::Axpy:
    case Op::ReluBackward:
    case Op::GeluBackward:
    case Op::LayerNormBackward:
    case Op::BatchNormBackward:
    case Op::SgdStep:
    case Op::AdamStep: return OpDesc(op, {dt, dt}, dt);
    // x and the CSR values; the row pointers and column indices are i32 by definition of the layout.
    case Op::SpmmCsr: return OpDesc(op, {dt, dt}, dt, acc, OpLayout::Csr);
    // x and the kept values; the position metadata is u8 by definition of the layout.
    case Op::Spmm24: return OpDesc(op, {dt, dt}, dt, acc, OpLayout::Sparse24);
    case Op::LayerNormForward:
    case Op::BatchNormForward: return OpDesc(op, {dt, dt, dt}, dt);
    // x, W and the bias (when there is one), summed in f32 for the float formats.
    case Op::GemmBiasAct: return OpDesc(op, {dt, dt, dt}, dt, acc);
    case Op::DistillationLoss: return OpDesc(op, {dt, dt, DType::I32}, dt);
    case Op::SoftmaxCrossEntropy:
    case Op::MaxPool2dBackward: return OpDesc(op, {dt, DType::I32}, dt);
    case Op::ArgmaxRows: return OpDesc(op, {dt}, DType::I32);
    case Op::QuantizeRows: return OpDesc(op, {dt}, DType::I8);
    case Op::EmbeddingForward:
    case Op::EmbeddingBackward: return OpDesc(op, {DType::I32, dt}, dt);
    // q, k, v (or dout, and the forward's tensors); the key lengths are i32 by definition; sums in f32.
    case Op::AttentionForward:
    case Op::AttentionBackward: return OpDesc(op, {dt, dt, DType::I32}, dt, acc);
    // x (or dy) and the per-sequence lengths (i32).
    case Op::MeanPoolForward:
    case Op::MeanPoolBackward: return OpDesc(op, {dt, DType::I32}, dt, acc);
    case Op::L2NormalizeForward: return OpDesc(op, {dt}, dt, acc);
    case Op::L2NormalizeBackward: return OpDesc(op, {dt, dt}, dt, acc);
    case Op::Count: break;
    }
    throw BackendError("op descriptor: no such op (" + std::to_string(static_cast<int>(op)) + ")");
}

std::string OpDesc::toString() const {
    std::string s = op == Op::Count ? std::string("?") : std::string(opName(op));
    for (std::size_t i = 0; i < inputCount; ++i) s += std::string(i ? " x " : " ") + dtypeName(inputs[i]);
    s += std::string(" -> ");
    const bool dequantized = !traits(accumulator).isFloat && traits(output).isFloat;
    if (dequantized) // integer sums scaled to a float result in the epilogue
        s += std::string(dtypeName(accumulator)) + " (dequant " + dtypeName(output) + ")";
    else if (accumulator != output)
        s += std::string(dtypeName(output)) + " (acc " + dtypeName(accumulator) + ")";
    else
        s += dtypeName(output);
    if (layout != OpLayout::Dense) s += std::string(" [") + opLayoutName(layout) + "]";
    return s;
}

bool OpDesc::operator==(const OpDesc& o) const {
    return op == o.op && inputCount == o.inputCount &&
           std::equal(inputs.begin(), inputs.begin() + inputCount, o.inputs.begin()) && output == o.output &&
           accumulator == o.accumulator && layout == o.layout;
}

static_assert(OpDesc::kMaxInputs == 3, "OpTable::keyOf packs exactly eight one-byte fields into its key");

std::uint64_t OpTable::keyOf(const OpDesc& d) {
    std::uint64_t k = static_cast<std::uint64_t>(d.op);
    k = k << 8 | d.inputCount;
    for (std::size_t i = 0; i < OpDesc::kMaxInputs; ++i)
        k = k << 8 | (i < d.inputCount ? static_cast<std::uint64_t>(d.inputs[i]) : 0u);
    k = k << 8 | static_cast<std::uint64_t>(d.output);
    k = k << 8 | static_cast<std::uint64_t>(d.accumulator);
    return k << 8 | static_cast<std::uint64_t>(d.layout);
}

void OpTable::add(const OpDesc& d) {
    if (d.op == Op::Count) throw BackendError("op table: a descriptor without an op");
    const std::uint64_t key = keyOf(d);
    const auto at = std::lower_bound(m_keys.begin(), m_keys.end(), key);
    if (at != m_keys.end() && *at == key) return;
    m_keys.insert(at, key);
    m_rows[static_cast<std::size_t>(d.op)].push_back(d);
}

void OpTable::addUniform(std::initializer_list<Op> ops, std::initializer_list<DType> dtypes) {
    for (Op op : ops)
        for (DType dt : dtypes) add(OpDesc::uniform(op, dt));
}

bool OpTable::contains(const OpDesc& d) const { return std::binary_search(m_keys.begin(), m_keys.end(), keyOf(d)); }

std::vector<OpDesc> OpTable::all() const {
    std::vector<OpDesc> out;
    for (const auto& rows : m_rows) out.insert(out.end(), rows.begin(), rows.end());
    return out;
}

} // namespace lathe

// Op descriptors: a whole op described by its input, accumulator and output dtypes and a layout tag
// ("gemm i8 x i8 -> i32 (dequant f32)"), and the table a backend keeps of the descriptors it runs.
#pragma once

#include "engine/core/dtype.h"

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace lathe {

enum class Op : std::uint8_t {
    Fill, Convert, Copy,
    Gemm, SpmmCsr, Spmm24,
    BiasAdd, BiasGrad,
    Add, Mul, Axpy, Scale,
    Relu, ReluBackward, Gelu, GeluBackward, Dropout,
    Softmax, SoftmaxCrossEntropy, DistillationLoss, ArgmaxRows,
    Conv2dForward, Conv2dBackwardData, Conv2dBackwardWeight,
    MaxPool2dForward, MaxPool2dBackward,
    LayerNormForward, LayerNormBackward,
    BatchNormForward, BatchNormBackward,
    EmbeddingForward, EmbeddingBackward,
    SgdStep, AdamStep,
    QuantizeRows, // f32 activations -> i8 codes with per-row (dynamic) or per-tensor (static) scales
    Im2colRows, RowsToChannels, // a convolution as a GEMM over rows (the quantized conv's path)
    GemmBiasAct,  // y = act(x @ W^T + bias): a Linear with its bias and a following ReLU / GELU in the epilogue
    // Transformers: multi-head scaled-dot-product attention (causal, key lengths), mean pooling over the
    // valid tokens of each sequence, L2 normalisation of rows.
    AttentionForward, AttentionBackward, MeanPoolForward, MeanPoolBackward, L2NormalizeForward, L2NormalizeBackward,
    Count
};
const char* opName(Op op);

// How an operand is laid out beyond its dtype. Dense is every op today; the others name the weight
// layouts of the kernels to come, so a backend can be asked about them (and say no).
enum class OpLayout : std::uint8_t {
    Dense,
    BlockQuantizedWeights, // weights in a block format (q4_0, nf4, ...), dequantized inside the kernel
    Sparse24,              // 2:4 structured-sparse weights (values + metadata, sparse24.h)
    Csr,                   // weights in compressed sparse rows (row pointers, column indices, values)
    // Weight-only quantized matrices of quant_matrix.h: codes (i8, or u8 holding two 4-bit codes) with
    // per-group scales (and zero points), dequantized inside the kernel.
    Int8Groups,            // i8 codes x scale
    Int4Groups,            // 4-bit codes: (q - zero) x scale, zero 8 when symmetric
    Nf4Groups,             // 4-bit NormalFloat codes: codebook[q] x absmax
    Fp8Groups,             // FP8 E4M3 codes: value(q) x scale (scale = absmax / 448)
    Fp8Emulated,           // an FP8 GEMM's numerics (E4M3 operands, f32 sums) computed by f32 units
};
// "dense", "block-quantized weights", "2:4 sparse weights", "csr sparse weights", "int8 group-wise weights",
// "int4 group-wise weights", "nf4 group-wise weights", "fp8 group-wise weights", "fp8 emulated in f32"
const char* opLayoutName(OpLayout layout);

struct OpDesc {
    static constexpr std::size_t kMaxInputs = 3;

    Op op = Op::Count;
    std::array<DType, kMaxInputs> inputs{}; // the first inputCount are used
    std::uint8_t inputCount = 0;
    DType output = DType::F32;
    DType accumulator = DType::F32; // what sums run in; equals output where the op does not reduce
    OpLayout layout = OpLayout::Dense;

    OpDesc() = default;
    OpDesc(Op op, std::initializer_list<DType> inputs, DType output);
    OpDesc(Op op, std::initializer_list<DType> inputs, DType output, DType accumulator,
           OpLayout layout = OpLayout::Dense);

    // c = op(a) @ op(b): "gemm f16 x f16 -> f16 (acc f32)", "gemm i8 x i8 -> i32 (dequant f32)" is
    // gemm(I8, I8, F32, I32).
    static OpDesc gemm(DType a, DType b, DType c, DType accumulator, OpLayout layout = OpLayout::Dense);
    // dst = src, converted: "convert f32 -> f16".
    static OpDesc convert(DType from, DType to);
    // The descriptor of `op` when every value tensor has dtype dt. Index tensors (labels, ids, argmax
    // positions) stay i32, and reductions of a 16-bit float (gemm, conv) accumulate in f32, of an
    // integer in i32. This is how the dense ops of the Backend interface ask today.
    static OpDesc uniform(Op op, DType dt);
    // What a reduction producing dt sums in by default: f32 for float formats, i32 for the others.
    static DType accumulatorFor(DType dt);

    std::string toString() const;
    bool operator==(const OpDesc& other) const;
};

// The descriptors one backend supports. Every op call asks it, so a lookup is a binary search over
// packed 64-bit keys (10-15 ns measured over the CPU backend's ~170 rows) rather than a scan.
class OpTable {
public:
    void add(const OpDesc& d);
    void addUniform(std::initializer_list<Op> ops, std::initializer_list<DType> dtypes);
    bool contains(const OpDesc& d) const;
    std::vector<OpDesc> all() const; // in op order, then in the order added

private:
    // op, input count, three inputs, output, accumulator, layout: one byte each.
    static std::uint64_t keyOf(const OpDesc& d);

    std::vector<std::uint64_t> m_keys; // sorted
    std::array<std::vector<OpDesc>, static_cast<std::size_t>(Op::Count)> m_rows;
};

} // namespace lathe

// Linear: y = act(x W^T + b) over the last dimension, weight (out, in) as PyTorch lays it out; act is none
// unless a following ReLU / GELU was fused into it ("activation", fuse.activation), which inference runs in
// the GEMM's epilogue (Backend::gemmBiasAct); optionally run for inference from a CSR or 2:4 copy of a pruned
// weight (sparse_execution.h); inside an inference scope (Model::InferenceScope) from a copy of the weight laid out
// for the backend's GEMM (Backend::prepackGemmWeight).
#include "engine/backends/csr.h"
#include "engine/backends/sparse24.h"
#include "engine/nn/config_fields.h"
#include "engine/nn/layers_common.h"
#include "engine/nn/model_edit.h"
#include "engine/nn/quantized_linear.h"
#include "engine/nn/sparse_execution.h"

namespace lathe::nnimpl {
namespace {

class Linear final : public Layer {
public:
    Linear(std::int64_t in, std::int64_t out, bool bias, DType dtype, Activation act)
        : m_in(in), m_out(out), m_hasBias(bias), m_dtype(dtype), m_act(act) {
        m_weight.name = "weight";
        m_weight.value = storedAs(hostZeros({out, in}));
        if (bias) {
            m_bias.name = "bias";
            m_bias.value = hostZeros({out});
        }
    }

    std::string type() const override { return "linear"; }
    nlohmann::json config() const override {
        nlohmann::json c = {{"type", "linear"}, {"in", m_in}, {"out", m_out}};
        if (!m_hasBias) c["bias"] = false;
        if (m_dtype != DType::F32) c["dtype"] = dtypeName(m_dtype);
        if (m_act != Activation::None) c["activation"] = activationName(m_act);
        return c;
    }

    Shape outputShape(const Shape& input) const override {
        if (input.size() < 2 || input.back() != m_in)
            shapeError("linear", "(N, ..., " + std::to_string(m_in) + ")", input);
        Shape out = input;
        out.back() = m_out;
        return out;
    }

    Tensor forward(Backend& be, const Tensor& x, const ForwardContext& ctx) override {
        const Shape outShape = outputShape(x.shape());
        const std::int64_t rows = x.numel() / m_in;
        const Tensor x2 = x.view({rows, m_in}); // (M, in)
        Tensor y = be.empty({rows, m_out});     // (M, out)
        const Tensor* bias = m_hasBias ? &m_bias.value : nullptr;
        if (ctx.training) {
            m_packed = Tensor(); // the optimizer will update the weight in place
            m_packedSource.reset();
        } else if (m_dtype == DType::F32 && packedCurrent(be)) {
            // Inference in a scope (Model::InferenceScope): W as the backend laid it out when the scope opened; the
            // bias and any fused activation in the GEMM's epilogue.
            be.gemmBiasActPacked(x2, m_weight.value, m_packed, bias, m_act, y);
            return y.view(outShape);
        }
        // Inference of a dense f32 Linear with a fused activation: one pass over y (bias and activation in the
        // GEMM's epilogue). A backend without the op runs the same arithmetic as separate ops below.
        if (m_act != Activation::None && m_dtype == DType::F32 && m_format == SparseFormat::Dense && !ctx.training &&
            be.supports(OpDesc::uniform(Op::GemmBiasAct, DType::F32))) {
            be.gemmBiasAct(x2, m_weight.value, bias, m_act, y);
            return y.view(outShape);
        }
        if (m_dtype != DType::F32) {
            // A 16-bit weight is inference storage: the layer's input and output cross into its format and
            // back, the GEMM sums in f32 (tensor cores on the GPU; widened to f32 on the CPU).
            if (ctx.training)
                throw ConfigError(std::string("linear: a ") + dtypeName(m_dtype) +
                                  " weight is for inference; train or fine-tune before converting it");
            Tensor x16 = be.empty(x2.shape(), m_dtype);
            be.convert(x2, x16);
            if (packedCurrent(be)) {
                // In a scope, on a backend that laid the 16-bit weight out (the CPU, which widens it in registers):
                // the same products of the rounded input and the widened weight, without widening W on every call,
                // and the output's rounding, the bias and the activation in the GEMM's epilogue.
                Tensor xr = be.empty(x2.shape());
                be.convert(x16, xr);
                be.gemmBiasActPacked(xr, m_weight.value, m_packed, bias, m_act, y);
                return y.view(outShape);
            }
            Tensor y16 = be.empty(y.shape(), m_dtype);
            be.gemm(x16, Trans::No, m_weight.value, Trans::Yes, y16);
            be.convert(y16, y);
        } else if (m_format != SparseFormat::Dense && !ctx.training) {
            ensureSparseCopy(be);
            if (m_format == SparseFormat::Csr) be.spmmCsr(x2, m_csrRowPtr, m_csrColIdx, m_csrValues, y);
            else be.spmm24(x2, m_nm24Values, m_nm24Meta, y);
        } else {
            be.gemm(x2, Trans::No, m_weight.value, Trans::Yes, y);
        }
        if (bias) be.biasAdd(y, *bias);
        if (ctx.training) {
            m_x = x2;
            m_sparseStale = true; // the optimizer will update the weight in place
        }
        if (m_act == Activation::None) return y.view(outShape);
        // Training keeps the unfused path: the backward needs the pre-activation z = x W^T + b, which the
        // fused op overwrites. act(z) as the relu / gelu layers compute it.
        Tensor a = be.empty({rows, m_out}); // (M, out)
        if (m_act == Activation::Relu) be.relu(y, a);
        else be.gelu(y, a);
        if (ctx.training) m_z = y;
        return a.view(outShape);
    }

    // A format that cannot be set (op not supported, weight not 2:4) throws and leaves the layer dense.
    void setSparse(Backend* be, SparseFormat format) {
        m_format = SparseFormat::Dense;
        m_sparseStale = true;
        m_csrRowPtr = m_csrColIdx = m_csrValues = m_nm24Values = m_nm24Meta = Tensor();
        if (format == SparseFormat::Dense) return;
        if (be) {
            const OpDesc desc = sparseFormatOp(format, m_weight.value.dtype());
            if (!be->supports(desc))
                throw BackendError(be->name() + " does not support " + desc.toString() + " (sparse linear)");
        }
        m_format = format;
        if (!be) return;
        try {
            ensureSparseCopy(*be);
        } catch (...) {
            setSparse(nullptr, SparseFormat::Dense);
            throw;
        }
    }
    SparseFormat sparseFormat() const { return m_format; }

    Tensor backward(Backend& be, const Tensor& dy) override {
        requireCache(m_x, "linear");
        const std::int64_t rows = m_x.dim(0);
        Tensor dy2 = dy.view({rows, m_out}); // (M, out)
        if (m_act != Activation::None) {
            // Through the fused activation first: dz (M, out) = act'(z) * dy.
            requireCache(m_z, "linear");
            Tensor dz = be.empty({rows, m_out});
            if (m_act == Activation::Relu) be.reluBackward(m_z, dy2, dz);
            else be.geluBackward(m_z, dy2, dz);
            dy2 = dz;
        }
        // dW (out, in) += dy^T x ; db (out) += sum over rows of dy
        be.gemm(dy2, Trans::Yes, m_x, Trans::No, m_weight.grad, 1.0f, 1.0f);
        if (m_hasBias) be.biasGrad(dy2, m_bias.grad, true);
        Tensor dx = be.empty({rows, m_in}); // dx (M, in) = dy W
        be.gemm(dy2, Trans::No, m_weight.value, Trans::No, dx);
        Shape inShape = dy.shape();
        inShape.back() = m_in;
        return dx.view(inShape);
    }

    std::vector<Parameter*> parameters() override {
        if (m_hasBias) return {&m_weight, &m_bias};
        return {&m_weight};
    }

    void initialize(Backend& be, Rng& rng) override {
        const float bound = kaimingBound(m_in);
        m_weight.value = uniformTensor(be, rng, {m_out, m_in}, bound);
        if (m_dtype != DType::F32) m_weight.value = be.upload(storedAs(be.download(m_weight.value)));
        if (m_hasBias) m_bias.value = uniformTensor(be, rng, {m_out}, bound);
    }

    void releaseCache() override {
        m_x = Tensor();
        m_z = Tensor();
    }

    // A dense weight laid out for the backend's GEMM (if it has a layout of its own for its dtype) while the scope
    // lasts.
    void beginInference(Backend& be) override {
        endInference();
        if (m_format != SparseFormat::Dense || !m_weight.value.defined() || m_weight.value.device() != be.device() ||
            m_weight.value.dtype() != m_dtype)
            return;
        m_packed = be.prepackGemmWeight(m_weight.value);
        if (m_packed.defined()) {
            m_packedSource = m_weight.value.storage();
            m_packedFrom = m_weight.value.data();
        }
    }
    void endInference() override {
        m_packed = Tensor();
        m_packedSource.reset();
        m_packedFrom = nullptr;
    }

private:
    // A host f32 tensor in the layer's weight format.
    Tensor storedAs(const Tensor& host) const {
        if (m_dtype == DType::F32) return host;
        Tensor out = Tensor::host(host.shape(), m_dtype);
        traits(m_dtype).fromFloat(host.ptr<const float>(), out.data(), static_cast<std::size_t>(host.numel()));
        return out;
    }

    // Whether the prepacked copy is of the weight as it is now stored, for `be`: a weight replaced by another
    // tensor (moved by Model::to, loaded, re-initialised) or a layer set to run sparse computes as before.
    bool packedCurrent(const Backend& be) const {
        if (!m_packed.defined() || m_format != SparseFormat::Dense || m_packed.device() != be.device()) return false;
        const std::shared_ptr<Storage> source = m_packedSource.lock();
        return source && source == m_weight.value.storage() && m_packedFrom == m_weight.value.data();
    }

    // Rebuilds the sparse copy when the weight may have changed since it was built: after training, or
    // when the weight is another tensor (moved by Model::to, replaced by a load) or on another backend.
    void ensureSparseCopy(Backend& be) {
        const Tensor& probe = m_format == SparseFormat::Csr ? m_csrRowPtr : m_nm24Meta; // never empty
        if (!m_sparseStale && m_sparseSource == m_weight.value.data() && probe.device() == be.device()) return;
        const Tensor host = m_weight.value.isHost() ? m_weight.value : be.download(m_weight.value);
        if (host.dtype() != DType::F32)
            throw BackendError("linear: sparse execution needs an f32 weight, got " + host.describe());
        if (m_format == SparseFormat::Csr) {
            const HostCsr c = csrFromDense(host.ptr<const float>(), m_out, m_in);
            m_csrRowPtr = be.uploadI32(c.rowPtr, {m_out + 1});
            m_csrColIdx = be.uploadI32(c.colIdx, {c.nnz()});
            m_csrValues = be.upload(c.values, {c.nnz()});
        } else {
            const HostSparse24 s = sparse24FromDense(host.ptr<const float>(), m_out, m_in);
            m_nm24Values = be.upload(s.values, {m_out, Sparse24Layout::kKept * sparse24Groups(m_in)});
            m_nm24Meta = be.uploadU8(s.meta, {m_out, sparse24MetaBytesPerRow(m_in)});
        }
        m_sparseSource = m_weight.value.data();
        m_sparseStale = false;
    }

    std::int64_t m_in, m_out;
    bool m_hasBias;
    DType m_dtype; // of the weight: f32, or f16 / bf16 for inference
    Activation m_act; // a fused following activation
    Parameter m_weight, m_bias;
    Tensor m_x; // (M, in) forward input, training only
    Tensor m_z; // (M, out) pre-activation, training with a fused activation only
    // Sparse inference from one copy: CSR row pointers I32 (out + 1), column indices I32 (nnz), values (nnz);
    // or 2:4 values (out, 2 * groups) and metadata U8 (out, ceil(groups / 2)).
    SparseFormat m_format = SparseFormat::Dense;
    bool m_sparseStale = true;
    const void* m_sparseSource = nullptr; // the weight storage the copy was built from
    Tensor m_csrRowPtr, m_csrColIdx, m_csrValues;
    Tensor m_nm24Values, m_nm24Meta;
    // Inside an inference scope: the weight in the backend's layout (Backend::prepackGemmWeight), and what it was
    // made from.
    Tensor m_packed;
    std::weak_ptr<Storage> m_packedSource;
    const void* m_packedFrom = nullptr;
};

} // namespace

std::unique_ptr<Layer> makeLinear(const nlohmann::json& c, const std::string& ptr) {
    nnconfig::onlyKeys(c, ptr, {"type", "in", "out", "bias", "dtype", "activation"});
    DType dtype = DType::F32;
    if (auto it = c.find("dtype"); it != c.end()) {
        if (!it->is_string() || (*it != "f32" && *it != "f16" && *it != "bf16"))
            nnconfig::fail(ptr + "/dtype", "expected \"f32\", \"f16\" or \"bf16\", got " + nnconfig::shortDump(*it));
        dtype = dtypeFromName(it->get<std::string>());
    }
    Activation act = Activation::None;
    if (auto it = c.find("activation"); it != c.end()) {
        if (!it->is_string() || (*it != "none" && *it != "relu" && *it != "gelu"))
            nnconfig::fail(ptr + "/activation",
                           "expected \"none\", \"relu\" or \"gelu\", got " + nnconfig::shortDump(*it));
        act = *it == "relu" ? Activation::Relu : *it == "gelu" ? Activation::Gelu : Activation::None;
    }
    return std::make_unique<Linear>(nnconfig::integer(c, "in", ptr, 1), nnconfig::integer(c, "out", ptr, 1),
                                    nnconfig::boolean(c, "bias", ptr, true), dtype, act);
}

} // namespace lathe::nnimpl

namespace lathe {
namespace {

nnimpl::Linear& linearAt(Model& model, const std::string& layerPath) {
    Layer& layer = ModelEditor(model).layer(layerPath);
    auto* linear = dynamic_cast<nnimpl::Linear*>(&layer);
    if (!linear) throw ConfigError("sparse execution: layer " + layerPath + " is a " + layer.type() + ", not a linear");
    return *linear;
}

} // namespace

const char* sparseFormatName(SparseFormat format) {
    switch (format) {
    case SparseFormat::Dense: return "dense";
    case SparseFormat::Csr: return "csr";
    case SparseFormat::Nm24: return "2:4";
    }
    return "?";
}

OpDesc sparseFormatOp(SparseFormat format, DType dt) {
    switch (format) {
    case SparseFormat::Dense: return OpDesc::uniform(Op::Gemm, dt);
    case SparseFormat::Csr: return OpDesc::uniform(Op::SpmmCsr, dt);
    case SparseFormat::Nm24: return OpDesc::uniform(Op::Spmm24, dt);
    }
    throw BackendError("sparse execution: no such format");
}

void setSparseExecution(Model& model, const std::string& layerPath, SparseFormat format) {
    linearAt(model, layerPath).setSparse(model.backend(), format);
}

SparseFormat sparseExecution(Model& model, const std::string& layerPath) {
    return linearAt(model, layerPath).sparseFormat();
}

} // namespace lathe

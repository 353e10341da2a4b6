// The quantized Linear ("qlinear", quantized_linear.h): packed codes and scales as buffers, run by the backend's
// weight-only or W8A8 kernel.
#include "engine/nn/config_fields.h"
#include "engine/nn/layers_common.h"
#include "engine/nn/quantized_linear.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <tuple>

namespace lathe {
namespace {

template <class E>
E choice(const nlohmann::json& c, const char* key, const std::string& ptr, E fallback,
         std::initializer_list<std::pair<const char*, E>> names) {
    auto it = c.find(key);
    if (it == c.end()) return fallback;
    std::string list;
    for (const auto& [n, v] : names) {
        if (it->is_string() && it->get<std::string>() == n) return v;
        list += (list.empty() ? "" : ", ") + std::string(n);
    }
    nnconfig::fail(ptr + "/" + key, "expected one of " + list + ", got " + nnconfig::shortDump(*it));
}

constexpr std::initializer_list<std::pair<const char*, ActivationQuant>> kActivationQuants = {
    {"none", ActivationQuant::None}, {"dynamic", ActivationQuant::Dynamic}, {"static", ActivationQuant::Static}};
constexpr std::initializer_list<std::pair<const char*, Activation>> kActivations = {
    {"none", Activation::None}, {"relu", Activation::Relu}, {"gelu", Activation::Gelu}};
constexpr std::initializer_list<std::pair<const char*, WeightFormat>> kFormats = {
    {"int8", WeightFormat::Int8}, {"int4", WeightFormat::Int4}, {"nf4", WeightFormat::Nf4}, {"fp8", WeightFormat::Fp8}};

// The quantization fields of a qlinear or qconv2d entry; in and out are the GEMM's (for a conv, C*KH*KW and K).
QuantizedLinearConfig quantFields(const nlohmann::json& c, const std::string& ptr, std::int64_t in, std::int64_t out) {
    QuantizedLinearConfig q;
    q.in = in;
    q.out = out;
    q.bias = nnconfig::boolean(c, "bias", ptr, true);
    q.weights.format = choice(c, "weights", ptr, WeightFormat::Int8, kFormats);
    q.weights.group = nnconfig::integerOr(c, "group", ptr, 0, 0);
    q.weights.symmetric = nnconfig::boolean(c, "symmetric", ptr, true);
    q.activations = choice(c, "activations", ptr, ActivationQuant::None, kActivationQuants);
    q.perChannel = choice<bool>(c, "granularity", ptr, true, {{"per_channel", true}, {"per_tensor", false}});
    q.epilogue = choice(c, "activation", ptr, Activation::None, kActivations);
    q.weights.doubleQuant = nnconfig::boolean(c, "double_quant", ptr, false);
    q.simulate = nnconfig::boolean(c, "simulate", ptr, false);
    if (q.weights.format == WeightFormat::Fp8 && q.activations != ActivationQuant::None) {
        if (q.activations != ActivationQuant::Dynamic)
            nnconfig::fail(ptr + "/activations", "fp8 activations are quantized per tensor at run time: expected "
                                                 "\"dynamic\" or \"none\", got \"" +
                                                     std::string(activationQuantName(q.activations)) + "\"");
        if (q.group() != q.in)
            nnconfig::fail(ptr + "/group", "the FP8 GEMM takes one weight scale per output channel (group " +
                                               std::to_string(q.in) + "), got " + std::to_string(q.weights.group));
    } else if (q.activations != ActivationQuant::None && q.weights.format != WeightFormat::Int8) {
        nnconfig::fail(ptr + "/activations", std::string("quantized activations need int8 weights (W8A8) or fp8 "
                                                          "weights (the FP8 GEMM), got ") +
                                                  weightFormatName(q.weights.format) + " weights");
    }
    if (q.weights.doubleQuant && q.weights.format != WeightFormat::Nf4)
        nnconfig::fail(ptr + "/double_quant", std::string("double-quantized scales are an nf4 option, got ") +
                                                  weightFormatName(q.weights.format) + " weights");
    if (q.weights.format != WeightFormat::Int4) q.weights.symmetric = true;
    return q;
}

QuantizedLinearConfig configFromJson(const nlohmann::json& c, const std::string& ptr) {
    nnconfig::onlyKeys(c, ptr,
                       {"type", "in", "out", "bias", "weights", "group", "symmetric", "activations", "granularity",
                        "activation", "double_quant", "simulate"});
    return quantFields(c, ptr, nnconfig::integer(c, "in", ptr, 1), nnconfig::integer(c, "out", ptr, 1));
}

class QuantizedLinear final : public Layer {
public:
    explicit QuantizedLinear(const QuantizedLinearConfig& c) : m_c(c) {
        const bool w8a8 = int8Activations();
        const std::int64_t groups = quantGroups(c.in, c.group());
        m_packed.name = "weight_packed";
        m_packed.value = Tensor::host({c.out, packedRowBytes(c.weights.format, c.in)},
                                      packedDType(c.weights.format));
        std::memset(m_packed.value.data(), 0, m_packed.value.bytes());
        m_scale.name = "weight_scale";
        m_scale.value = nnimpl::hostZeros(w8a8 ? Shape{c.perChannel ? c.out : 1} : Shape{c.out, groups});
        if (doubleQuant()) {
            // The absmax as 8-bit codes, their per-256 absmax and the offset (quant_matrix.h), no f32 scales.
            m_scale.name = "weight_scale_packed";
            m_scale.value = Tensor::host({c.out, groups}, DType::U8);
            std::memset(m_scale.value.data(), 0, m_scale.value.bytes());
            m_scaleAbsmax.name = "weight_scale_absmax";
            m_scaleAbsmax.value = nnimpl::hostZeros({(c.out * groups + kDoubleQuantBlock - 1) / kDoubleQuantBlock});
            m_scaleOffset.name = "weight_scale_offset";
            m_scaleOffset.value = nnimpl::hostZeros({1});
        }
        if (!c.weights.symmetric) {
            m_zero.name = "weight_zero_point";
            m_zero.value = Tensor::host({c.out, groups}, DType::U8);
            std::memset(m_zero.value.data(), 0, m_zero.value.bytes());
        }
        if (c.activations == ActivationQuant::Static) {
            m_inputScale.name = "input_scale";
            m_inputScale.value = nnimpl::hostZeros({1});
        }
        if (c.bias) {
            m_bias.name = "bias";
            m_bias.value = nnimpl::hostZeros({c.out});
        }
    }

    std::string type() const override { return "qlinear"; }
    nlohmann::json config() const override { return m_c.toJson(); }
    const QuantizedLinearConfig& settings() const { return m_c; }

    Shape outputShape(const Shape& input) const override {
        if (input.size() < 2 || input.back() != m_c.in)
            nnimpl::shapeError("qlinear", "(N, ..., " + std::to_string(m_c.in) + ")", input);
        Shape out = input;
        out.back() = m_c.out;
        return out;
    }

    Tensor forward(Backend& be, const Tensor& x, const ForwardContext& ctx) override {
        if (ctx.training)
            throw ConfigError("qlinear: a quantized layer runs inference only (fine-tune the float model with "
                              "\"qat\", then quantize)");
        const Shape outShape = outputShape(x.shape());
        const std::int64_t rows = x.numel() / m_c.in;
        const Tensor x2 = x.view({rows, m_c.in});
        Tensor y = be.empty({rows, m_c.out});
        const Tensor* bias = m_c.bias ? &m_bias.value : nullptr;
        if (!int8Activations()) {
            QuantizedWeights w = weights();
            if (m_c.activations == ActivationQuant::None) be.gemmWeightOnly(x2, w, bias, m_c.epilogue, y);
            else be.gemmFp8(x2, w, bias, m_c.epilogue, fp8Mode(be), y);
        } else {
            Tensor xq = be.empty({rows, m_c.in}, DType::I8);
            const bool dynamic = m_c.activations == ActivationQuant::Dynamic;
            Tensor scale = dynamic ? be.empty({rows}) : m_inputScale.value;
            be.quantizeRows(x2, xq, scale, dynamic);
            be.gemmInt8(xq, scale, packedFor(be), m_scale.value, bias, m_c.epilogue, y);
        }
        return y.view(outShape);
    }

    Tensor backward(Backend&, const Tensor&) override {
        throw ConfigError("qlinear: a quantized layer has no backward (it runs inference only)");
    }

    std::vector<Parameter*> parameters() override {
        if (m_c.bias) return {&m_bias};
        return {};
    }
    std::int64_t quantizedWeightCount() const override { return m_c.in * m_c.out; }
    std::vector<Buffer*> buffers() override {
        std::vector<Buffer*> out{&m_packed, &m_scale};
        if (doubleQuant()) {
            out.push_back(&m_scaleAbsmax);
            out.push_back(&m_scaleOffset);
        }
        if (!m_c.weights.symmetric) out.push_back(&m_zero);
        if (m_c.activations == ActivationQuant::Static) out.push_back(&m_inputScale);
        return out;
    }

    // Fills the buffers from float weights (host data).
    void quantizeFrom(Backend& be, const float* w, const float* bias, float inputScale) {
        if (!int8Activations()) {
            const HostQuantMatrix q = quantizeMatrix(w, m_c.out, m_c.in, spec());
            m_packed.value = uploadBytes(be, q.packed.data(), m_packed.value);
            if (q.doubleQuant()) {
                m_scale.value = uploadBytes(be, q.scaleCodes.data(), m_scale.value);
                m_scaleAbsmax.value = be.upload(q.scaleAbsmax, m_scaleAbsmax.value.shape());
                m_scaleOffset.value = be.upload(std::vector<float>{q.scaleOffset}, {1});
            } else {
                m_scale.value = be.upload(q.scales, m_scale.value.shape());
            }
            if (q.hasZeros()) m_zero.value = uploadBytes(be, q.zeros.data(), m_zero.value);
        } else {
            // Symmetric int8, one scale per row (per channel) or one for the whole tensor.
            const std::int64_t n = m_c.perChannel ? m_c.out : 1, span = m_c.perChannel ? m_c.in : m_c.in * m_c.out;
            std::vector<float> scales(static_cast<std::size_t>(n));
            std::vector<std::int8_t> codes(static_cast<std::size_t>(m_c.out * m_c.in));
            for (std::int64_t r = 0; r < n; ++r) {
                float amax = 0;
                for (std::int64_t k = 0; k < span; ++k) amax = std::max(amax, std::fabs(w[r * span + k]));
                const float s = amax / 127.0f;
                scales[static_cast<std::size_t>(r)] = s;
                const float inv = s > 0 ? 1.0f / s : 0.0f;
                for (std::int64_t k = 0; k < span; ++k)
                    codes[static_cast<std::size_t>(r * span + k)] =
                        static_cast<std::int8_t>(std::clamp<long>(std::lround(w[r * span + k] * inv), -127, 127));
            }
            m_packed.value = uploadBytes(be, codes.data(), m_packed.value);
            m_scale.value = be.upload(scales, m_scale.value.shape());
            if (m_c.activations == ActivationQuant::Static) {
                if (!(inputScale > 0) || !std::isfinite(inputScale))
                    throw ConfigError("qlinear: static activation quantization needs a calibrated scale > 0, got " +
                                      std::to_string(inputScale));
                m_inputScale.value = be.upload(std::vector<float>{inputScale}, {1});
            }
        }
        if (m_c.bias) m_bias.value = be.upload(std::vector<float>(bias, bias + m_c.out), {m_c.out});
        m_packedFor = nullptr;
    }

    // W (out, in) as the kernels multiply by it.
    std::vector<float> dequantized(Backend& be) {
        std::vector<float> w(static_cast<std::size_t>(m_c.out * m_c.in));
        const Tensor packed = be.download(m_packed.value);
        if (!int8Activations()) {
            HostQuantMatrix q;
            q.spec = spec();
            q.rows = m_c.out;
            q.cols = m_c.in;
            const auto* p = static_cast<const std::uint8_t*>(packed.data());
            q.packed.assign(p, p + packed.bytes());
            if (doubleQuant()) {
                const Tensor codes = be.download(m_scale.value);
                const auto* cp = static_cast<const std::uint8_t*>(codes.data());
                q.scaleCodes.assign(cp, cp + codes.bytes());
                q.scaleAbsmax = be.downloadF32(m_scaleAbsmax.value);
                q.scaleOffset = be.downloadF32(m_scaleOffset.value).at(0);
                q.scales.resize(q.scaleCodes.size());
                decodeDoubleQuantScales(q.scaleCodes.data(), q.scaleAbsmax.data(), q.scaleOffset,
                                        static_cast<std::int64_t>(q.scales.size()), q.scales.data());
            } else {
                q.scales = be.downloadF32(m_scale.value);
            }
            if (!m_c.weights.symmetric) {
                const Tensor z = be.download(m_zero.value);
                const auto* zp = static_cast<const std::uint8_t*>(z.data());
                q.zeros.assign(zp, zp + z.bytes());
            }
            dequantizeMatrix(q, w.data());
        } else {
            const std::vector<float> scales = be.downloadF32(m_scale.value);
            const auto* codes = static_cast<const std::int8_t*>(packed.data());
            for (std::int64_t r = 0; r < m_c.out; ++r)
                for (std::int64_t k = 0; k < m_c.in; ++k)
                    w[static_cast<std::size_t>(r * m_c.in + k)] =
                        static_cast<float>(codes[r * m_c.in + k]) * scales[m_c.perChannel ? std::size_t(r) : 0];
        }
        return w;
    }

    std::uint64_t storedBytes() {
        std::uint64_t n = 0;
        for (Parameter* p : parameters()) n += p->value.bytes();
        for (Buffer* b : buffers()) n += b->value.bytes();
        return n;
    }

    // W8A8 with one calibrated activation scale: an input's codes do not depend on where the value sits, so a
    // convolution may quantize its input once and lay out the codes (quantizeInput, then forwardCodes).
    bool staticInt8() const { return int8Activations() && m_c.activations == ActivationQuant::Static; }
    // x (any shape) -> xq, the same shape in i8, with the calibrated scale (staticInt8 only).
    void quantizeInput(Backend& be, const Tensor& x, Tensor& xq) {
        const std::int64_t cols = x.rank() >= 2 ? x.dim(x.rank() - 1) : x.numel();
        Tensor xq2 = xq.view({x.numel() / cols, cols});
        be.quantizeRows(x.view({x.numel() / cols, cols}), xq2, m_inputScale.value, false);
    }
    // xq (M, in) codes at the calibrated scale -> y (M, out): the GEMM and epilogue of forward().
    Tensor forwardCodes(Backend& be, const Tensor& xq) {
        Tensor y = be.empty({xq.dim(0), m_c.out});
        be.gemmInt8(xq, m_inputScale.value, packedFor(be), m_scale.value, m_c.bias ? &m_bias.value : nullptr,
                    m_c.epilogue, y);
        return y;
    }

private:
    // W8A8 int8 (quantizeRows + gemmInt8); every other config keeps W in quant_matrix.h's layout.
    bool int8Activations() const {
        return m_c.activations != ActivationQuant::None && m_c.weights.format == WeightFormat::Int8;
    }
    bool doubleQuant() const { return m_c.weights.format == WeightFormat::Nf4 && m_c.weights.doubleQuant; }
    QuantSpec spec() const { return {m_c.weights.format, m_c.group(), m_c.weights.symmetric, doubleQuant()}; }
    QuantizedWeights weights() const {
        QuantizedWeights w{spec(), m_c.out, m_c.in, m_packed.value, m_scale.value, m_zero.value, {}, {}, {}};
        if (doubleQuant()) {
            w.scales = Tensor();
            w.scaleCodes = m_scale.value;
            w.scaleAbsmax = m_scaleAbsmax.value;
            w.scaleOffset = m_scaleOffset.value;
        }
        return w;
    }
    // The FP8 GEMM on FP8 units where the backend has them; else its numerics in f32 when the layer allows
    // simulation (the step that made it marked the run simulated); else BackendError naming what is missing.
    Fp8Mode fp8Mode(const Backend& be) const {
        if (be.supports(fp8GemmDesc(Fp8Mode::Native))) return Fp8Mode::Native;
        if (m_c.simulate) return Fp8Mode::Emulated;
        throw BackendError("qlinear: " + be.name() + " has no " + fp8GemmDesc(Fp8Mode::Native).toString() +
                           " (the layer does not allow \"simulate\")");
    }

    static Tensor uploadBytes(Backend& be, const void* bytes, const Tensor& like) {
        Tensor h = Tensor::host(like.shape(), like.dtype());
        std::memcpy(h.data(), bytes, h.bytes());
        return be.upload(h);
    }

    // The backend's execution layout of the int8 weight, rebuilt when the codes are another tensor (moved,
    // reloaded) or live on another backend.
    const Tensor& packedFor(Backend& be) {
        if (m_packedFor != m_packed.value.data() || m_packedW.device() != be.device()) {
            m_packedW = be.prepackInt8(m_packed.value);
            m_packedFor = m_packed.value.data();
        }
        return m_packedW;
    }

    QuantizedLinearConfig m_c;
    Buffer m_packed, m_scale, m_zero, m_inputScale;
    Buffer m_scaleAbsmax, m_scaleOffset; // double-quantized nf4 (m_scale then holds the absmax codes)
    Parameter m_bias;
    Tensor m_packedW;
    const void* m_packedFor = nullptr;
};

// The quantized Conv2d (groups 1): the input patches under each output position as rows (Backend::im2colRows),
// the quantized GEMM of a qlinear over them (W as (K, C*KH*KW), the conv weight's own memory order), and the
// rows back to channels (Backend::rowsToChannels).
class QuantizedConv2d final : public Layer {
public:
    QuantizedConv2d(const QuantizedConvShape& shape, const QuantizedLinearConfig& gemm) : m_shape(shape), m_core(gemm) {}

    std::string type() const override { return "qconv2d"; }
    nlohmann::json config() const override {
        nlohmann::json c = m_core.config();
        c["type"] = "qconv2d";
        c["in"] = m_shape.inChannels;
        c["out"] = m_core.settings().out;
        c["kernel"] = {m_shape.kernelH, m_shape.kernelW};
        if (m_shape.strideH != 1 || m_shape.strideW != 1) c["stride"] = {m_shape.strideH, m_shape.strideW};
        if (m_shape.padH != 0 || m_shape.padW != 0) c["padding"] = {m_shape.padH, m_shape.padW};
        return c;
    }
    Shape outputShape(const Shape& input) const override {
        if (input.size() != 4 || input[1] != m_shape.inChannels)
            nnimpl::shapeError("qconv2d", "(N, " + std::to_string(m_shape.inChannels) + ", H, W)", input);
        const Conv2dGeometry g = geometry(input);
        if (g.outH() <= 0 || g.outW() <= 0) nnimpl::shapeError("qconv2d", "an input at least as large as the kernel", input);
        return {g.batch, g.outChannels, g.outH(), g.outW()};
    }
    Tensor forward(Backend& be, const Tensor& x, const ForwardContext& ctx) override {
        const Shape outShape = outputShape(x.shape());
        const Conv2dGeometry g = geometry(x.shape());
        const std::int64_t positions = g.batch * g.outH() * g.outW();
        Tensor rows; // (N*OH*OW, K)
        if (m_core.staticInt8() && !ctx.training && be.supports(OpDesc::uniform(Op::Im2colRows, DType::I8))) {
            // One scale for every value: quantize the input once and lay out its codes, a quarter of the bytes
            // and 1 / (KH*KW) of the quantizing of the float patches, to the same codes.
            Tensor xq = be.empty(x.shape(), DType::I8);
            m_core.quantizeInput(be, x, xq);
            Tensor cols = be.empty({positions, m_core.settings().in}, DType::I8); // (N*OH*OW, C*KH*KW)
            be.im2colRows(xq, cols, g);
            rows = m_core.forwardCodes(be, cols);
        } else {
            Tensor cols = be.empty({positions, m_core.settings().in}); // (N*OH*OW, C*KH*KW)
            be.im2colRows(x, cols, g);
            rows = m_core.forward(be, cols, ctx);
        }
        Tensor y = be.empty(outShape);
        be.rowsToChannels(rows, y, g.batch);
        return y;
    }
    Tensor backward(Backend& be, const Tensor& dy) override { return m_core.backward(be, dy); }
    std::vector<Parameter*> parameters() override { return m_core.parameters(); }
    std::vector<Buffer*> buffers() override { return m_core.buffers(); }
    std::int64_t quantizedWeightCount() const override { return m_core.quantizedWeightCount(); }
    QuantizedLinear& core() { return m_core; }

private:
    Conv2dGeometry geometry(const Shape& input) const {
        Conv2dGeometry g;
        g.batch = input[0];
        g.inChannels = m_shape.inChannels;
        g.height = input[2];
        g.width = input[3];
        g.outChannels = m_core.settings().out;
        g.kernelH = m_shape.kernelH;
        g.kernelW = m_shape.kernelW;
        g.strideH = m_shape.strideH;
        g.strideW = m_shape.strideW;
        g.padH = m_shape.padH;
        g.padW = m_shape.padW;
        return g;
    }

    QuantizedConvShape m_shape;
    QuantizedLinear m_core;
};

QuantizedLinear& asQuantized(Layer& layer) {
    if (auto* q = dynamic_cast<QuantizedLinear*>(&layer)) return *q;
    if (auto* c = dynamic_cast<QuantizedConv2d*>(&layer)) return c->core();
    throw ConfigError("layer of type " + layer.type() + " is not a qlinear or qconv2d");
}

} // namespace

const char* activationQuantName(ActivationQuant a) {
    for (const auto& [n, v] : kActivationQuants)
        if (v == a) return n;
    return "?";
}

const char* activationName(Activation a) {
    for (const auto& [n, v] : kActivations)
        if (v == a) return n;
    return "?";
}

nlohmann::json QuantizedLinearConfig::toJson() const {
    nlohmann::json c = {{"type", "qlinear"}, {"in", in}, {"out", out}, {"weights", weightFormatName(weights.format)}};
    if (!bias) c["bias"] = false;
    if (activations == ActivationQuant::None || weights.format == WeightFormat::Fp8) {
        c["group"] = group();
        if (weights.format == WeightFormat::Int4) c["symmetric"] = weights.symmetric;
        if (weights.format == WeightFormat::Nf4 && weights.doubleQuant) c["double_quant"] = true;
        if (activations != ActivationQuant::None) c["activations"] = activationQuantName(activations);
        if (simulate) c["simulate"] = true;
    } else {
        c["activations"] = activationQuantName(activations);
        c["granularity"] = perChannel ? "per_channel" : "per_tensor";
    }
    if (epilogue != Activation::None) c["activation"] = activationName(epilogue);
    return c;
}

std::unique_ptr<Layer> makeQuantizedLinear(Backend& be, const QuantizedLinearConfig& config, const float* w,
                                           const float* bias, float inputScale) {
    auto layer = std::make_unique<QuantizedLinear>(configFromJson(config.toJson(), ""));
    layer->quantizeFrom(be, w, bias, inputScale);
    return layer;
}

QuantizedLinearConfig quantizedLinearConfig(const Layer& layer) {
    return asQuantized(const_cast<Layer&>(layer)).settings();
}

std::vector<float> dequantizedWeight(Backend& be, Layer& layer) { return asQuantized(layer).dequantized(be); }

std::uint64_t quantizedLinearBytes(Layer& layer) { return asQuantized(layer).storedBytes(); }

std::unique_ptr<Layer> makeQuantizedConv2d(Backend& be, const QuantizedLinearConfig& gemm,
                                           const QuantizedConvShape& shape, const float* w, const float* bias,
                                           float inputScale) {
    if (gemm.in != shape.inChannels * shape.kernelH * shape.kernelW)
        throw ConfigError("qconv2d: the GEMM's in (" + std::to_string(gemm.in) + ") is not C*KH*KW (" +
                          std::to_string(shape.inChannels * shape.kernelH * shape.kernelW) + ")");
    auto layer = std::make_unique<QuantizedConv2d>(shape, configFromJson(gemm.toJson(), ""));
    layer->core().quantizeFrom(be, w, bias, inputScale);
    return layer;
}

namespace nnimpl {
std::unique_ptr<Layer> makeQuantizedLinear(const nlohmann::json& c, const std::string& ptr) {
    return std::make_unique<QuantizedLinear>(configFromJson(c, ptr));
}

std::unique_ptr<Layer> makeQuantizedConv2d(const nlohmann::json& c, const std::string& ptr) {
    nnconfig::onlyKeys(c, ptr,
                       {"type", "in", "out", "kernel", "stride", "padding", "bias", "weights", "group", "symmetric",
                        "activations", "granularity", "activation", "double_quant", "simulate"});
    const std::int64_t one = 1, zero = 0;
    QuantizedConvShape s;
    s.inChannels = nnconfig::integer(c, "in", ptr, 1);
    std::tie(s.kernelH, s.kernelW) = nnconfig::pair2(c, "kernel", ptr, 1);
    std::tie(s.strideH, s.strideW) = nnconfig::pair2(c, "stride", ptr, 1, &one);
    std::tie(s.padH, s.padW) = nnconfig::pair2(c, "padding", ptr, 0, &zero);
    return std::make_unique<QuantizedConv2d>(
        s, quantFields(c, ptr, s.inChannels * s.kernelH * s.kernelW, nnconfig::integer(c, "out", ptr, 1)));
}
} // namespace nnimpl

} // namespace lathe

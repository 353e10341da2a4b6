// The quantized Linear ("qlinear", quantized_linear.h): packed codes and scales as buffers, run by the backend's
// weight-only or W8A8 kernel.
#include "engine/nn/config_fields.h"
#include "engine/nn/layers_common.h"
#include "engine/nn/quantized_linear.h"

#include <algorithm>
#include <cmath>
#include <cstring>

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
    {"int8", WeightFormat::Int8}, {"int4", WeightFormat::Int4}, {"nf4", WeightFormat::Nf4}};

QuantizedLinearConfig configFromJson(const nlohmann::json& c, const std::string& ptr) {
    nnconfig::onlyKeys(c, ptr,
                       {"type", "in", "out", "bias", "weights", "group", "symmetric", "activations", "granularity",
                        "activation"});
    QuantizedLinearConfig q;
    q.in = nnconfig::integer(c, "in", ptr, 1);
    q.out = nnconfig::integer(c, "out", ptr, 1);
    q.bias = nnconfig::boolean(c, "bias", ptr, true);
    q.weights.format = choice(c, "weights", ptr, WeightFormat::Int8, kFormats);
    q.weights.group = nnconfig::integerOr(c, "group", ptr, 0, 0);
    q.weights.symmetric = nnconfig::boolean(c, "symmetric", ptr, true);
    q.activations = choice(c, "activations", ptr, ActivationQuant::None, kActivationQuants);
    q.perChannel = choice<bool>(c, "granularity", ptr, true, {{"per_channel", true}, {"per_tensor", false}});
    q.epilogue = choice(c, "activation", ptr, Activation::None, kActivations);
    if (q.activations != ActivationQuant::None && q.weights.format != WeightFormat::Int8)
        nnconfig::fail(ptr + "/activations", std::string("quantized activations need int8 weights (W8A8), got ") +
                                                  weightFormatName(q.weights.format) + " weights");
    if (q.weights.format != WeightFormat::Int4) q.weights.symmetric = true;
    return q;
}

class QuantizedLinear final : public Layer {
public:
    explicit QuantizedLinear(const QuantizedLinearConfig& c) : m_c(c) {
        const bool w8a8 = c.activations != ActivationQuant::None;
        const std::int64_t groups = quantGroups(c.in, c.group());
        m_packed.name = "weight_packed";
        m_packed.value = Tensor::host({c.out, packedRowBytes(c.weights.format, c.in)},
                                      c.weights.format == WeightFormat::Int8 ? DType::I8 : DType::U8);
        std::memset(m_packed.value.data(), 0, m_packed.value.bytes());
        m_scale.name = "weight_scale";
        m_scale.value = nnimpl::hostZeros(w8a8 ? Shape{c.perChannel ? c.out : 1} : Shape{c.out, groups});
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
        if (m_c.activations == ActivationQuant::None) {
            QuantizedWeights w{{m_c.weights.format, m_c.group(), m_c.weights.symmetric}, m_c.out, m_c.in,
                               m_packed.value, m_scale.value, m_zero.value};
            be.gemmWeightOnly(x2, w, bias, m_c.epilogue, y);
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
    std::vector<Buffer*> buffers() override {
        std::vector<Buffer*> out{&m_packed, &m_scale};
        if (!m_c.weights.symmetric) out.push_back(&m_zero);
        if (m_c.activations == ActivationQuant::Static) out.push_back(&m_inputScale);
        return out;
    }

    // Fills the buffers from float weights (host data).
    void quantizeFrom(Backend& be, const float* w, const float* bias, float inputScale) {
        if (m_c.activations == ActivationQuant::None) {
            const HostQuantMatrix q =
                quantizeMatrix(w, m_c.out, m_c.in, {m_c.weights.format, m_c.group(), m_c.weights.symmetric});
            m_packed.value = uploadBytes(be, q.packed.data(), m_packed.value);
            m_scale.value = be.upload(q.scales, m_scale.value.shape());
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
        const std::vector<float> scales = be.downloadF32(m_scale.value);
        if (m_c.activations == ActivationQuant::None) {
            HostQuantMatrix q;
            q.spec = {m_c.weights.format, m_c.group(), m_c.weights.symmetric};
            q.rows = m_c.out;
            q.cols = m_c.in;
            const auto* p = static_cast<const std::uint8_t*>(packed.data());
            q.packed.assign(p, p + packed.bytes());
            q.scales = scales;
            if (!m_c.weights.symmetric) {
                const Tensor z = be.download(m_zero.value);
                const auto* zp = static_cast<const std::uint8_t*>(z.data());
                q.zeros.assign(zp, zp + z.bytes());
            }
            dequantizeMatrix(q, w.data());
        } else {
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

private:
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
    Parameter m_bias;
    Tensor m_packedW;
    const void* m_packedFor = nullptr;
};

QuantizedLinear& asQuantized(Layer& layer) {
    auto* q = dynamic_cast<QuantizedLinear*>(&layer);
    if (!q) throw ConfigError("layer of type " + layer.type() + " is not a qlinear");
    return *q;
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
    if (activations == ActivationQuant::None) {
        c["group"] = group();
        if (weights.format == WeightFormat::Int4) c["symmetric"] = weights.symmetric;
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

namespace nnimpl {
std::unique_ptr<Layer> makeQuantizedLinear(const nlohmann::json& c, const std::string& ptr) {
    return std::make_unique<QuantizedLinear>(configFromJson(c, ptr));
}
} // namespace nnimpl

} // namespace lathe

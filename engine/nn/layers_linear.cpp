// Linear: y = x W^T + b over the last dimension, weight (out, in) as PyTorch lays it out.
#include "engine/nn/config_fields.h"
#include "engine/nn/layers_common.h"

namespace lathe::nnimpl {
namespace {

class Linear final : public Layer {
public:
    Linear(std::int64_t in, std::int64_t out, bool bias) : m_in(in), m_out(out), m_hasBias(bias) {
        m_weight.name = "weight";
        m_weight.value = hostZeros({out, in});
        if (bias) {
            m_bias.name = "bias";
            m_bias.value = hostZeros({out});
        }
    }

    std::string type() const override { return "linear"; }
    nlohmann::json config() const override {
        nlohmann::json c = {{"type", "linear"}, {"in", m_in}, {"out", m_out}};
        if (!m_hasBias) c["bias"] = false;
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
        be.gemm(x2, Trans::No, m_weight.value, Trans::Yes, y);
        if (m_hasBias) be.biasAdd(y, m_bias.value);
        if (ctx.training) m_x = x2;
        return y.view(outShape);
    }

    Tensor backward(Backend& be, const Tensor& dy) override {
        requireCache(m_x, "linear");
        const std::int64_t rows = m_x.dim(0);
        const Tensor dy2 = dy.view({rows, m_out}); // (M, out)
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
        if (m_hasBias) m_bias.value = uniformTensor(be, rng, {m_out}, bound);
    }

    void releaseCache() override { m_x = Tensor(); }

private:
    std::int64_t m_in, m_out;
    bool m_hasBias;
    Parameter m_weight, m_bias;
    Tensor m_x; // (M, in) forward input, training only
};

} // namespace

std::unique_ptr<Layer> makeLinear(const nlohmann::json& c, const std::string& ptr) {
    nnconfig::onlyKeys(c, ptr, {"type", "in", "out", "bias"});
    return std::make_unique<Linear>(nnconfig::integer(c, "in", ptr, 1), nnconfig::integer(c, "out", ptr, 1),
                                    nnconfig::boolean(c, "bias", ptr, true));
}

} // namespace lathe::nnimpl

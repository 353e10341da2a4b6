// Shape-preserving layers (ReLU, GELU, Dropout) and Flatten.
#include "engine/core/rng.h"
#include "engine/nn/config_fields.h"
#include "engine/nn/layers_common.h"

namespace lathe::nnimpl {
namespace {

class Relu final : public Layer {
public:
    std::string type() const override { return "relu"; }
    nlohmann::json config() const override { return {{"type", "relu"}}; }
    Shape outputShape(const Shape& input) const override { return input; }

    Tensor forward(Backend& be, const Tensor& x, const ForwardContext& ctx) override {
        Tensor y = be.empty(x.shape());
        be.relu(x, y);
        if (ctx.training) m_x = x;
        return y;
    }
    Tensor backward(Backend& be, const Tensor& dy) override {
        requireCache(m_x, "relu");
        Tensor dx = be.empty(m_x.shape());
        be.reluBackward(m_x, dy.view(m_x.shape()), dx);
        return dx;
    }
    void releaseCache() override { m_x = Tensor(); }

private:
    Tensor m_x;
};

class Gelu final : public Layer {
public:
    std::string type() const override { return "gelu"; }
    nlohmann::json config() const override { return {{"type", "gelu"}}; }
    Shape outputShape(const Shape& input) const override { return input; }

    Tensor forward(Backend& be, const Tensor& x, const ForwardContext& ctx) override {
        Tensor y = be.empty(x.shape());
        be.gelu(x, y);
        if (ctx.training) m_x = x;
        return y;
    }
    Tensor backward(Backend& be, const Tensor& dy) override {
        requireCache(m_x, "gelu");
        Tensor dx = be.empty(m_x.shape());
        be.geluBackward(m_x, dy.view(m_x.shape()), dx);
        return dx;
    }
    void releaseCache() override { m_x = Tensor(); }

private:
    Tensor m_x;
};

// Inverted dropout: active only in training forwards. The mask comes from the backend's counter-based
// hash, seeded from (ctx.seed, layer index, step), so CPU and GPU drop the same units.
class Dropout final : public Layer {
public:
    explicit Dropout(double p) : m_p(p) {}
    std::string type() const override { return "dropout"; }
    nlohmann::json config() const override { return {{"type", "dropout"}, {"p", m_p}}; }
    Shape outputShape(const Shape& input) const override { return input; }

    static std::uint64_t maskSeed(const ForwardContext& ctx, int index) {
        std::uint64_t s = mix64(ctx.seed ^ 0xd50b0a7d5eedull);
        s = mix64(s ^ static_cast<std::uint64_t>(index));
        return mix64(s ^ static_cast<std::uint64_t>(ctx.step));
    }

    Tensor forward(Backend& be, const Tensor& x, const ForwardContext& ctx) override {
        if (!ctx.training || m_p <= 0.0) {
            m_active = false;
            return x;
        }
        Tensor y = be.empty(x.shape());
        Tensor mask = be.empty(x.shape());
        be.dropout(x, y, mask, static_cast<float>(m_p), maskSeed(ctx, index));
        m_mask = mask;
        m_active = true;
        return y;
    }
    Tensor backward(Backend& be, const Tensor& dy) override {
        if (!m_active) return dy;
        requireCache(m_mask, "dropout");
        Tensor dx = be.empty(m_mask.shape());
        be.mul(dy.view(m_mask.shape()), m_mask, dx);
        return dx;
    }
    void releaseCache() override {
        m_mask = Tensor();
        m_active = false;
    }

private:
    double m_p;
    bool m_active = false;
    Tensor m_mask;
};

// (N, d1, d2, ...) -> (N, d1*d2*...), as torch.nn.Flatten() with start_dim 1.
class Flatten final : public Layer {
public:
    std::string type() const override { return "flatten"; }
    nlohmann::json config() const override { return {{"type", "flatten"}}; }
    Shape outputShape(const Shape& input) const override {
        if (input.empty()) shapeError("flatten", "(N, ...)", input);
        return {input[0], tailSize(input)};
    }
    Tensor forward(Backend&, const Tensor& x, const ForwardContext& ctx) override {
        if (ctx.training) m_inputShape = x.shape();
        return x.view(outputShape(x.shape()));
    }
    Tensor backward(Backend&, const Tensor& dy) override {
        if (m_inputShape.empty()) requireCache(Tensor(), "flatten");
        return dy.view(m_inputShape);
    }
    void releaseCache() override { m_inputShape.clear(); }

private:
    static std::int64_t tailSize(const Shape& s) {
        std::int64_t n = 1;
        for (std::size_t i = 1; i < s.size(); ++i) n *= s[i];
        return n;
    }
    Shape m_inputShape;
};

} // namespace

std::unique_ptr<Layer> makeRelu(const nlohmann::json& c, const std::string& ptr) {
    nnconfig::onlyKeys(c, ptr, {"type"});
    return std::make_unique<Relu>();
}

std::unique_ptr<Layer> makeGelu(const nlohmann::json& c, const std::string& ptr) {
    nnconfig::onlyKeys(c, ptr, {"type"});
    return std::make_unique<Gelu>();
}

std::unique_ptr<Layer> makeDropout(const nlohmann::json& c, const std::string& ptr) {
    nnconfig::onlyKeys(c, ptr, {"type", "p"});
    const double half = 0.5;
    return std::make_unique<Dropout>(nnconfig::number(c, "p", ptr, 0.0, 1.0, true, &half));
}

std::unique_ptr<Layer> makeFlatten(const nlohmann::json& c, const std::string& ptr) {
    nnconfig::onlyKeys(c, ptr, {"type"});
    return std::make_unique<Flatten>();
}

} // namespace lathe::nnimpl

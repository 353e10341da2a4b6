// Blocks that own sub-layers, so a model can branch: `sequential` (a nested sequence) and `residual`
// (y = x + f(x), f the nested sequence). Children are named like a PyTorch module holding nn.Sequential `layers`.
#include "engine/nn/config_fields.h"
#include "engine/nn/layers_common.h"

namespace lathe::nnimpl {
namespace {

class Block : public Layer {
public:
    explicit Block(std::vector<std::unique_ptr<Layer>> layers) : m_layers(std::move(layers)) {
        for (std::size_t i = 0; i < m_layers.size(); ++i) m_layers[i]->index = static_cast<int>(i);
    }

    nlohmann::json config() const override {
        nlohmann::json layers = nlohmann::json::array();
        for (const auto& l : m_layers) layers.push_back(l->config());
        return {{"type", type()}, {"layers", layers}};
    }

    std::vector<Parameter*> parameters() override { return children(&Layer::parameters); }
    void namedParameters(const std::string& prefix, std::vector<NamedParameter>& out) override {
        namedChildren(&Layer::namedParameters, prefix, out);
    }
    std::vector<Buffer*> buffers() override { return children(&Layer::buffers); }
    void namedBuffers(const std::string& prefix, std::vector<NamedBuffer>& out) override {
        namedChildren(&Layer::namedBuffers, prefix, out);
    }

    std::vector<std::unique_ptr<Layer>>* sublayers() override { return &m_layers; }

    void initialize(Backend& be, Rng& rng) override {
        for (auto& l : m_layers) l->initialize(be, rng);
    }
    void releaseCache() override {
        for (auto& l : m_layers) l->releaseCache();
    }

protected:
    // The children's parameters or buffers, in order.
    template <class T>
    std::vector<T*> children(std::vector<T*> (Layer::*of)()) {
        std::vector<T*> out;
        for (auto& l : m_layers)
            for (T* t : (*l.*of)()) out.push_back(t);
        return out;
    }
    // The same under their full names: child i's under prefix + "layers.<i>.".
    template <class Named>
    void namedChildren(void (Layer::*of)(const std::string&, std::vector<Named>&), const std::string& prefix,
                       std::vector<Named>& out) {
        for (std::size_t i = 0; i < m_layers.size(); ++i) (*m_layers[i].*of)(prefix + "layers." + std::to_string(i) + ".", out);
    }

    // The shape after every child; a child's error names its place in the block ("layers/2: ...").
    Shape chainShape(const Shape& input) const {
        Shape s = input;
        for (std::size_t i = 0; i < m_layers.size(); ++i) {
            try {
                s = m_layers[i]->outputShape(s);
            } catch (const ConfigError& e) {
                throw ConfigError(type() + " layers/" + std::to_string(i) + ": " + e.what());
            }
        }
        return s;
    }

    Tensor chainForward(Backend& be, const Tensor& x, const ForwardContext& ctx) {
        // Children get a seed of their own, so a dropout inside the block never repeats the mask of a
        // dropout at the same position of the enclosing sequence.
        ForwardContext inner = ctx;
        inner.seed = mix64(ctx.seed ^ (0xb10cb10cull + static_cast<std::uint64_t>(index)));
        Tensor h = x;
        for (auto& l : m_layers) h = l->forward(be, h, inner);
        return h;
    }

    // dy -> d(input); undefined when a child takes no gradient input (an embedding).
    Tensor chainBackward(Backend& be, const Tensor& dy) {
        Tensor d = dy;
        for (auto it = m_layers.rbegin(); it != m_layers.rend() && d.defined(); ++it) d = (*it)->backward(be, d);
        return d;
    }

    std::vector<std::unique_ptr<Layer>> m_layers;
};

class Sequential final : public Block {
public:
    using Block::Block;
    std::string type() const override { return "sequential"; }
    Shape outputShape(const Shape& input) const override { return chainShape(input); }
    Tensor forward(Backend& be, const Tensor& x, const ForwardContext& ctx) override {
        return chainForward(be, x, ctx);
    }
    Tensor backward(Backend& be, const Tensor& dy) override { return chainBackward(be, dy); }
};

// y = x + f(x): the gradient reaches x through both the identity and f.
class Residual final : public Block {
public:
    using Block::Block;
    std::string type() const override { return "residual"; }

    Shape outputShape(const Shape& input) const override {
        const Shape s = chainShape(input);
        if (s != input)
            throw ConfigError("residual: its layers map " + shapeToString(input) + " to " + shapeToString(s) +
                              ", but y = x + f(x) needs f to keep the shape");
        return input;
    }

    Tensor forward(Backend& be, const Tensor& x, const ForwardContext& ctx) override {
        const Tensor fx = chainForward(be, x, ctx); // (N, ...) like x
        Tensor y = be.empty(x.shape());
        be.add(x, fx.view(x.shape()), y);
        return y;
    }

    Tensor backward(Backend& be, const Tensor& dy) override {
        const Tensor df = chainBackward(be, dy);
        if (!df.defined()) return dy;
        Tensor dx = be.empty(dy.shape());
        be.add(dy, df.view(dy.shape()), dx);
        return dx;
    }
};

std::vector<std::unique_ptr<Layer>> childrenOf(const nlohmann::json& c, const std::string& ptr) {
    nnconfig::onlyKeys(c, ptr, {"type", "layers"});
    auto it = c.find("layers");
    if (it == c.end()) nnconfig::fail(ptr + "/layers", "missing (expected a non-empty array of layer objects)");
    if (!it->is_array() || it->empty())
        nnconfig::fail(ptr + "/layers", "expected a non-empty array of layer objects, got " + nnconfig::shortDump(*it));
    std::vector<std::unique_ptr<Layer>> out;
    for (std::size_t i = 0; i < it->size(); ++i) out.push_back(makeLayer((*it)[i], ptr + "/layers/" + std::to_string(i)));
    return out;
}

} // namespace

std::unique_ptr<Layer> makeResidual(const nlohmann::json& c, const std::string& ptr) {
    return std::make_unique<Residual>(childrenOf(c, ptr));
}

std::unique_ptr<Layer> makeSequential(const nlohmann::json& c, const std::string& ptr) {
    return std::make_unique<Sequential>(childrenOf(c, ptr));
}

} // namespace lathe::nnimpl

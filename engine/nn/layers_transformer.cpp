// Transformer layers: the attention core over a fused QKV projection's output (causal and key-padding masks,
// with or without a KV cache), learned position and token-type embeddings added to the token embeddings, mean
// pooling over the valid tokens, L2 normalisation, and a linear head computing with a tied weight.
// Blocks (pre- and post-LayerNorm) are compositions of these with linear, layernorm, gelu and residual
// (transformer.h builds their architecture entries).
#include "engine/nn/config_fields.h"
#include "engine/nn/kv_cache.h"
#include "engine/nn/layers_common.h"

namespace lathe::nnimpl {
namespace {

const Tensor* lengthsOf(const ForwardContext& ctx) { return ctx.sequence ? ctx.sequence->deviceLengths() : nullptr; }

// (N, T, 3D) -> (N, T, D): softmax(Q K^T / sqrt(Dh)) V per head, Q, K, V the three column blocks of the input
// (PyTorch's in_proj layout). Parameter-free: the projections are the linear layers around it.
class Attention final : public Layer {
public:
    Attention(std::int64_t heads, bool causal) : m_heads(heads), m_causal(causal) {}

    std::string type() const override { return "attention"; }
    nlohmann::json config() const override {
        nlohmann::json c = {{"type", "attention"}, {"heads", m_heads}};
        if (m_causal) c["causal"] = true;
        return c;
    }
    Shape outputShape(const Shape& input) const override {
        if (input.size() != 3 || input[2] % (3 * m_heads) != 0)
            shapeError("attention", "(N, T, 3 * D) with D divisible by heads = " + std::to_string(m_heads), input);
        return {input[0], input[1], input[2] / 3};
    }

    Tensor forward(Backend& be, const Tensor& x, const ForwardContext& ctx) override {
        outputShape(x.shape());
        const std::int64_t n = x.dim(0), t = x.dim(1), d = x.dim(2) / 3;
        Tensor out = be.empty({n, t, d});            // (N, T, D)
        Tensor lse = be.empty({n, m_heads, t});      // (N, H, T)
        if (ctx.kvCache) {
            if (ctx.training) throw ConfigError("attention: a KV cache is for generation, not training");
            ctx.kvCache->attend(be, this, x, lengthsOf(ctx), params(d), out, lse);
        } else {
            be.attentionForward(x, x, x, lengthsOf(ctx), out, lse, params(d));
        }
        if (ctx.training) {
            m_x = x;
            m_out = out;
            m_lse = lse;
            m_sequence = ctx.sequence;
        }
        return out;
    }

    Tensor backward(Backend& be, const Tensor& dy) override {
        requireCache(m_x, "attention");
        const std::int64_t d = m_x.dim(2) / 3;
        Tensor dx = be.empty(m_x.shape()); // (N, T, 3D): dq, dk, dv side by side
        const Tensor* lens = m_sequence ? m_sequence->deviceLengths() : nullptr;
        be.attentionBackward(dy.view(m_out.shape()), m_x, m_x, m_x, lens, m_out, m_lse, dx, dx, dx, params(d));
        return dx;
    }

    void releaseCache() override {
        m_x = m_out = m_lse = Tensor();
        m_sequence.reset();
    }

private:
    AttentionParams params(std::int64_t d) const {
        AttentionParams p;
        p.heads = m_heads;
        p.headDim = d / m_heads;
        p.qOffset = 0;
        p.kOffset = d;
        p.vOffset = 2 * d;
        p.causal = m_causal;
        return p;
    }

    std::int64_t m_heads;
    bool m_causal;
    Tensor m_x, m_out, m_lse;
    std::shared_ptr<const SequenceBatch> m_sequence;
};

// y (N, T, D) = x + table[offset + t] (offset: SequenceBatch::positionOffset, the cached tokens when decoding).
class PositionEmbedding final : public Layer {
public:
    PositionEmbedding(std::int64_t num, std::int64_t dim, double std) : m_num(num), m_dim(dim), m_std(std) {
        m_table.name = "weight";
        m_table.value = hostZeros({num, dim});
    }
    std::string type() const override { return "position_embedding"; }
    nlohmann::json config() const override {
        nlohmann::json c = {{"type", type()}, {"num", m_num}, {"dim", m_dim}};
        if (m_std != 1.0) c["std"] = m_std;
        return c;
    }
    Shape outputShape(const Shape& input) const override {
        if (input.size() != 3 || input[2] != m_dim || input[1] > m_num)
            shapeError("position_embedding", "(N, T <= " + std::to_string(m_num) + ", " + std::to_string(m_dim) + ")",
                       input);
        return input;
    }

    Tensor forward(Backend& be, const Tensor& x, const ForwardContext& ctx) override {
        outputShape(x.shape());
        const std::int64_t n = x.dim(0), t = x.dim(1), offset = ctx.sequence ? ctx.sequence->positionOffset : 0;
        if (offset < 0 || offset + t > m_num)
            throw ConfigError("position_embedding: positions [" + std::to_string(offset) + ", " +
                              std::to_string(offset + t) + ") pass the table's " + std::to_string(m_num) +
                              " positions (the model's context)");
        Tensor y = be.empty(x.shape());
        if (ctx.sequence && ctx.sequence->positionIds.defined()) {
            // Sequences at different positions (a serving batch decoding many requests): each row's own position.
            if (ctx.training) throw ConfigError("position_embedding: per-row positions are for generation, not training");
            if (ctx.sequence->positionIds.numel() != n * t)
                throw ConfigError("position_embedding: position ids " + ctx.sequence->positionIds.describe() +
                                  " do not match x " + x.describe());
            Tensor e = be.empty({n * t, m_dim}); // (N * T, D)
            be.embeddingForward(ctx.sequence->positionIds, m_table.value, e);
            be.add(x, e.view(x.shape()), y);
            return y;
        }
        be.copy(x, y);
        Tensor y2 = y.view({n, t * m_dim});
        be.biasAdd(y2, m_table.value.slice0(offset, offset + t).view({t * m_dim}));
        if (ctx.training) m_range = {offset, t};
        return y;
    }

    Tensor backward(Backend& be, const Tensor& dy) override {
        if (m_range.second == 0) requireCache(Tensor(), "position_embedding");
        const auto [offset, t] = m_range;
        Tensor g = m_table.grad.slice0(offset, offset + t).view({t * m_dim});
        be.biasGrad(dy.view({dy.numel() / (t * m_dim), t * m_dim}), g, true);
        return dy;
    }

    std::vector<Parameter*> parameters() override { return {&m_table}; }
    // torch.nn.Embedding's N(0, 1), scaled by std when the config sets one (GPT-2 draws 0.02).
    void initialize(Backend& be, Rng& rng) override {
        m_table.value = normalTensor(be, rng, {m_num, m_dim}, static_cast<float>(m_std));
    }
    void releaseCache() override { m_range = {0, 0}; }

    static Tensor normalTensor(Backend& be, Rng& rng, const Shape& shape, float std) {
        Tensor h = Tensor::host(shape, DType::F32);
        float* p = h.ptr<float>();
        for (std::int64_t i = 0; i < h.numel(); ++i) p[i] = std * rng.normal();
        return be.upload(h);
    }

private:
    std::int64_t m_num, m_dim;
    double m_std;
    Parameter m_table;
    std::pair<std::int64_t, std::int64_t> m_range{0, 0}; // offset, T of the training forward
};

// y (N, T, D) = x + table[type of each token] (SequenceBatch::tokenTypes; type 0 everywhere when absent).
class TokenTypeEmbedding final : public Layer {
public:
    TokenTypeEmbedding(std::int64_t num, std::int64_t dim) : m_num(num), m_dim(dim) {
        m_table.name = "weight";
        m_table.value = hostZeros({num, dim});
    }
    std::string type() const override { return "token_type_embedding"; }
    nlohmann::json config() const override { return {{"type", type()}, {"num", m_num}, {"dim", m_dim}}; }
    Shape outputShape(const Shape& input) const override {
        if (input.size() != 3 || input[2] != m_dim)
            shapeError("token_type_embedding", "(N, T, " + std::to_string(m_dim) + ")", input);
        return input;
    }

    Tensor forward(Backend& be, const Tensor& x, const ForwardContext& ctx) override {
        outputShape(x.shape());
        const std::int64_t rows = x.dim(0) * x.dim(1);
        Tensor y = be.empty(x.shape());
        const Tensor types = ctx.sequence ? ctx.sequence->tokenTypes : Tensor();
        if (types.defined()) {
            if (types.numel() != rows)
                throw ConfigError("token_type_embedding: token types " + types.describe() + " do not match x " +
                                  x.describe());
            Tensor e = be.empty({rows, m_dim}); // (N * T, D)
            be.embeddingForward(types.view({rows}), m_table.value, e);
            be.add(x, e.view(x.shape()), y);
        } else {
            be.copy(x, y);
            Tensor y2 = y.view({rows, m_dim});
            be.biasAdd(y2, m_table.value.slice0(0, 1).view({m_dim}));
        }
        if (ctx.training) {
            m_types = types.defined() ? types.view({rows}) : Tensor();
            m_trained = true;
        }
        return y;
    }

    Tensor backward(Backend& be, const Tensor& dy) override {
        if (!m_trained) requireCache(Tensor(), "token_type_embedding");
        const std::int64_t rows = dy.numel() / m_dim;
        if (m_types.defined()) {
            be.embeddingBackward(m_types, dy.view({rows, m_dim}), m_table.grad, true);
        } else {
            Tensor g = m_table.grad.slice0(0, 1).view({m_dim});
            be.biasGrad(dy.view({rows, m_dim}), g, true);
        }
        return dy;
    }

    std::vector<Parameter*> parameters() override { return {&m_table}; }
    void initialize(Backend& be, Rng& rng) override {
        m_table.value = PositionEmbedding::normalTensor(be, rng, {m_num, m_dim}, 1.0f);
    }
    void releaseCache() override {
        m_types = Tensor();
        m_trained = false;
    }

private:
    std::int64_t m_num, m_dim;
    Parameter m_table;
    Tensor m_types;
    bool m_trained = false;
};

// (N, T, D) -> (N, D): the mean over each sequence's valid tokens (all T without a SequenceBatch).
class MeanPool final : public Layer {
public:
    std::string type() const override { return "mean_pool"; }
    nlohmann::json config() const override { return {{"type", type()}}; }
    Shape outputShape(const Shape& input) const override {
        if (input.size() != 3) shapeError("mean_pool", "(N, T, D)", input);
        return {input[0], input[2]};
    }
    Tensor forward(Backend& be, const Tensor& x, const ForwardContext& ctx) override {
        const Shape s = outputShape(x.shape());
        Tensor y = be.empty(s);
        be.meanPoolForward(x, lengthsOf(ctx), y);
        if (ctx.training) {
            m_shape = x.shape();
            m_sequence = ctx.sequence;
        }
        return y;
    }
    Tensor backward(Backend& be, const Tensor& dy) override {
        if (m_shape.empty()) requireCache(Tensor(), "mean_pool");
        Tensor dx = be.empty(m_shape);
        be.meanPoolBackward(dy, m_sequence ? m_sequence->deviceLengths() : nullptr, dx);
        return dx;
    }
    void releaseCache() override {
        m_shape.clear();
        m_sequence.reset();
    }

private:
    Shape m_shape;
    std::shared_ptr<const SequenceBatch> m_sequence;
};

// (N, D) -> (N, D): rows divided by their L2 norm (torch.nn.functional.normalize, eps 1e-12 by default).
class L2Normalize final : public Layer {
public:
    explicit L2Normalize(double eps) : m_eps(eps) {}
    std::string type() const override { return "l2_normalize"; }
    nlohmann::json config() const override {
        nlohmann::json c = {{"type", type()}};
        if (m_eps != kDefaultEps) c["eps"] = m_eps;
        return c;
    }
    Shape outputShape(const Shape& input) const override {
        if (input.size() != 2) shapeError("l2_normalize", "(N, D)", input);
        return input;
    }
    Tensor forward(Backend& be, const Tensor& x, const ForwardContext& ctx) override {
        outputShape(x.shape());
        Tensor y = be.empty(x.shape()), norm = be.empty({x.dim(0)});
        be.l2NormalizeForward(x, y, norm, static_cast<float>(m_eps));
        if (ctx.training) {
            m_y = y;
            m_norm = norm;
        }
        return y;
    }
    Tensor backward(Backend& be, const Tensor& dy) override {
        requireCache(m_y, "l2_normalize");
        Tensor dx = be.empty(m_y.shape());
        be.l2NormalizeBackward(dy, m_y, m_norm, dx, static_cast<float>(m_eps));
        return dx;
    }
    void releaseCache() override { m_y = m_norm = Tensor(); }
    static constexpr double kDefaultEps = 1e-12;

private:
    double m_eps;
    Tensor m_y, m_norm;
};

// y (..., out) = x (..., in) @ W^T with W (out, in) another layer's parameter (a language model's output head
// tied to its token embedding: W is the embedding table (V, D)).
class TiedLinear final : public Layer {
public:
    TiedLinear(std::int64_t in, std::int64_t out, std::string weight)
        : m_in(in), m_out(out), m_weightName(std::move(weight)) {}
    std::string type() const override { return "tied_linear"; }
    nlohmann::json config() const override {
        return {{"type", type()}, {"in", m_in}, {"out", m_out}, {"weight", m_weightName}};
    }
    Shape outputShape(const Shape& input) const override {
        if (input.size() < 2 || input.back() != m_in)
            shapeError("tied_linear", "(N, ..., " + std::to_string(m_in) + ")", input);
        Shape s = input;
        s.back() = m_out;
        return s;
    }
    std::string sharedParameterName() const override { return m_weightName; }
    void bindSharedParameter(Parameter* p) override {
        if (p->value.shape() != Shape{m_out, m_in})
            throw ConfigError("tied_linear: parameter " + m_weightName + " is " + shapeToString(p->value.shape()) +
                              ", expected [" + std::to_string(m_out) + ", " + std::to_string(m_in) + "]");
        m_weight = p;
    }

    Tensor forward(Backend& be, const Tensor& x, const ForwardContext& ctx) override {
        const Shape s = outputShape(x.shape());
        if (!m_weight) throw ConfigError("tied_linear: " + m_weightName + " is not bound (build it inside a model)");
        const std::int64_t rows = x.numel() / m_in;
        const Tensor x2 = x.view({rows, m_in});
        Tensor y = be.empty({rows, m_out});
        be.gemm(x2, Trans::No, m_weight->value, Trans::Yes, y);
        if (ctx.training) m_x = x2;
        return y.view(s);
    }
    Tensor backward(Backend& be, const Tensor& dy) override {
        requireCache(m_x, "tied_linear");
        const std::int64_t rows = m_x.dim(0);
        const Tensor dy2 = dy.view({rows, m_out});
        be.gemm(dy2, Trans::Yes, m_x, Trans::No, m_weight->grad, 1.0f, 1.0f); // dW (out, in) += dy^T x
        Tensor dx = be.empty({rows, m_in});
        be.gemm(dy2, Trans::No, m_weight->value, Trans::No, dx); // dx (rows, in) = dy W
        Shape s = dy.shape();
        s.back() = m_in;
        return dx.view(s);
    }
    void releaseCache() override { m_x = Tensor(); }

private:
    std::int64_t m_in, m_out;
    std::string m_weightName;
    Parameter* m_weight = nullptr;
    Tensor m_x;
};

} // namespace

std::unique_ptr<Layer> makeAttention(const nlohmann::json& c, const std::string& ptr) {
    nnconfig::onlyKeys(c, ptr, {"type", "heads", "causal"});
    return std::make_unique<Attention>(nnconfig::integer(c, "heads", ptr, 1), nnconfig::boolean(c, "causal", ptr, false));
}

std::unique_ptr<Layer> makePositionEmbedding(const nlohmann::json& c, const std::string& ptr) {
    nnconfig::onlyKeys(c, ptr, {"type", "num", "dim", "std"});
    const double one = 1.0;
    return std::make_unique<PositionEmbedding>(nnconfig::integer(c, "num", ptr, 1), nnconfig::integer(c, "dim", ptr, 1),
                                               nnconfig::number(c, "std", ptr, 0.0, 1e3, false, &one));
}

std::unique_ptr<Layer> makeTokenTypeEmbedding(const nlohmann::json& c, const std::string& ptr) {
    nnconfig::onlyKeys(c, ptr, {"type", "num", "dim"});
    return std::make_unique<TokenTypeEmbedding>(nnconfig::integer(c, "num", ptr, 1),
                                                nnconfig::integer(c, "dim", ptr, 1));
}

std::unique_ptr<Layer> makeMeanPool(const nlohmann::json& c, const std::string& ptr) {
    nnconfig::onlyKeys(c, ptr, {"type"});
    return std::make_unique<MeanPool>();
}

std::unique_ptr<Layer> makeL2Normalize(const nlohmann::json& c, const std::string& ptr) {
    nnconfig::onlyKeys(c, ptr, {"type", "eps"});
    const double eps = L2Normalize::kDefaultEps;
    return std::make_unique<L2Normalize>(nnconfig::number(c, "eps", ptr, 0.0, 1.0, false, &eps));
}

std::unique_ptr<Layer> makeTiedLinear(const nlohmann::json& c, const std::string& ptr) {
    nnconfig::onlyKeys(c, ptr, {"type", "in", "out", "weight"});
    auto w = c.find("weight");
    if (w == c.end() || !w->is_string() || w->get<std::string>().empty())
        nnconfig::fail(ptr + "/weight", "expected the full name of another layer's parameter (\"layers.0.weight\"), got " +
                                            (w == c.end() ? std::string("nothing") : nnconfig::shortDump(*w)));
    return std::make_unique<TiedLinear>(nnconfig::integer(c, "in", ptr, 1), nnconfig::integer(c, "out", ptr, 1),
                                        w->get<std::string>());
}

} // namespace lathe::nnimpl

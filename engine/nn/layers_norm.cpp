// LayerNorm over the last dimension (weight = gamma, bias = beta, as PyTorch names them) and
// Embedding (a lookup table (num, dim) indexed by I32 ids).
#include "engine/nn/config_fields.h"
#include "engine/nn/layers_common.h"

namespace lathe::nnimpl {
namespace {

class LayerNorm final : public Layer {
public:
    LayerNorm(std::int64_t dim, double eps) : m_dim(dim), m_eps(eps) {
        m_gamma.name = "weight";
        m_gamma.value = hostZeros({dim});
        std::fill_n(m_gamma.value.ptr<float>(), dim, 1.0f);
        m_beta.name = "bias";
        m_beta.value = hostZeros({dim});
    }

    std::string type() const override { return "layernorm"; }
    nlohmann::json config() const override {
        nlohmann::json c = {{"type", "layernorm"}, {"dim", m_dim}};
        if (m_eps != kDefaultEps) c["eps"] = m_eps;
        return c;
    }
    Shape outputShape(const Shape& input) const override {
        if (input.size() < 2 || input.back() != m_dim)
            shapeError("layernorm", "(N, ..., " + std::to_string(m_dim) + ")", input);
        return input;
    }

    Tensor forward(Backend& be, const Tensor& x, const ForwardContext& ctx) override {
        outputShape(x.shape());
        const std::int64_t rows = x.numel() / m_dim;
        const Tensor x2 = x.view({rows, m_dim}); // (M, D)
        Tensor y = be.empty({rows, m_dim});      // (M, D)
        Tensor mean = be.empty({rows});          // (M)
        Tensor rstd = be.empty({rows});          // (M)
        be.layerNormForward(x2, m_gamma.value, m_beta.value, y, mean, rstd, static_cast<float>(m_eps));
        if (ctx.training) {
            m_x = x2;
            m_mean = mean;
            m_rstd = rstd;
        }
        return y.view(x.shape());
    }

    Tensor backward(Backend& be, const Tensor& dy) override {
        requireCache(m_x, "layernorm");
        Tensor dx = be.empty(m_x.shape()); // (M, D)
        be.layerNormBackward(dy.view(m_x.shape()), m_x, m_gamma.value, m_mean, m_rstd, dx, m_gamma.grad,
                             m_beta.grad, true);
        return dx.view(dy.shape());
    }

    std::vector<Parameter*> parameters() override { return {&m_gamma, &m_beta}; }

    void initialize(Backend& be, Rng&) override {
        m_gamma.value = constantTensor(be, {m_dim}, 1.0f);
        m_beta.value = constantTensor(be, {m_dim}, 0.0f);
    }

    void releaseCache() override {
        m_x = Tensor();
        m_mean = Tensor();
        m_rstd = Tensor();
    }

    static constexpr double kDefaultEps = 1e-5; // torch.nn.LayerNorm's default

private:
    std::int64_t m_dim;
    double m_eps;
    Parameter m_gamma, m_beta;
    Tensor m_x, m_mean, m_rstd;
};

class Embedding final : public Layer {
public:
    Embedding(std::int64_t num, std::int64_t dim) : m_num(num), m_dim(dim) {
        m_table.name = "weight";
        m_table.value = hostZeros({num, dim});
    }

    std::string type() const override { return "embedding"; }
    nlohmann::json config() const override { return {{"type", "embedding"}, {"num", m_num}, {"dim", m_dim}}; }
    Shape outputShape(const Shape& input) const override {
        if (input.empty()) shapeError("embedding", "ids (N, ...)", input);
        Shape out = input;
        out.push_back(m_dim);
        return out;
    }

    Tensor forward(Backend& be, const Tensor& ids, const ForwardContext& ctx) override {
        if (ids.dtype() != DType::I32)
            throw ConfigError("embedding expects I32 ids, got " + ids.describe());
        const Shape outShape = outputShape(ids.shape());
        const Tensor flat = ids.view({ids.numel()}); // (M)
        Tensor y = be.empty({ids.numel(), m_dim});   // (M, D)
        be.embeddingForward(flat, m_table.value, y);
        if (ctx.training) m_ids = flat;
        return y.view(outShape);
    }

    // Ids have no gradient: returns an undefined tensor, which ends backpropagation.
    Tensor backward(Backend& be, const Tensor& dy) override {
        requireCache(m_ids, "embedding");
        be.embeddingBackward(m_ids, dy.view({m_ids.numel(), m_dim}), m_table.grad, true);
        return Tensor();
    }

    std::vector<Parameter*> parameters() override { return {&m_table}; }

    // torch.nn.Embedding draws N(0, 1).
    void initialize(Backend& be, Rng& rng) override {
        Tensor h = Tensor::host({m_num, m_dim}, DType::F32);
        float* p = h.ptr<float>();
        for (std::int64_t i = 0; i < h.numel(); ++i) p[i] = rng.normal();
        m_table.value = be.upload(h);
    }

    void releaseCache() override { m_ids = Tensor(); }

private:
    std::int64_t m_num, m_dim;
    Parameter m_table;
    Tensor m_ids;
};

} // namespace

std::unique_ptr<Layer> makeLayerNorm(const nlohmann::json& c, const std::string& ptr) {
    nnconfig::onlyKeys(c, ptr, {"type", "dim", "eps"});
    const double eps = LayerNorm::kDefaultEps;
    return std::make_unique<LayerNorm>(nnconfig::integer(c, "dim", ptr, 1),
                                       nnconfig::number(c, "eps", ptr, 0.0, 1.0, false, &eps));
}

std::unique_ptr<Layer> makeEmbedding(const nlohmann::json& c, const std::string& ptr) {
    nnconfig::onlyKeys(c, ptr, {"type", "num", "dim"});
    return std::make_unique<Embedding>(nnconfig::integer(c, "num", ptr, 1), nnconfig::integer(c, "dim", ptr, 1));
}

} // namespace lathe::nnimpl

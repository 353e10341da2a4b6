// LayerNorm over the last dimension (weight = gamma, bias = beta, as PyTorch names them), BatchNorm2d over the
// channels of NCHW maps (PyTorch's parameters and running-statistic buffers) and Embedding (a lookup table
// (num, dim) indexed by I32 ids).
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

// torch.nn.BatchNorm2d(features, eps, momentum) with affine parameters and tracked running statistics: training
// normalizes each channel with the batch's statistics and tracks them; evaluation uses the running ones.
class BatchNorm2d final : public Layer {
public:
    BatchNorm2d(std::int64_t features, double eps, double momentum)
        : m_features(features), m_eps(eps), m_momentum(momentum) {
        m_gamma.name = "weight";
        m_gamma.value = hostZeros({features});
        std::fill_n(m_gamma.value.ptr<float>(), features, 1.0f);
        m_beta.name = "bias";
        m_beta.value = hostZeros({features});
        m_runningMean.name = "running_mean";
        m_runningMean.value = hostZeros({features});
        m_runningVar.name = "running_var";
        m_runningVar.value = hostZeros({features});
        std::fill_n(m_runningVar.value.ptr<float>(), features, 1.0f);
        // PyTorch's int64 scalar; only the host updates it, so it stays there.
        m_batchesTracked.name = "num_batches_tracked";
        m_batchesTracked.host = true;
        m_batchesTracked.value = Tensor::host({}, DType::I64);
        *m_batchesTracked.value.ptr<std::int64_t>() = 0;
    }

    std::string type() const override { return "batchnorm2d"; }
    nlohmann::json config() const override {
        nlohmann::json c = {{"type", "batchnorm2d"}, {"features", m_features}};
        if (m_eps != kDefaultEps) c["eps"] = m_eps;
        if (m_momentum != kDefaultMomentum) c["momentum"] = m_momentum;
        return c;
    }
    Shape outputShape(const Shape& input) const override {
        if (input.size() != 4 || input[1] != m_features)
            shapeError("batchnorm2d", "(N, " + std::to_string(m_features) + ", H, W)", input);
        return input;
    }

    Tensor forward(Backend& be, const Tensor& x, const ForwardContext& ctx) override {
        outputShape(x.shape());
        Tensor y = be.empty(x.shape());      // (N, C, H, W)
        Tensor mean = be.empty({m_features}); // (C)
        Tensor rstd = be.empty({m_features}); // (C)
        BatchNormParams p;
        p.eps = static_cast<float>(m_eps);
        p.momentum = static_cast<float>(m_momentum);
        p.training = ctx.training;
        be.batchNormForward(x, m_gamma.value, m_beta.value, m_runningMean.value, m_runningVar.value, y, mean, rstd, p);
        if (ctx.training) {
            ++*m_batchesTracked.value.ptr<std::int64_t>();
            m_x = x;
            m_mean = mean;
            m_rstd = rstd;
        }
        return y;
    }

    Tensor backward(Backend& be, const Tensor& dy) override {
        requireCache(m_x, "batchnorm2d");
        Tensor dx = be.empty(m_x.shape()); // (N, C, H, W)
        be.batchNormBackward(dy, m_x, m_gamma.value, m_mean, m_rstd, dx, m_gamma.grad, m_beta.grad, true);
        return dx;
    }

    std::vector<Parameter*> parameters() override { return {&m_gamma, &m_beta}; }
    std::vector<Buffer*> buffers() override { return {&m_runningMean, &m_runningVar, &m_batchesTracked}; }

    void initialize(Backend& be, Rng&) override {
        m_gamma.value = constantTensor(be, {m_features}, 1.0f);
        m_beta.value = constantTensor(be, {m_features}, 0.0f);
        m_runningMean.value = constantTensor(be, {m_features}, 0.0f);
        m_runningVar.value = constantTensor(be, {m_features}, 1.0f);
        m_batchesTracked.value = Tensor::host({}, DType::I64);
        *m_batchesTracked.value.ptr<std::int64_t>() = 0;
    }

    void releaseCache() override {
        m_x = Tensor();
        m_mean = Tensor();
        m_rstd = Tensor();
    }

    static constexpr double kDefaultEps = 1e-5;      // torch.nn.BatchNorm2d's defaults
    static constexpr double kDefaultMomentum = 0.1;

private:
    std::int64_t m_features;
    double m_eps, m_momentum;
    Parameter m_gamma, m_beta;
    Buffer m_runningMean, m_runningVar, m_batchesTracked;
    Tensor m_x, m_mean, m_rstd; // (N, C, H, W), (C), (C)
};

class Embedding final : public Layer {
public:
    Embedding(std::int64_t num, std::int64_t dim, double std) : m_num(num), m_dim(dim), m_std(std) {
        m_table.name = "weight";
        m_table.value = hostZeros({num, dim});
    }

    std::string type() const override { return "embedding"; }
    nlohmann::json config() const override {
        nlohmann::json c = {{"type", "embedding"}, {"num", m_num}, {"dim", m_dim}};
        if (m_std != 1.0) c["std"] = m_std;
        return c;
    }
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

    // torch.nn.Embedding draws N(0, 1); "std" scales it (GPT-2 initialises its embeddings with 0.02).
    void initialize(Backend& be, Rng& rng) override {
        Tensor h = Tensor::host({m_num, m_dim}, DType::F32);
        float* p = h.ptr<float>();
        for (std::int64_t i = 0; i < h.numel(); ++i) p[i] = static_cast<float>(m_std) * rng.normal();
        m_table.value = be.upload(h);
    }

    void releaseCache() override { m_ids = Tensor(); }

private:
    std::int64_t m_num, m_dim;
    double m_std;
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

std::unique_ptr<Layer> makeBatchNorm2d(const nlohmann::json& c, const std::string& ptr) {
    nnconfig::onlyKeys(c, ptr, {"type", "features", "eps", "momentum"});
    const double eps = BatchNorm2d::kDefaultEps, momentum = BatchNorm2d::kDefaultMomentum;
    return std::make_unique<BatchNorm2d>(nnconfig::integer(c, "features", ptr, 1),
                                         nnconfig::number(c, "eps", ptr, 0.0, 1.0, false, &eps),
                                         nnconfig::number(c, "momentum", ptr, 0.0, 1.0, false, &momentum));
}

std::unique_ptr<Layer> makeEmbedding(const nlohmann::json& c, const std::string& ptr) {
    nnconfig::onlyKeys(c, ptr, {"type", "num", "dim", "std"});
    const double one = 1.0;
    return std::make_unique<Embedding>(nnconfig::integer(c, "num", ptr, 1), nnconfig::integer(c, "dim", ptr, 1),
                                       nnconfig::number(c, "std", ptr, 0.0, 1e3, false, &one));
}

} // namespace lathe::nnimpl

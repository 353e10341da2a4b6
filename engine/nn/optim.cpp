// SGD (momentum) and Adam/AdamW: state tensors per parameter, kept on the parameter's backend.
#include "engine/nn/optim.h"

#include "engine/core/errors.h"

#include <unordered_map>

namespace lathe {
namespace {

class Sgd final : public Optimizer {
public:
    explicit Sgd(const SgdParams& p) : m_p(p) {}
    std::string name() const override { return "sgd"; }
    void setLearningRate(float lr) override { m_p.lr = lr; }

    void step(Backend& be, const std::vector<NamedParameter>& params) override {
        for (const auto& np : params) {
            auto& st = m_state[np.param];
            const bool first = !st.velocity.defined();
            if (first) st.velocity = be.zeros(np.param->value.shape());
            be.sgdStep(np.param->value, np.param->grad, st.velocity, m_p, first);
        }
    }

private:
    struct State {
        Tensor velocity;
    };
    SgdParams m_p;
    std::unordered_map<const Parameter*, State> m_state;
};

class Adam final : public Optimizer {
public:
    explicit Adam(const AdamParams& p) : m_p(p) {}
    std::string name() const override { return m_p.decoupled ? "adamw" : "adam"; }
    void setLearningRate(float lr) override { m_p.lr = lr; }

    void step(Backend& be, const std::vector<NamedParameter>& params) override {
        for (const auto& np : params) {
            auto& st = m_state[np.param];
            if (!st.m.defined()) {
                st.m = be.zeros(np.param->value.shape());
                st.v = be.zeros(np.param->value.shape());
            }
            // Steps are counted per parameter, as torch.optim.Adam does, for the bias correction.
            be.adamStep(np.param->value, np.param->grad, st.m, st.v, m_p, ++st.step);
        }
    }

private:
    struct State {
        Tensor m, v;
        std::int64_t step = 0;
    };
    AdamParams m_p;
    std::unordered_map<const Parameter*, State> m_state;
};

} // namespace

std::unique_ptr<Optimizer> makeSgd(const SgdParams& p) {
    if (!(p.lr > 0.0f)) throw ConfigError("sgd: learning rate must be positive");
    if (p.momentum < 0.0f) throw ConfigError("sgd: momentum must be >= 0");
    return std::make_unique<Sgd>(p);
}

std::unique_ptr<Optimizer> makeAdam(const AdamParams& p) {
    if (!(p.lr > 0.0f)) throw ConfigError(std::string(p.decoupled ? "adamw" : "adam") + ": learning rate must be positive");
    return std::make_unique<Adam>(p);
}

} // namespace lathe

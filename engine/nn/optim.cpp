// SGD (momentum) and Adam/AdamW over an OptimizerState keyed by parameter name; state tensors are kept
// on the parameter's backend.
#include "engine/nn/optim.h"

#include "engine/core/errors.h"

#include <set>

namespace lathe {

OptimizerState::Entry& OptimizerState::entry(const NamedParameter& np, const std::string& optimizer) {
    Entry& e = m_entries[np.name];
    const Tensor& value = np.param->value;
    const bool same = e.optimizer == optimizer && e.paramUid == np.param->uid && e.shape == value.shape() &&
                      (e.tensors.empty() || e.tensors.front().device() == value.device());
    if (!same) {
        e = Entry{};
        e.optimizer = optimizer;
        e.paramUid = np.param->uid;
        e.shape = value.shape();
    }
    return e;
}

void OptimizerState::retainOnly(const std::vector<NamedParameter>& params) {
    std::set<std::string> names;
    for (const auto& np : params) names.insert(np.name);
    for (auto it = m_entries.begin(); it != m_entries.end();)
        it = names.count(it->first) ? std::next(it) : m_entries.erase(it);
}

const OptimizerState::Entry* OptimizerState::find(const std::string& name) const {
    auto it = m_entries.find(name);
    return it == m_entries.end() ? nullptr : &it->second;
}

namespace {

class Sgd final : public Optimizer {
public:
    explicit Sgd(const SgdParams& p) : m_p(p) {}
    std::string name() const override { return "sgd"; }
    void setLearningRate(float lr) override { m_p.lr = lr; }

    void step(Backend& be, const std::vector<NamedParameter>& params, OptimizerState& state) override {
        for (const auto& np : params) {
            auto& st = state.entry(np, name());
            const bool first = st.tensors.empty();
            if (first) st.tensors = {be.zeros(np.param->value.shape())}; // velocity
            be.sgdStep(np.param->value, np.param->grad, st.tensors[0], m_p, first);
            ++st.steps;
        }
    }

private:
    SgdParams m_p;
};

class Adam final : public Optimizer {
public:
    explicit Adam(const AdamParams& p) : m_p(p) {}
    std::string name() const override { return m_p.decoupled ? "adamw" : "adam"; }
    void setLearningRate(float lr) override { m_p.lr = lr; }

    void step(Backend& be, const std::vector<NamedParameter>& params, OptimizerState& state) override {
        for (const auto& np : params) {
            auto& st = state.entry(np, name());
            if (st.tensors.empty()) st.tensors = {be.zeros(np.param->value.shape()), be.zeros(np.param->value.shape())};
            // Steps are counted per parameter, as torch.optim.Adam does, for the bias correction.
            be.adamStep(np.param->value, np.param->grad, st.tensors[0], st.tensors[1], m_p, ++st.steps);
        }
    }

private:
    AdamParams m_p;
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

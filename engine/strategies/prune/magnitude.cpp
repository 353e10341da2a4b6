// The `prune` family. `prune.magnitude`: unstructured magnitude pruning — the weights of smallest absolute
// value of every Linear and Conv2d weight are set to exactly zero, per layer or over the whole model.
// The zeros are kept: a mask hook holds them at exactly zero through every later training phase of the run
// (finetune). Dense kernels still multiply the zeros: the summary says how sparse the model is, not that it
// is faster.
#include "engine/strategies/strategy.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>

namespace lathe {
namespace {

enum class PruneScope { Layer, Global };

struct MagnitudeParams {
    double sparsity = 0.5;
    PruneScope scope = PruneScope::Global;
};

// The prunable weights: matrices and convolution kernels (rank >= 2), not biases or norm scales.
std::vector<NamedParameter> prunableWeights(Model& model) {
    std::vector<NamedParameter> out;
    for (const auto& np : model.namedParameters())
        if (np.param->value.rank() >= 2 && np.param->value.dtype() == DType::F32 &&
            np.name.size() > 7 && np.name.ends_with(".weight"))
            out.push_back(np);
    return out;
}

// Zeroes the `count` entries of smallest magnitude among `refs` (ties broken by position, so the result
// does not depend on the sort's stability).
void zeroSmallest(std::vector<float*>& refs, std::size_t count) {
    count = std::min(count, refs.size());
    if (count == 0) return;
    std::nth_element(refs.begin(), refs.begin() + static_cast<std::ptrdiff_t>(count - 1), refs.end(),
                     [](const float* a, const float* b) {
                         const float fa = std::fabs(*a), fb = std::fabs(*b);
                         return fa < fb || (fa == fb && a < b);
                     });
    for (std::size_t i = 0; i < count; ++i) *refs[i] = 0.0f;
}

// 1 where a weight is kept, 0 where it was pruned; on the model's backend.
struct Mask {
    std::string name;
    Tensor keep;
};

class MagnitudePrune final : public Strategy {
public:
    explicit MagnitudePrune(MagnitudeParams p) : m_params(p) {}

    void apply(StepContext& ctx) override {
        Backend& be = ctx.backend();
        auto weights = prunableWeights(ctx.model());
        if (weights.empty()) throw ConfigError("prune.magnitude: the model has no Linear or Conv2d weights to prune");
        std::vector<std::vector<float>> host;
        host.reserve(weights.size());
        for (const auto& w : weights) host.push_back(be.downloadF32(w.param->value));

        if (m_params.scope == PruneScope::Global) {
            std::vector<float*> all;
            for (auto& h : host)
                for (auto& v : h) all.push_back(&v);
            zeroSmallest(all, static_cast<std::size_t>(std::floor(m_params.sparsity * double(all.size()))));
        } else {
            for (auto& h : host) {
                std::vector<float*> refs;
                refs.reserve(h.size());
                for (auto& v : h) refs.push_back(&v);
                zeroSmallest(refs, static_cast<std::size_t>(std::floor(m_params.sparsity * double(h.size()))));
            }
        }

        double zeros = 0, total = 0;
        auto masks = std::make_shared<std::vector<Mask>>();
        for (std::size_t i = 0; i < weights.size(); ++i) {
            Tensor& value = weights[i].param->value;
            be.copyFromHost(value, host[i].data());
            std::vector<float> keep(host[i].size());
            for (std::size_t j = 0; j < keep.size(); ++j) keep[j] = host[i][j] == 0.0f ? 0.0f : 1.0f;
            masks->push_back({weights[i].name, be.upload(keep, value.shape())});
            const auto z = static_cast<double>(std::count(host[i].begin(), host[i].end(), 0.0f));
            ctx.addLayerStat(weights[i].name, "sparsity", z / double(host[i].size()));
            zeros += z;
            total += double(host[i].size());
        }
        be.synchronize();
        ctx.summary()["sparsity"] = zeros / total;
        // Later training keeps the zeros: gradients masked after backward, weights after each update (an
        // optimizer with momentum or weight decay would otherwise move them). A layer replaced since
        // (another shape under the same name) is no longer this mask's business.
        auto apply = [masks](Model& model, bool gradients) {
            for (const auto& np : model.namedParameters())
                for (const auto& m : *masks)
                    if (m.name == np.name && m.keep.shape() == np.param->value.shape()) {
                        Tensor& t = gradients ? np.param->grad : np.param->value;
                        if (t.defined()) model.backend()->mul(t, m.keep, t);
                    }
        };
        ctx.addTrainHook({"prune.magnitude", [apply](Model& m) { apply(m, true); },
                          [apply](Model& m) { apply(m, false); }});
        ctx.info("prune.magnitude: " + std::to_string(static_cast<long long>(zeros)) + " of " +
                 std::to_string(static_cast<long long>(total)) + " weights are zero (" +
                 (m_params.scope == PruneScope::Global ? "global" : "per layer") + " threshold)");
    }

private:
    MagnitudeParams m_params;
};

} // namespace
} // namespace lathe

LATHE_STRATEGY_FAMILY(prune) {
    using namespace lathe;
    SchemaBuilder<MagnitudeParams> b("prune.magnitude", "prune",
                                     "set the weights of smallest magnitude to zero (unstructured)");
    b.number("sparsity", &MagnitudeParams::sparsity, 0.5,
             {.min = 0, .max = 1, .maxExclusive = true,
              .help = "fraction of the Linear and Conv2d weights set to zero"});
    b.choice("scope", &MagnitudeParams::scope, {{"layer", PruneScope::Layer}, {"global", PruneScope::Global}},
             PruneScope::Global, "one threshold over all layers (global) or the same fraction in each layer (layer)");
    registry.add(b, [](const MagnitudeParams& p) { return std::make_unique<MagnitudePrune>(p); });
}

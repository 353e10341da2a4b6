// `prune.sensitivity`: how much accuracy each layer loses when it alone is magnitude-pruned. For every
// prunable weight and every ratio of the sweep, that weight's smallest entries are zeroed, the model is
// evaluated on the run's evaluation split, and the weight is restored from its host copy, so the model
// leaves the step bit for bit as it came. The per-layer figures say where a later pruning can go deep.
#include "engine/strategies/prune/pruning.h"

#include <algorithm>
#include <cmath>
#include <memory>

namespace lathe::prune {
namespace {

struct SensitivityParams {
    std::vector<std::int64_t> ratios{30, 50, 70, 90};
    int evalBatch = 256;
};

// Puts a weight's saved values back however the sweep over it ends (a cancel included).
class RestoreOnExit {
public:
    RestoreOnExit(Backend& be, Tensor& value, const std::vector<float>& saved) : m_be(be), m_value(value), m_saved(saved) {}
    ~RestoreOnExit() { m_be.copyFromHost(m_value, m_saved.data()); }
    RestoreOnExit(const RestoreOnExit&) = delete;
    RestoreOnExit& operator=(const RestoreOnExit&) = delete;

private:
    Backend& m_be;
    Tensor& m_value;
    const std::vector<float>& m_saved;
};

class SensitivitySweep final : public Strategy {
public:
    explicit SensitivitySweep(SensitivityParams p) : m_params(std::move(p)) {}

    void apply(StepContext& ctx) override {
        if (m_params.ratios.empty()) throw ConfigError("prune.sensitivity: no ratios to sweep");
        Backend& be = ctx.backend();
        Model& model = ctx.model();
        const auto weights = prunableWeights(model);
        if (weights.empty()) throw ConfigError("prune.sensitivity: the model has no Linear or Conv2d weights to prune");
        auto accuracy = [&] { return evaluate(model, be, ctx.evalData(), m_params.evalBatch, ctx.cancel).accuracy; };
        const double baseline = accuracy();
        ctx.summary()["accuracy"] = baseline;

        double worst = -1;
        std::string worstLayer;
        const double evaluations = double(weights.size() * m_params.ratios.size());
        for (std::size_t l = 0; l < weights.size(); ++l) {
            Tensor& value = weights[l].param->value;
            const std::vector<float> saved = be.downloadF32(value);
            const RestoreOnExit restore(be, value, saved);
            double dropSum = 0;
            for (std::size_t r = 0; r < m_params.ratios.size(); ++r) {
                const std::int64_t ratio = m_params.ratios[r];
                std::vector<std::vector<float>> pruned{saved};
                zeroSmallestFraction(pruned, double(ratio) / 100.0, PruneScope::Layer);
                be.copyFromHost(value, pruned[0].data());
                const double drop = baseline - accuracy();
                ctx.addLayerStat(weights[l].name, "accuracy_drop@" + std::to_string(ratio), drop);
                dropSum += drop;
                if (ctx.progress)
                    ctx.progress(double(l * m_params.ratios.size() + r + 1) / evaluations,
                                 "prune.sensitivity: " + weights[l].name);
            }
            const double sensitivity = dropSum / double(m_params.ratios.size());
            ctx.addLayerStat(weights[l].name, "sensitivity", sensitivity);
            ctx.info("prune.sensitivity: " + weights[l].name + " loses " + std::to_string(sensitivity) +
                     " accuracy on average over the ratios");
            if (sensitivity > worst) {
                worst = sensitivity;
                worstLayer = weights[l].name;
            }
        }
        be.synchronize();
        ctx.summary()["most_sensitive_layer_drop"] = worst;
        ctx.notes()["most_sensitive_layer"] = worstLayer;
    }

private:
    SensitivityParams m_params;
};

} // namespace

void registerSensitivitySweep(StrategyRegistry& registry) {
    SchemaBuilder<SensitivityParams> b("prune.sensitivity", "prune",
                                       "per-layer sensitivity: prune each layer alone at each ratio, evaluate, restore");
    b.integers("ratios", &SensitivityParams::ratios, {30, 50, 70, 90},
               {.min = 1, .max = 99, .unit = "%", .help = "sparsities to try on each layer alone, in percent"});
    b.integer("eval_batch", &SensitivityParams::evalBatch, 256,
              {.min = 1, .max = 65536, .unit = "samples", .help = "batch size of the evaluations"});
    registry.add(b, [](const SensitivityParams& p) { return std::make_unique<SensitivitySweep>(p); });
}

} // namespace lathe::prune

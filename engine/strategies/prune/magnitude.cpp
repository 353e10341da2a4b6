// The `prune` family. `prune.magnitude`: unstructured magnitude pruning — the weights of smallest absolute
// value of every Linear and Conv2d weight are set to exactly zero, per layer or over the whole model.
// The zeros are kept: a mask hook holds them at exactly zero through every later training phase of the run
// (finetune). With `execution` auto, each pruned Linear then runs through its CSR copy where that was timed
// faster (sparse_paths.h). The family's other strategies live beside it (nm.cpp, gradual.cpp, sensitivity.cpp,
// structured.cpp) and share pruning.h; this source registers them all.
#include "engine/strategies/prune/pruning.h"
#include "engine/strategies/prune/sparse_paths.h"

#include <memory>

namespace lathe::prune {
namespace {

struct MagnitudeParams {
    double sparsity = 0.5;
    PruneScope scope = PruneScope::Global;
    ExecutionParams execution;
};

class MagnitudePrune final : public Strategy {
public:
    explicit MagnitudePrune(MagnitudeParams p) : m_params(p) {}

    void apply(StepContext& ctx) override {
        Backend& be = ctx.backend();
        const auto weights = prunableWeights(ctx.model());
        if (weights.empty()) throw ConfigError("prune.magnitude: the model has no Linear or Conv2d weights to prune");
        auto host = downloadWeights(be, weights);
        zeroSmallestFraction(host, m_params.sparsity, m_params.scope);
        auto masks = std::make_shared<std::vector<Mask>>();
        const SparsityCount count = uploadPruned(be, weights, host, *masks);
        reportLayerSparsity(ctx, weights, host);
        keepMasks(ctx, "prune.magnitude", masks);
        reportSparsity(ctx, std::string("prune.magnitude (") +
                                (m_params.scope == PruneScope::Global ? "global" : "per layer") + " threshold)",
                       count);
        chooseSparsePaths(ctx, m_params.execution, "prune.magnitude");
    }

private:
    MagnitudeParams m_params;
};

} // namespace
} // namespace lathe::prune

LATHE_STRATEGY_FAMILY(prune) {
    using namespace lathe;
    using namespace lathe::prune;
    SchemaBuilder<MagnitudeParams> b("prune.magnitude", "prune",
                                     "set the weights of smallest magnitude to zero (unstructured)");
    b.number("sparsity", &MagnitudeParams::sparsity, 0.5,
             {.min = 0, .max = 1, .maxExclusive = true,
              .help = "fraction of the Linear and Conv2d weights set to zero"});
    scopeField(b, &MagnitudeParams::scope);
    executionFields(b, &MagnitudeParams::execution);
    registry.add(b, [](const MagnitudeParams& p) { return std::make_unique<MagnitudePrune>(p); });
    registerNmPrune(registry);
    registerGradualPrune(registry);
    registerSensitivitySweep(registry);
    registerStructuredPrune(registry);
    registerHeadPrune(registry);
}

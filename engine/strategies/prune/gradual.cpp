// `prune.gradual`: gradual magnitude pruning (Zhu and Gupta, "To prune, or not to prune", 2017) inside a
// fine-tuning phase it runs itself: from step t0 the target sparsity rises on the cubic schedule
//   s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3,   t0 <= t <= t0 + n dt,
// and every `frequency` steps the weights are re-pruned by magnitude to s_t; in between, masks hold the
// pruned weights at zero. Afterwards a mask hook keeps the zeros through later training phases.
#include "engine/strategies/prune/pruning.h"
#include "engine/strategies/prune/sparse_paths.h"
#include "engine/strategies/train/training.h"

#include "engine/core/clock.h"
#include "engine/core/rng.h"

#include <algorithm>
#include <cmath>
#include <memory>

namespace lathe::prune {
namespace {

struct GradualParams {
    TrainParams train;
    double initialSparsity = 0;
    double finalSparsity = 0.9;
    std::int64_t beginStep = 0;
    double endFraction = 0.75;
    std::int64_t frequency = 10;
    PruneScope scope = PruneScope::Global;
    ExecutionParams execution;
};

std::string scheduleProblem(const GradualParams& p) {
    if (p.initialSparsity > p.finalSparsity)
        return "initial_sparsity " + std::to_string(p.initialSparsity) + " is above final_sparsity " +
               std::to_string(p.finalSparsity) + ": the schedule only prunes more";
    return {};
}

// The phase's steps t = 1..T: pruning starts at t0 (0: before the first step) and ends at tEnd, where
// s_t reaches s_f exactly.
struct CubicSchedule {
    double initial = 0, final = 0;
    std::int64_t begin = 0, end = 1, frequency = 1;

    double sparsityAt(std::int64_t t) const {
        if (t >= end) return final;
        const double remaining = 1.0 - double(t - begin) / double(end - begin);
        return final + (initial - final) * remaining * remaining * remaining;
    }
    bool prunesAt(std::int64_t t) const {
        return t >= begin && t <= end && ((t - begin) % frequency == 0 || t == end);
    }
};

class GradualPrune final : public Strategy {
public:
    explicit GradualPrune(GradualParams p) : m_params(std::move(p)) {}

    void apply(StepContext& ctx) override {
        if (const std::string problem = scheduleProblem(m_params); !problem.empty())
            throw ConfigError("prune.gradual: " + problem);
        TrainParams train = m_params.train;
        train.seed = mix64(ctx.seed ^ (0x9a0dull + static_cast<std::uint64_t>(ctx.stepIndex)));
        const std::int64_t steps = trainingPhaseSteps(ctx, train);
        CubicSchedule schedule{m_params.initialSparsity, m_params.finalSparsity, m_params.beginStep,
                               std::clamp<std::int64_t>(std::llround(m_params.endFraction * double(steps)), 1, steps),
                               m_params.frequency};
        if (schedule.begin >= schedule.end)
            throw ConfigError("prune.gradual: begin_step " + std::to_string(schedule.begin) +
                              " is not before step " + std::to_string(schedule.end) + " (end_fraction of the phase's " +
                              std::to_string(steps) + " steps), where final_sparsity is reached");

        Backend& be = ctx.backend();
        const auto weights = prunableWeights(ctx.model());
        if (weights.empty()) throw ConfigError("prune.gradual: the model has no Linear or Conv2d weights to prune");
        auto masks = std::make_shared<std::vector<Mask>>();
        const std::int64_t stepOffset = ctx.trainStep ? *ctx.trainStep : 0;
        std::int64_t t = 0; // the phase's optimizer steps so far
        SparsityCount count;
        // A pruning step reads every prunable weight back to the host (a device synchronisation) and uploads
        // the new weights and masks: once every `frequency` steps, never in the steps between.
        auto pruneTo = [&](double sparsity) {
            auto host = downloadWeights(be, weights);
            zeroSmallestFraction(host, sparsity, m_params.scope);
            count = uploadPruned(be, weights, host, *masks);
            ctx.sink().push(makeSample(ctx.runId, "sparsity", stepOffset + t, steadyClockMs() - ctx.runStartMs,
                                       count.fraction()));
        };
        if (schedule.prunesAt(0)) pruneTo(schedule.sparsityAt(0));

        TrainingPhaseOptions options;
        // Between pruning steps only device multiplies: gradients masked after backward, weights after the
        // update (momentum and weight decay would otherwise move pruned weights away from zero).
        options.afterBackward = [masks](Model& m) { applyMasks(m, *masks, true); };
        options.afterOptimizerStep = [&](Model& m) {
            ++t;
            applyMasks(m, *masks, false);
            if (schedule.prunesAt(t)) pruneTo(schedule.sparsityAt(t));
        };
        const TrainResult r = runTrainingPhase(ctx, train, "prune.gradual", options);
        if (t < schedule.end) {
            ctx.warn("prune.gradual: the phase took " + std::to_string(r.steps) + " steps, fewer than the " +
                     std::to_string(schedule.end) + " the schedule expected: pruning to final_sparsity now");
            pruneTo(schedule.final);
        }

        reportLayerSparsity(ctx, weights, downloadWeights(be, weights));
        keepMasks(ctx, "prune.gradual", masks);
        reportSparsity(ctx, "prune.gradual (" + std::string(m_params.scope == PruneScope::Global ? "global" : "per layer") +
                                " threshold, final sparsity from step " + std::to_string(stepOffset + schedule.end) + ")",
                       count);
        chooseSparsePaths(ctx, m_params.execution, "prune.gradual");
    }

private:
    GradualParams m_params;
};

} // namespace

void registerGradualPrune(StrategyRegistry& registry) {
    SchemaBuilder<GradualParams> b("prune.gradual", "prune",
                                   "gradual magnitude pruning on a cubic schedule while fine-tuning (Zhu and Gupta)");
    b.include(trainingFields("prune.gradual", "", 2, 0.0005), &GradualParams::train);
    b.number("initial_sparsity", &GradualParams::initialSparsity, 0,
             {.min = 0, .max = 1, .maxExclusive = true, .help = "s_i: sparsity at begin_step"});
    b.number("final_sparsity", &GradualParams::finalSparsity, 0.9,
             {.min = 0, .max = 1, .maxExclusive = true, .help = "s_f: sparsity reached at end_fraction of the phase"});
    b.integer("begin_step", &GradualParams::beginStep, 0,
              {.min = 0, .max = 1e12, .unit = "steps", .help = "t0: the phase's step of the first pruning (0: before training)"});
    b.number("end_fraction", &GradualParams::endFraction, 0.75,
             {.min = 0, .max = 1, .minExclusive = true,
              .help = "fraction of the phase's steps by which final_sparsity is reached; the rest fine-tunes"});
    b.integer("frequency", &GradualParams::frequency, 10,
              {.min = 1, .max = 1e9, .unit = "steps", .help = "dt: prune every this many steps"});
    scopeField(b, &GradualParams::scope);
    executionFields(b, &GradualParams::execution);
    b.checkModel([](const GradualParams& p, ModelCheck& c) {
        if (const std::string problem = scheduleProblem(p); !problem.empty()) c.issue("initial_sparsity", problem);
    });
    registry.add(b, [](const GradualParams& p) { return std::make_unique<GradualPrune>(p); });
}

} // namespace lathe::prune

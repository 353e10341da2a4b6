// The built-in strategies: `train` (also the schema of an experiment's baseline.train), `finetune`
// (continue training the current model) and `measure` (a measurement point inside the chain).
#pragma once

#include "engine/nn/trainer.h"
#include "engine/strategies/strategy.h"

#include <memory>
#include <string>

namespace lathe {

class StrategyRegistry;
void registerBuiltinStrategies(StrategyRegistry& registry);

StrategySchema trainSchema();
StrategySchema finetuneSchema();
StrategySchema measureSchema();

std::unique_ptr<Strategy> makeTrainingStrategy(const std::string& name, const ParamValues& params);
std::unique_ptr<Strategy> makeMeasureStrategy(const ParamValues& params);

// Validated `train`/`finetune` parameters as the trainer's struct (seed set by the caller).
TrainParams trainParamsFrom(const ParamValues& params, std::uint64_t seed);

// Whether a training phase continues the run's optimizer state (ctx.training) or starts afresh.
enum class OptimizerStateMode { Fresh, Continue };

struct TrainingPhaseOptions {
    bool validate = true;  // "val_accuracy" per epoch on ctx.evalData()
    // Continue: the previous phase's optimizer state and, when batch size and samples match, its data
    // order (seed and step offset), so the phases together train exactly like one. Fresh: cleared.
    OptimizerStateMode optimizerState = OptimizerStateMode::Fresh;
    Loss* loss = nullptr;  // null: cross-entropy
    std::function<void(Model&)> afterBackward;      // TrainCallbacks hooks
    std::function<void(Model&)> afterOptimizerStep;
};

// Trains ctx.model on ctx.data.train, streaming "loss" once per logging interval, "train_loss" and
// "train_accuracy" per epoch, and "val_accuracy" per epoch on ctx.evalData() (skipped when
// validate is false). Adds train_seconds and train_loss to the summary. Leaves its optimizer state and
// data order in ctx.training (when set) for a later phase.
TrainResult runTrainingPhase(StepContext& ctx, const TrainParams& params, const std::string& what,
                             const TrainingPhaseOptions& options);
TrainResult runTrainingPhase(StepContext& ctx, const TrainParams& params, const std::string& what,
                             bool validate = true);

} // namespace lathe

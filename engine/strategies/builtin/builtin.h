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

// Trains ctx.model on ctx.data.train, streaming "loss" per optimizer step, "train_loss" and
// "train_accuracy" per epoch, and "val_accuracy" per epoch on ctx.evalData() (skipped when
// validate is false). Adds train_seconds and train_loss to the summary.
TrainResult runTrainingPhase(StepContext& ctx, const TrainParams& params, const std::string& what,
                             bool validate = true);

} // namespace lathe

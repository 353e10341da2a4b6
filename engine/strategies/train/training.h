// The `train` family: `train` (also the schema of an experiment's baseline.train) and `finetune`
// (continue training the current model), and the one training phase every strategy that trains uses.
#pragma once

#include "engine/nn/trainer.h"
#include "engine/strategies/strategy.h"

#include <string>

namespace lathe {

// The fields of `train` / baseline.train, bound to TrainParams (seed excluded: the run sets it).
const SchemaBuilder<TrainParams>& trainSchemaBuilder();

// Trains ctx.model() on ctx.data().train, streaming "loss" per optimizer step, "train_loss" and
// "train_accuracy" per epoch, and "val_accuracy" per epoch on ctx.evalData() (skipped when
// validate is false). Adds train_seconds and train_loss to the summary.
TrainResult runTrainingPhase(StepContext& ctx, const TrainParams& params, const std::string& what,
                             bool validate = true);

} // namespace lathe

// The `train` family: `train` (also the schema of an experiment's baseline.train) and `finetune`
// (continue training the current model), and the one training phase every strategy that trains uses.
#pragma once

#include "engine/nn/loss.h"
#include "engine/nn/trainer.h"
#include "engine/strategies/strategy.h"

#include <functional>
#include <string>

namespace lathe {

// The fields of `train` / baseline.train, bound to TrainParams (seed excluded: the run sets it).
const SchemaBuilder<TrainParams>& trainSchemaBuilder();
// The same fields under another strategy's name, with its own default epochs and learning rate (for
// finetune, and for strategies that train a model of their own, e.g. a distillation's student).
SchemaBuilder<TrainParams> trainingFields(const char* name, const char* summary, std::int64_t epochs, double lr);

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
    // Appended to every series name the phase streams ("loss" -> "loss_scratch"), for a phase trained
    // beside the run's own (a distillation's scratch student).
    std::string seriesSuffix;
    // Once per logging interval, after "loss" is pushed: the series step and time of that sample, e.g.
    // for a loss's own parts ("loss_soft", "loss_hard").
    std::function<void(std::int64_t seriesStep, double tMs)> onInterval;
};

// The optimizer steps a phase with these params takes on ctx.data().train (epochs x batches per epoch,
// capped by max_steps; at least 1), e.g. for a schedule over the phase (prune.gradual).
std::int64_t trainingPhaseSteps(const StepContext& ctx, const TrainParams& params);

// Trains ctx.model() on ctx.data().train, streaming "loss" once per logging interval, "train_loss" and
// "train_accuracy" per epoch, and "val_accuracy" per epoch on ctx.evalData() (skipped when
// validate is false). Adds train_seconds and train_loss to the summary. Leaves its optimizer state and
// data order in ctx.training (when set) for a later phase.
TrainResult runTrainingPhase(StepContext& ctx, const TrainParams& params, const std::string& what,
                             const TrainingPhaseOptions& options = {});

} // namespace lathe

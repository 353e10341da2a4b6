// Training and evaluation loops over a Dataset on any Backend. Deterministic given the seed on the CPU.
// One loop for every strategy: the loss is passed in, hooks run after backward and after the optimizer
// step, and the optimizer's state is owned by the caller so a later phase can continue it.
#pragma once

#include "engine/data/dataset.h"
#include "engine/nn/loss.h"
#include "engine/nn/model.h"
#include "engine/nn/optim.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace lathe {

struct TrainParams {
    int epochs = 10;
    int batchSize = 128;
    std::string optimizer = "adam"; // "adam", "adamw", "sgd"
    float lr = 1e-3f;
    float momentum = 0.9f;          // sgd
    float weightDecay = 0.0f;
    std::uint64_t seed = 42;
    std::int64_t limit = 0;          // train on the first `limit` samples (0: all)
    std::int64_t maxSteps = 0;       // stop after this many optimizer steps of this phase (0: no limit)
    // Optimizer steps per "loss" report. The losses stay on the device in between: reading them back
    // synchronises the GPU, so it happens once per interval (and at each epoch's end), not per step.
    int logInterval = 10;
    // Data-order offset: the phase continues the batch schedule of (seed, batchSize, limit) after its
    // first `startStep` batches, and numbers its steps (dropout masks, reports) from startStep + 1. A phase
    // with startStep = K and the optimizer state of a K-step phase with the same seed continues that phase
    // bit for bit. `epochs` counts the epochs this phase touches, the first one possibly partial.
    std::int64_t startStep = 0;
};

// One logging interval (TrainParams::logInterval steps, or fewer at an epoch's end).
struct StepReport {
    int epoch = 0;
    std::int64_t step = 0;   // global optimizer step (from 1) of the interval's last step
    double loss = 0;         // mean per-sample loss over the interval
    double tMs = 0;          // since training started
    std::int64_t steps = 0;  // optimizer steps in the interval
};

struct EpochReport {
    int epoch = 0;           // from 1
    std::int64_t steps = 0;
    double trainLoss = 0;    // mean over the epoch
    double trainAccuracy = 0;
    double seconds = 0;
};

struct TrainCallbacks {
    std::function<void(const StepReport&)> onStep; // once per logging interval
    std::function<void(const EpochReport&)> onEpoch;
    const std::atomic<bool>* cancel = nullptr; // checked between batches; throws CancelledError
    // Hooks, called every step: after backward (gradients complete, e.g. to mask them) and after the
    // optimizer step (e.g. to re-apply pruning masks or clamp weights). They must not read results back
    // to the host every step, and must not change the model's structure (edit between phases instead).
    std::function<void(Model&)> afterBackward;
    std::function<void(Model&)> afterOptimizerStep;
};

struct TrainResult {
    int epochs = 0;
    std::int64_t steps = 0;       // optimizer steps of this phase
    std::int64_t endStep = 0;     // startStep + steps: the startStep of a phase that continues this one
    double finalTrainLoss = 0;
    double seconds = 0;
};

struct EvalResult {
    double accuracy = 0;          // top-1, 0..1
    double loss = 0;              // mean cross-entropy
    std::int64_t count = 0;
    int numClasses = 0;
    std::vector<std::int64_t> confusion;   // numClasses x numClasses, row = true, column = predicted
    std::vector<double> perClassAccuracy;  // recall per class
};

// What training phases of one run hand on to the next: the optimizer state and the data order of the
// last phase (so a phase can continue it exactly; see TrainParams::startStep).
struct TrainingState {
    OptimizerState optimizer;
    bool hasOrder = false;        // a phase has run since the state was made or cleared
    std::uint64_t seed = 0;
    int batchSize = 0;
    std::int64_t samples = 0;     // training samples the schedule covers
    std::int64_t nextStep = 0;    // the startStep that continues the last phase
};

// Cross-entropy loss and an optimizer state of its own (fresh).
TrainResult train(Model& model, Backend& be, const Dataset& data, const TrainParams& params,
                  const TrainCallbacks& callbacks = {});
// With a loss of the caller's and the caller's optimizer state, continued and updated in place (entries of
// parameters no longer in the model are dropped first).
TrainResult train(Model& model, Backend& be, const Dataset& data, const TrainParams& params,
                  const TrainCallbacks& callbacks, Loss& loss, OptimizerState& state);
EvalResult evaluate(Model& model, Backend& be, const Dataset& data, int batchSize = 256,
                    const std::atomic<bool>* cancel = nullptr);

} // namespace lathe

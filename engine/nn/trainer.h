// Training and evaluation loops over a Dataset on any Backend. Deterministic given the seed on the CPU.
#pragma once

#include "engine/data/dataset.h"
#include "engine/nn/model.h"

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
    std::int64_t maxSteps = 0;       // stop after this many optimizer steps (0: no limit)
};

struct StepReport {
    int epoch = 0;
    std::int64_t step = 0;   // global optimizer step, from 1
    double loss = 0;         // mean loss of this batch
    double tMs = 0;          // since training started
};

struct EpochReport {
    int epoch = 0;           // from 1
    std::int64_t steps = 0;
    double trainLoss = 0;    // mean over the epoch
    double trainAccuracy = 0;
    double seconds = 0;
};

struct TrainCallbacks {
    std::function<void(const StepReport&)> onStep;
    std::function<void(const EpochReport&)> onEpoch;
    const std::atomic<bool>* cancel = nullptr; // checked between batches; throws CancelledError
};

struct TrainResult {
    int epochs = 0;
    std::int64_t steps = 0;
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

TrainResult train(Model& model, Backend& be, const Dataset& data, const TrainParams& params,
                  const TrainCallbacks& callbacks = {});
EvalResult evaluate(Model& model, Backend& be, const Dataset& data, int batchSize = 256,
                    const std::atomic<bool>* cancel = nullptr);

} // namespace lathe

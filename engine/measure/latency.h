// The latency harness: times each inference forward with the backend's DeviceTimer (device events
// on a GPU, a monotonic clock on the CPU) after a warm-up, cycling over several distinct input
// batches so that caches do not flatter the result. Every sample is kept. The model is in an inference scope
// meanwhile (Model::InferenceScope): its weights laid out once for the backend, as a deployed model's are.
#pragma once

#include "engine/backends/backend.h"
#include "engine/data/dataset.h"
#include "engine/nn/model.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace lathe {

// Milliseconds per forward, one per repeat, in the order measured. Input batch r % batches.size()
// is used for repeat r (warm-up iterations cycle the same way). Throws CancelledError when cancel
// is set (checked between forwards). startedMs (optional) receives the host monotonic time (ms)
// at which each timed forward was issued, for plotting latency over time.
std::vector<double> measureLatency(Backend& be, Model& model, std::span<const Tensor> batches, int warmup,
                                   int repeats, const std::atomic<bool>* cancel = nullptr,
                                   const std::function<void(int done, int total)>& progress = {},
                                   std::vector<double>* startedMs = nullptr);

// `count` distinct input batches of `batchSize` samples each, taken from consecutive windows of the
// dataset (wrapping around when it is smaller than count * batchSize), preprocessed as the model
// declares and uploaded to `be`. Shapes: (batchSize, model.inputShape()...).
// The model inputs of the given samples on `be`, (n, model.inputShape()...): preprocessed pixels (F32), or the
// token ids of a sequence model (I32: makeTokenBatch).
Tensor uploadInputs(Backend& be, const Model& model, const Dataset& data, std::span<const std::int64_t> indices);
std::vector<Tensor> makeInputBatches(Backend& be, const Model& model, const Dataset& data, std::int64_t batchSize,
                                     int count);

} // namespace lathe

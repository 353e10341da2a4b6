// Latency harness: warm-up, then one timed forward per repeat over rotating input batches.
#include "engine/measure/latency.h"

#include "engine/core/clock.h"
#include "engine/core/errors.h"

#include <chrono>
#include <numeric>
#include <string>

namespace lathe {
std::vector<double> measureLatency(Backend& be, Model& model, std::span<const Tensor> batches, int warmup,
                                   int repeats, const std::atomic<bool>* cancel,
                                   const std::function<void(int done, int total)>& progress,
                                   std::vector<double>* startedMs) {
    if (batches.empty()) throw ConfigError("measureLatency: no input batches");
    if (repeats < 1) throw ConfigError("measureLatency: repeats must be at least 1, got " + std::to_string(repeats));
    const ForwardContext ctx{}; // inference: no caches, no dropout
    const Model::InferenceScope scope(model); // weights laid out for inference once, as a deployed model's are
    auto cancelled = [&] { return cancel && cancel->load(std::memory_order_relaxed); };

    for (int i = 0; i < warmup; ++i) {
        if (cancelled()) throw CancelledError();
        Tensor y = model.forward(batches[static_cast<std::size_t>(i) % batches.size()], ctx);
        (void)y;
    }
    be.synchronize(); // warm-up work must not leak into the first timed sample

    auto timer = be.createTimer();
    std::vector<double> samples;
    samples.reserve(static_cast<std::size_t>(repeats));
    if (startedMs) {
        startedMs->clear();
        startedMs->reserve(static_cast<std::size_t>(repeats));
    }
    for (int r = 0; r < repeats; ++r) {
        if (cancelled()) throw CancelledError();
        const Tensor& x = batches[static_cast<std::size_t>(r) % batches.size()];
        if (startedMs) startedMs->push_back(steadyClockMs());
        timer->start();
        Tensor y = model.forward(x, ctx);
        timer->stop();
        samples.push_back(timer->elapsedMs()); // waits for the stop event on a GPU
        if (progress && (r % 16 == 15 || r + 1 == repeats)) progress(r + 1, repeats);
    }
    return samples;
}

Tensor uploadInputs(Backend& be, const Model& model, const Dataset& data, std::span<const std::int64_t> indices) {
    Shape shape{static_cast<std::int64_t>(indices.size())};
    for (auto d : model.inputShape()) shape.push_back(d);
    const auto n = static_cast<std::size_t>(numel(shape));
    if (model.inputDType() == DType::I32) {
        std::vector<std::int32_t> ids(n);
        makeTokenBatch(data, indices, ids.data(), nullptr);
        return be.uploadI32(ids, shape);
    }
    std::vector<float> x(n);
    makeBatch(data, indices, model.preprocess(), x.data(), nullptr);
    return be.upload(x, shape);
}

std::vector<Tensor> makeInputBatches(Backend& be, const Model& model, const Dataset& data, std::int64_t batchSize,
                                     int count) {
    if (data.size() == 0) throw DataError(data.name + ": no samples to build input batches from");
    if (batchSize < 1) throw ConfigError("batch size must be at least 1, got " + std::to_string(batchSize));
    const std::int64_t sampleSize = data.sampleSize();
    if (sampleSize != numel(model.inputShape()))
        throw ConfigError("model " + model.name() + " expects inputs of shape " + shapeToString(model.inputShape()) +
                          ", dataset " + data.name + " has samples of shape " + shapeToString(data.sampleShape));
    std::vector<Tensor> out;
    std::vector<std::int64_t> indices(static_cast<std::size_t>(batchSize));
    for (int b = 0; b < count; ++b) {
        for (std::int64_t i = 0; i < batchSize; ++i)
            indices[static_cast<std::size_t>(i)] = (b * batchSize + i) % data.size();
        out.push_back(uploadInputs(be, model, data, indices));
    }
    return out;
}

} // namespace lathe

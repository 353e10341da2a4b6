// What executes a batch: the model on the backend over the request's samples of the evaluated split
// (real serving, with accuracy counted), and the latency model fitted from timings of that same
// execution, which the simulate mode's virtual clock uses instead.
#pragma once

#include "engine/backends/backend.h"
#include "engine/data/dataset.h"
#include "engine/nn/model.h"
#include "engine/strategies/serve/scheduler.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <vector>

namespace lathe::serve {

// Runs a batch's samples through the model: preprocess, upload, forward, argmax, read back. Request r
// carries samples (r.id * r.samples + j) mod the split's size. Several instances call run() at once: on the
// CPU backend all on it (its ops are re-entrant; each call owns its tensors); elsewhere, with `instances` > 1,
// each on a backend of its own from Backend::makeInstance (on CUDA a stream each, reading the model's weights).
// A backend that makes no instances serializes the calls (one stream), which the run's notes say.
class ModelExecutor {
public:
    ModelExecutor(Model& model, Backend& backend, const Dataset& data, int instances = 1);
    // Correct predictions per request of the batch, in its order, executed by model instance `instance`.
    std::vector<int> run(int instance, const std::vector<ServeRequest>& requests);
    bool concurrent() const { return m_concurrent; }
    // The backends of the instances (none on the CPU, or with one instance).
    std::size_t instanceBackends() const { return m_instances.size(); }

private:
    Backend& backendOf(int instance);
    std::vector<int> forward(int instance, const std::vector<std::int64_t>& indices, const std::vector<int>& owner,
                             std::size_t owners);
    Model& m_model;
    Model::InferenceScope m_scope; // weights laid out for inference once, read by every instance
    Backend& m_backend;
    const Dataset& m_data;
    bool m_concurrent;
    std::vector<std::shared_ptr<Backend>> m_instances;
    std::mutex m_serial;
};

// latency(batch samples), fitted from timed executions at a few batch sizes: the median is interpolated
// linearly between the measured sizes (extrapolated from the last two beyond them), and each draw takes a
// measured timing of the nearest size (its slowest 1% left out), scaled by the ratio of the medians, so the
// simulated tail has the measured spread.
class LatencyModel {
public:
    void add(std::int64_t samples, std::vector<double> timingsMs);
    double medianMs(double samples) const;
    double drawMs(int samples, std::mt19937_64& rng) const;
    const std::vector<std::int64_t>& sizes() const { return m_sizes; }
    bool empty() const { return m_sizes.empty(); }

private:
    std::vector<std::int64_t> m_sizes;            // ascending
    std::vector<std::vector<double>> m_timings;   // per size, sorted
    std::vector<double> m_medians;
};

// Times batches of 1, 2, 4, ... up to maxSamples (and maxSamples itself) one-sample requests served through
// the real-time driver (realtime.h) back to back: `warmup` untimed batch cycles, then `repeats` timed ones each.
LatencyModel fitLatencyModel(ModelExecutor& executor, std::int64_t maxSamples, int warmup, int repeats,
                             const std::atomic<bool>* cancel);

// The virtual clock's executor over a fitted model.
class ModelledExecutor final : public BatchExecutor {
public:
    ModelledExecutor(const LatencyModel& model, std::uint64_t seed) : m_model(model), m_rng(seed) {}
    double executeMs(const BatchDispatch& batch) override { return m_model.drawMs(batch.samples(), m_rng); }

private:
    const LatencyModel& m_model;
    std::mt19937_64 m_rng;
};

} // namespace lathe::serve

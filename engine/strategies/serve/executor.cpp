// Real batch execution and the fitted latency model (executor.h).
#include "engine/strategies/serve/executor.h"

#include "engine/strategies/serve/realtime.h"

#include "engine/core/clock.h"
#include "engine/core/errors.h"
#include "engine/measure/stats.h"
#include "engine/nn/layer.h"

#include <algorithm>
#include <cmath>
#include <memory>

namespace lathe::serve {

ModelExecutor::ModelExecutor(Model& model, Backend& backend, const Dataset& data, int instances)
    : m_model(model), m_scope(model), m_backend(backend), m_data(data), m_concurrent(backend.name() == "cpu") {
    if (data.size() == 0) throw DataError(data.name + ": no samples to serve");
    if (data.sampleSize() != numel(model.inputShape()))
        throw ConfigError("model " + model.name() + " expects inputs of shape " + shapeToString(model.inputShape()) +
                          ", dataset " + data.name + " has samples of shape " + shapeToString(data.sampleShape));
    if (m_concurrent || instances < 2) return;
    // One backend per instance (a CUDA stream each). A forward on the model's own backend first fills the layers'
    // caches, so that the instances' threads only read them; makeInstance then waits for that work.
    forward(-1, {0}, {0}, 1);
    for (int i = 0; i < instances; ++i) {
        std::shared_ptr<Backend> be = backend.makeInstance();
        if (!be) {
            m_instances.clear();
            return;
        }
        m_instances.push_back(std::move(be));
    }
    m_concurrent = true;
}

Backend& ModelExecutor::backendOf(int instance) {
    if (instance >= 0 && static_cast<std::size_t>(instance) < m_instances.size())
        return *m_instances[static_cast<std::size_t>(instance)];
    return m_backend;
}

std::vector<int> ModelExecutor::forward(int instance, const std::vector<std::int64_t>& indices,
                                        const std::vector<int>& owner, std::size_t owners) {
    Backend& be = backendOf(instance);
    const auto n = static_cast<std::int64_t>(indices.size());
    std::vector<float> x(static_cast<std::size_t>(n * m_data.sampleSize()));
    std::vector<std::int32_t> y(static_cast<std::size_t>(n));
    makeBatch(m_data, indices, m_model.preprocess(), x.data(), y.data());
    Shape shape{n};
    for (auto d : m_model.inputShape()) shape.push_back(d);

    std::unique_lock<std::mutex> lock(m_serial, std::defer_lock);
    if (!m_concurrent) lock.lock();
    const Tensor xb = be.upload(x, shape);                           // (N, C, H, W)
    const Tensor logits = m_model.forward(be, xb, ForwardContext{}); // (N, classes)
    Tensor pred = be.empty({n}, DType::I32);                         // (N)
    be.argmaxRows(logits, pred);
    const Tensor host = be.download(pred);
    if (lock.owns_lock()) lock.unlock();

    std::vector<int> correct(owners, 0);
    const auto* p = host.ptr<std::int32_t>();
    for (std::int64_t i = 0; i < n; ++i)
        if (p[i] == y[static_cast<std::size_t>(i)]) ++correct[static_cast<std::size_t>(owner[static_cast<std::size_t>(i)])];
    return correct;
}

std::vector<int> ModelExecutor::run(int instance, const std::vector<ServeRequest>& requests) {
    std::vector<std::int64_t> indices;
    std::vector<int> owner;
    for (std::size_t k = 0; k < requests.size(); ++k) {
        const ServeRequest& r = requests[k];
        for (int j = 0; j < r.samples; ++j) {
            indices.push_back((r.id * r.samples + j) % m_data.size());
            owner.push_back(static_cast<int>(k));
        }
    }
    return forward(instance, indices, owner, requests.size());
}

void LatencyModel::add(std::int64_t samples, std::vector<double> timingsMs) {
    if (timingsMs.empty()) throw ConfigError("latency model: no timings at batch " + std::to_string(samples));
    std::sort(timingsMs.begin(), timingsMs.end());
    const double median = sortedPercentile(timingsMs, 0.5);
    const auto at = std::lower_bound(m_sizes.begin(), m_sizes.end(), samples) - m_sizes.begin();
    m_sizes.insert(m_sizes.begin() + at, samples);
    m_timings.insert(m_timings.begin() + at, std::move(timingsMs));
    m_medians.insert(m_medians.begin() + at, median);
}

double LatencyModel::medianMs(double samples) const {
    if (m_sizes.empty()) throw ConfigError("latency model: nothing measured");
    if (m_sizes.size() == 1) return m_medians[0] * samples / static_cast<double>(m_sizes[0]);
    std::size_t hi = 1;
    while (hi + 1 < m_sizes.size() && static_cast<double>(m_sizes[hi]) < samples) ++hi;
    const std::size_t lo = hi - 1;
    const double x0 = static_cast<double>(m_sizes[lo]), x1 = static_cast<double>(m_sizes[hi]);
    const double v = m_medians[lo] + (m_medians[hi] - m_medians[lo]) * (samples - x0) / (x1 - x0);
    return std::max(v, 1e-6);
}

double LatencyModel::drawMs(int samples, std::mt19937_64& rng) const {
    std::size_t nearest = 0;
    for (std::size_t i = 1; i < m_sizes.size(); ++i)
        if (std::abs(static_cast<double>(m_sizes[i] - samples)) < std::abs(static_cast<double>(m_sizes[nearest] - samples)))
            nearest = i;
    const auto& t = m_timings[nearest];
    // The slowest 1% of the timings are left out: on a shared machine they are other processes' stalls,
    // which a few hundred timings would otherwise turn into a fixed share of every simulated batch.
    const std::size_t kept = std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(0.99 * static_cast<double>(t.size()))));
    std::uniform_int_distribution<std::size_t> pick(0, kept - 1);
    return t[pick(rng)] * medianMs(samples) / m_medians[nearest];
}

LatencyModel fitLatencyModel(ModelExecutor& executor, std::int64_t maxSamples, int warmup, int repeats,
                             const std::atomic<bool>* cancel) {
    LatencyModel model;
    std::vector<std::int64_t> sizes;
    for (std::int64_t b = 1; b < maxSamples; b *= 2) sizes.push_back(b);
    sizes.push_back(maxSamples);
    for (std::int64_t b : sizes) {
        // Timed through the real-time driver itself: warmup + repeats + 1 batches of b one-sample requests
        // offered at once and released by static batching back to back on one instance, so that each
        // timing is one whole batch cycle as serving sees it (hand-off to the worker, execution, the answer
        // back, the next dispatch): dispatch(i+1) - dispatch(i).
        Workload burst;
        const auto batches = static_cast<std::size_t>(warmup + repeats + 1);
        burst.arrivals.assign(batches * static_cast<std::size_t>(b), Arrival{0.0, 1, 0});
        const PolicySettings staticB{PolicyKind::Static, static_cast<int>(b), 0, {}};
        const SchedulerSettings one{1, burst.arrivals.size(), 1};
        const ServeLog log = runRealtime(
            burst, staticB, one, [&executor](int, const std::vector<ServeRequest>& r) { return executor.run(0, r); }, {},
            cancel);
        if (log.cancelled) throw CancelledError();
        std::vector<double> ms;
        for (std::size_t i = static_cast<std::size_t>(warmup); i + 1 < log.batches.size(); ++i)
            ms.push_back(log.batches[i + 1].dispatchMs - log.batches[i].dispatchMs);
        model.add(b, std::move(ms));
    }
    return model;
}

} // namespace lathe::serve

// Serving summaries (serve_stats.h).
#include "engine/strategies/serve/serve_stats.h"

#include "engine/measure/stats.h"

#include <algorithm>

namespace lathe::serve {

namespace {

struct Group {
    std::vector<double> latency, queue, compute;
    std::int64_t met = 0, offered = 0, dropped = 0;
    std::int64_t samples = 0, correct = 0;
};

void put(std::map<std::string, double>& out, const std::string& suffix, const Group& g, double windowS) {
    std::vector<double> sorted = g.latency;
    std::sort(sorted.begin(), sorted.end());
    if (!sorted.empty()) {
        out["serve_p50_ms" + suffix] = sortedPercentile(sorted, 0.50);
        out["serve_p95_ms" + suffix] = sortedPercentile(sorted, 0.95);
        out["serve_p99_ms" + suffix] = sortedPercentile(sorted, 0.99);
        out["serve_max_ms" + suffix] = sorted.back();
    }
    out["goodput_per_s" + suffix] = windowS > 0 ? static_cast<double>(g.met) / windowS : 0.0;
    out["slo_attainment" + suffix] = g.offered > 0 ? static_cast<double>(g.met) / static_cast<double>(g.offered) : 0.0;
}

} // namespace

std::map<std::string, double> summarizeServeLog(const ServeLog& log, std::int64_t warmupRequests,
                                                const SloSettings& slo, int classes, bool withAccuracy) {
    std::map<std::string, double> out;
    Group all;
    std::vector<Group> perClass(static_cast<std::size_t>(std::max(1, classes)));
    double firstArrival = kNever, lastArrival = 0, lastDone = 0;
    for (const RequestRecord& r : log.requests) {
        if (r.request.id == 0 && !r.dropped) out["serve_first_ms"] = r.latencyMs();
        if (r.request.id < warmupRequests) continue;
        firstArrival = std::min(firstArrival, r.request.arrivalMs);
        lastArrival = std::max(lastArrival, r.request.arrivalMs);
        const std::size_t c = static_cast<std::size_t>(std::clamp(r.request.priority, 0, int(perClass.size()) - 1));
        for (Group* g : {&all, &perClass[c]}) {
            ++g->offered;
            if (r.dropped) {
                ++g->dropped;
                continue;
            }
            g->latency.push_back(r.latencyMs());
            g->queue.push_back(r.queueMs());
            g->compute.push_back(r.completeMs - r.dispatchMs);
            g->met += r.latencyMs() <= slo.sloMsFor(r.request.priority) ? 1 : 0;
            g->samples += r.request.samples;
            g->correct += r.correct;
        }
        if (!r.dropped) lastDone = std::max(lastDone, r.completeMs);
    }
    // The measured window: from the first measured arrival to the last measured answer.
    const double windowS = firstArrival < kNever ? std::max(0.0, std::max(lastDone, lastArrival) - firstArrival) / 1000.0 : 0.0;
    put(out, "", all, windowS);
    if (classes > 1)
        for (std::size_t c = 0; c < perClass.size(); ++c)
            if (perClass[c].offered > 0) put(out, "@c" + std::to_string(c), perClass[c], windowS);

    auto sortedOf = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v;
    };
    const auto queue = sortedOf(all.queue), compute = sortedOf(all.compute);
    double mean = 0;
    for (double v : all.latency) mean += v;
    out["serve_mean_ms"] = all.latency.empty() ? 0.0 : mean / static_cast<double>(all.latency.size());
    out["serve_queue_p50_ms"] = sortedPercentile(queue, 0.50);
    out["serve_queue_p99_ms"] = sortedPercentile(queue, 0.99);
    out["serve_compute_p50_ms"] = sortedPercentile(compute, 0.50);
    out["serve_compute_p99_ms"] = sortedPercentile(compute, 0.99);
    const double served = static_cast<double>(all.latency.size());
    out["served"] = served;
    out["serve_throughput_per_s"] = windowS > 0 ? served / windowS : 0.0;
    const double arrivalSpanS = firstArrival < kNever ? (lastArrival - firstArrival) / 1000.0 : 0.0;
    out["offered_rate_per_s"] = arrivalSpanS > 0 && all.offered > 1 ? static_cast<double>(all.offered - 1) / arrivalSpanS : 0.0;
    std::int64_t dropped = 0;
    for (const RequestRecord& r : log.requests) dropped += r.dropped ? 1 : 0;
    out["dropped"] = static_cast<double>(dropped);
    double batchSum = 0;
    for (const BatchRecord& b : log.batches) batchSum += b.size;
    out["serve_batch_mean"] = log.batches.empty() ? 0.0 : batchSum / static_cast<double>(log.batches.size());
    if (withAccuracy && all.samples > 0)
        out["serve_accuracy"] = static_cast<double>(all.correct) / static_cast<double>(all.samples);
    return out;
}

std::map<int, std::int64_t> batchSizeHistogram(const ServeLog& log) {
    std::map<int, std::int64_t> h;
    for (const BatchRecord& b : log.batches) ++h[b.size];
    return h;
}

} // namespace lathe::serve

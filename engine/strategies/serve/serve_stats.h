// Summaries of a served stream: end-to-end, queue and compute percentiles of the measured requests (those
// after the warm-up), throughput, goodput and SLO attainment (overall and per priority class), drops, the
// first request's latency on its own, and the batch sizes used.
#pragma once

#include "engine/strategies/serve/scheduler.h"

#include <map>
#include <string>
#include <vector>

namespace lathe::serve {

struct SloSettings {
    double sloMs = 10;                  // every class's SLO unless classSloMs gives its own
    std::vector<double> classSloMs;     // per class, from class 0
    double sloMsFor(int priority) const {
        return priority >= 0 && static_cast<std::size_t>(priority) < classSloMs.size() ? classSloMs[priority] : sloMs;
    }
};

// The summary keys of one stream: serve_p50_ms, serve_p95_ms, serve_p99_ms, serve_max_ms, serve_mean_ms,
// serve_first_ms, serve_queue_p50_ms, serve_queue_p99_ms, serve_compute_p50_ms, serve_compute_p99_ms,
// serve_throughput_per_s, goodput_per_s, slo_attainment, dropped, served, offered_rate_per_s,
// serve_batch_mean, serve_accuracy (when withAccuracy); with several classes, the latency, goodput and
// attainment keys again per class as "<key>@c<class>". Requests whose id is below warmupRequests are
// served but not counted (serve_first_ms excepted). Drops count against attainment.
std::map<std::string, double> summarizeServeLog(const ServeLog& log, std::int64_t warmupRequests,
                                                const SloSettings& slo, int classes, bool withAccuracy);

// Batch size (requests) -> how many batches had it.
std::map<int, std::int64_t> batchSizeHistogram(const ServeLog& log);

} // namespace lathe::serve

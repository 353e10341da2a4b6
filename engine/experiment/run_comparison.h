// Comparing stored runs: the latency significance of one run against a baseline run, from the
// per-repeat samples of their final measurements (series latency_ms/b<batch>), for the CLI's compare,
// the window's comparison and reports.
#pragma once

#include "engine/measure/comparison.h"
#include "engine/store/run_store.h"

#include <cstdint>
#include <map>
#include <vector>

namespace lathe {

struct RunLatencyDifference {
    std::int64_t batch = 0;
    LatencyDifference difference; // the run (B) against the baseline (A), in ms
    bool noisy = false;           // either run's latency_noisy flag was set
};

// Batch size -> the per-repeat latencies (ms) of a run's final measurement, in the order they were timed
// (a measure step's series, "before/latency_ms/b4", are not the final measurement's and are left out).
std::map<std::int64_t, std::vector<double>> finalLatencySamples(const RunStore& store, std::int64_t runId);

// Every batch size both runs timed in their final measurement, ascending (none when either run stored
// fewer than 2 samples at a batch size). The bootstrap is seeded with `seed`.
std::vector<RunLatencyDifference> latencyDifferences(const RunStore& store, std::int64_t baselineRunId,
                                                     std::int64_t runId, std::uint64_t seed = 1);

} // namespace lathe

// Deciding between runs: whether a latency difference is more than timing noise (a bootstrap confidence
// interval of the difference of medians, and a Mann-Whitney U test, on the stored per-repeat samples),
// and which runs are on the trade-off front of several metrics (Pareto).
#pragma once

#include "engine/core/metric_keys.h"

#include <cstdint>
#include <span>
#include <vector>

namespace lathe {

struct LatencyDifference {
    std::int64_t countA = 0, countB = 0;
    double medianA = 0, medianB = 0;
    double delta = 0;             // medianB - medianA (the unit of the samples)
    double relative = 0;          // delta / medianA
    double ciLow = 0, ciHigh = 0; // percentile-bootstrap CI of delta at `confidence`
    double confidence = 0.95;
    double mannWhitneyU = 0;      // U of B against A: pairs (a, b) with b > a, ties counted 1/2
    double pValue = 1;            // two-sided, normal approximation with tie and continuity correction
    bool significant = false;     // the CI excludes zero
};

// B against A (e.g. a pruned model's latency samples against the dense one's). Each side needs at least
// two samples (ConfigError otherwise). The bootstrap resamples each side independently with replacement,
// `resamples` times, from a generator seeded with `seed`, so the same samples give the same interval.
// Repeats are treated as independent draws; drift during a measurement (a machine warming up) is not
// modelled, and the runs' `latency_noisy` flag says when the medians themselves are uncertain.
LatencyDifference compareLatency(std::span<const double> a, std::span<const double> b, std::uint64_t seed = 1,
                                 int resamples = 2000, double confidence = 0.95);

// The indices, ascending, of the points that no other point dominates: a point is dominated when another
// is at least as good in every objective and strictly better in one, "good" following each objective's
// direction (HigherIsBetter or LowerIsBetter; Neutral is a ConfigError). Equal points do not dominate each
// other, so duplicates on the front all stay. Points with a NaN in any objective, or with fewer values
// than objectives, are left out.
std::vector<std::size_t> paretoFront(const std::vector<std::vector<double>>& points,
                                     std::span<const MetricDirection> directions);

} // namespace lathe

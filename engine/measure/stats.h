// Summaries of repeated measurements: percentiles, mean, coefficient of variation and a
// bootstrap confidence interval of the median.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace lathe {

struct LatencySummary {
    std::int64_t count = 0;
    double p50 = 0, p95 = 0, p99 = 0, mean = 0, min = 0, max = 0, stddev = 0;
    double cv = 0;                    // stddev / mean
    double medianCiLow = 0, medianCiHigh = 0; // bootstrap 95% CI of the median
    bool noisy = false;               // cv above the threshold given to summarize()
};

// Linear interpolation between closest ranks (numpy's default), q in [0, 1].
double percentile(std::vector<double> values, double q);
LatencySummary summarize(std::span<const double> samplesMs, double noisyCv = 0.10, std::uint64_t seed = 1,
                         int bootstrapResamples = 2000);

} // namespace lathe

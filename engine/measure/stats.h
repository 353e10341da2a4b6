// Summaries of repeated measurements: percentiles, mean, coefficient of variation, a bootstrap
// confidence interval of the median, and whether that interval is too wide to trust the median.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace lathe {

struct LatencySummary {
    std::int64_t count = 0;
    double p50 = 0, p95 = 0, p99 = 0, mean = 0, min = 0, max = 0, stddev = 0;
    double cv = 0;                    // stddev / mean (stored; it does not decide noise)
    double medianCiLow = 0, medianCiHigh = 0; // bootstrap 95% CI of the median
    double medianCiRel = 0;           // (medianCiHigh - medianCiLow) / p50
    bool noisy = false;               // medianCiRel above the threshold given to summarize()
};

// Default of the noise threshold: the median's 95% CI wider than 5% of the median. The reported
// figures are medians, so noise is judged by how uncertain the median is, not by the CV, which
// scheduler jitter on a microsecond forward inflates while the median stays tight.
inline constexpr double kDefaultNoisyCi = 0.05;

// Linear interpolation between closest ranks (numpy's default), q in [0, 1].
double percentile(std::vector<double> values, double q);
// The same on values already sorted ascending (0 for none).
double sortedPercentile(std::span<const double> sorted, double q);
// The median of v, reordering v: the mean of the two middle order statistics for an even count (0 for none).
double medianInPlace(std::vector<double>& v);
// noisyCi: the largest relative width of the median's CI (medianCiRel) not flagged noisy. Without a
// bootstrap (one sample, or bootstrapResamples <= 0) the CI is the median itself and nothing is noisy.
LatencySummary summarize(std::span<const double> samplesMs, double noisyCi = kDefaultNoisyCi, std::uint64_t seed = 1,
                         int bootstrapResamples = 2000);

} // namespace lathe

// Percentiles (numpy's default linear interpolation), moments, and a percentile-bootstrap
// confidence interval of the median from a seeded generator, so a run's CI is reproducible.
#include "engine/measure/stats.h"

#include "engine/core/rng.h"

#include <algorithm>
#include <cmath>

namespace lathe {

double sortedPercentile(std::span<const double> sorted, double q) {
    if (sorted.empty()) return 0.0;
    q = std::clamp(q, 0.0, 1.0);
    const double pos = q * static_cast<double>(sorted.size() - 1);
    const auto lo = static_cast<std::size_t>(std::floor(pos));
    const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
    const double frac = pos - static_cast<double>(lo);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

double medianInPlace(std::vector<double>& v) {
    const std::size_t n = v.size();
    if (n == 0) return 0.0;
    const std::size_t mid = n / 2;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
    const double upper = v[mid];
    if (n % 2 == 1) return upper;
    const double lower = *std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid));
    return 0.5 * (lower + upper);
}

double percentile(std::vector<double> values, double q) {
    std::sort(values.begin(), values.end());
    return sortedPercentile(values, q);
}

LatencySummary summarize(std::span<const double> samplesMs, double noisyCi, std::uint64_t seed,
                         int bootstrapResamples) {
    LatencySummary s;
    s.count = static_cast<std::int64_t>(samplesMs.size());
    if (samplesMs.empty()) return s;

    std::vector<double> sorted(samplesMs.begin(), samplesMs.end());
    std::sort(sorted.begin(), sorted.end());
    s.min = sorted.front();
    s.max = sorted.back();
    s.p50 = sortedPercentile(sorted, 0.50);
    s.p95 = sortedPercentile(sorted, 0.95);
    s.p99 = sortedPercentile(sorted, 0.99);

    double sum = 0;
    for (double v : sorted) sum += v;
    s.mean = sum / static_cast<double>(sorted.size());
    // Sample standard deviation (numpy ddof=1): the samples estimate a distribution, they are not it.
    if (sorted.size() > 1) {
        double sq = 0;
        for (double v : sorted) sq += (v - s.mean) * (v - s.mean);
        s.stddev = std::sqrt(sq / static_cast<double>(sorted.size() - 1));
    }
    s.cv = s.mean > 0 ? s.stddev / s.mean : 0.0;

    // Percentile bootstrap of the median: resample with replacement, take the 2.5th and 97.5th
    // percentiles of the resampled medians.
    if (sorted.size() == 1 || bootstrapResamples <= 0) {
        s.medianCiLow = s.medianCiHigh = s.p50;
        return s;
    }
    Rng rng(seed);
    std::vector<double> medians(static_cast<std::size_t>(bootstrapResamples));
    std::vector<double> resample(sorted.size());
    for (auto& m : medians) {
        for (auto& r : resample) r = sorted[rng.below(sorted.size())];
        m = medianInPlace(resample);
    }
    std::sort(medians.begin(), medians.end());
    s.medianCiLow = sortedPercentile(medians, 0.025);
    s.medianCiHigh = sortedPercentile(medians, 0.975);
    s.medianCiRel = s.p50 > 0 ? (s.medianCiHigh - s.medianCiLow) / s.p50 : 0.0;
    s.noisy = s.medianCiRel > noisyCi;
    return s;
}

} // namespace lathe

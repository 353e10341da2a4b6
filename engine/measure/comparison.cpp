// Latency significance (percentile bootstrap of the difference of medians, Mann-Whitney U with the
// normal approximation) and Pareto fronts.
#include "engine/measure/comparison.h"

#include "engine/core/errors.h"
#include "engine/core/rng.h"
#include "engine/measure/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

namespace lathe {

namespace {

// U of b against a (pairs with b > a, ties 1/2) and its two-sided p-value: z from the normal
// approximation with the tie-corrected variance and a continuity correction of 1/2, as
// scipy.stats.mannwhitneyu(method="asymptotic") computes it.
void mannWhitney(std::span<const double> a, std::span<const double> b, double& u, double& p) {
    const double na = static_cast<double>(a.size()), nb = static_cast<double>(b.size()), n = na + nb;
    std::vector<std::pair<double, int>> all; // value, 0 = a / 1 = b
    all.reserve(a.size() + b.size());
    for (double v : a) all.emplace_back(v, 0);
    for (double v : b) all.emplace_back(v, 1);
    std::sort(all.begin(), all.end());
    // Mid-ranks over ties; the sum of b's ranks and the tie term sum(t^3 - t).
    double rankSumB = 0, ties = 0;
    for (std::size_t i = 0; i < all.size();) {
        std::size_t j = i;
        while (j < all.size() && all[j].first == all[i].first) ++j;
        const double t = static_cast<double>(j - i);
        const double midRank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
        for (std::size_t k = i; k < j; ++k)
            if (all[k].second == 1) rankSumB += midRank;
        ties += t * t * t - t;
        i = j;
    }
    u = rankSumB - nb * (nb + 1) / 2.0;
    const double mean = na * nb / 2.0;
    const double variance = na * nb / 12.0 * ((n + 1) - ties / (n * (n - 1)));
    if (variance <= 0) { // every value equal
        p = 1.0;
        return;
    }
    const double z = std::max(0.0, std::fabs(u - mean) - 0.5) / std::sqrt(variance);
    p = std::min(1.0, std::erfc(z / std::sqrt(2.0)));
}

} // namespace

LatencyDifference compareLatency(std::span<const double> a, std::span<const double> b, std::uint64_t seed,
                                 int resamples, double confidence) {
    if (a.size() < 2 || b.size() < 2)
        throw ConfigError("comparing latencies needs at least 2 samples of each run (got " + std::to_string(a.size()) +
                          " and " + std::to_string(b.size()) + ")");
    if (!(confidence > 0 && confidence < 1)) throw ConfigError("confidence must be in (0, 1)");
    LatencyDifference d;
    d.countA = static_cast<std::int64_t>(a.size());
    d.countB = static_cast<std::int64_t>(b.size());
    d.confidence = confidence;
    std::vector<double> va(a.begin(), a.end()), vb(b.begin(), b.end());
    d.medianA = medianInPlace(va);
    d.medianB = medianInPlace(vb);
    d.delta = d.medianB - d.medianA;
    d.relative = d.medianA != 0 ? d.delta / d.medianA : 0.0;
    mannWhitney(a, b, d.mannWhitneyU, d.pValue);

    resamples = std::max(resamples, 1);
    Rng rng(seed);
    std::vector<double> deltas(static_cast<std::size_t>(resamples));
    std::vector<double> ra(a.size()), rb(b.size());
    for (double& x : deltas) {
        for (double& r : ra) r = a[rng.below(a.size())];
        for (double& r : rb) r = b[rng.below(b.size())];
        x = medianInPlace(rb) - medianInPlace(ra);
    }
    std::sort(deltas.begin(), deltas.end());
    const double tail = (1.0 - confidence) / 2.0;
    d.ciLow = sortedPercentile(deltas, tail);
    d.ciHigh = sortedPercentile(deltas, 1.0 - tail);
    d.significant = d.ciLow > 0 || d.ciHigh < 0;
    return d;
}

std::vector<std::size_t> paretoFront(const std::vector<std::vector<double>>& points,
                                     std::span<const MetricDirection> directions) {
    for (MetricDirection dir : directions)
        if (dir == MetricDirection::Neutral)
            throw ConfigError("a Pareto front needs a direction (higher or lower is better) for every objective");
    const std::size_t dims = directions.size();
    // Every objective turned into "higher is better".
    std::vector<std::vector<double>> score;
    std::vector<std::size_t> index;
    for (std::size_t i = 0; i < points.size(); ++i) {
        if (points[i].size() < dims) continue;
        std::vector<double> s(dims);
        bool usable = true;
        for (std::size_t k = 0; k < dims; ++k) {
            const double v = points[i][k];
            usable = usable && !std::isnan(v);
            s[k] = directions[k] == MetricDirection::HigherIsBetter ? v : -v;
        }
        if (!usable) continue;
        score.push_back(std::move(s));
        index.push_back(i);
    }
    auto dominates = [&](const std::vector<double>& p, const std::vector<double>& q) {
        bool strictly = false;
        for (std::size_t k = 0; k < dims; ++k) {
            if (p[k] < q[k]) return false;
            strictly = strictly || p[k] > q[k];
        }
        return strictly;
    };
    std::vector<std::size_t> front;
    for (std::size_t i = 0; i < score.size(); ++i) {
        bool dominated = false;
        for (std::size_t j = 0; j < score.size() && !dominated; ++j) dominated = j != i && dominates(score[j], score[i]);
        if (!dominated) front.push_back(index[i]);
    }
    return front;
}

} // namespace lathe

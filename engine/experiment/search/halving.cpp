// Successive halving: evaluate every survivor at the rung's resource, keep the best ceil(n / eta).
#include "engine/experiment/search/halving.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace lathe::search {

std::vector<double> halvingRungs(const HalvingOptions& o) {
    std::vector<double> rungs;
    const double eta = std::max(o.eta, 1.5);
    for (double r = o.minResource; r < o.maxResource * (1 - 1e-9); r *= eta) rungs.push_back(r);
    rungs.push_back(o.maxResource);
    return rungs;
}

HalvingResult successiveHalving(int configs, const HalvingOptions& options,
                                const std::function<double(int, double)>& evaluate, const std::function<bool()>& stop) {
    HalvingResult out;
    std::vector<int> alive(static_cast<std::size_t>(std::max(configs, 0)));
    std::iota(alive.begin(), alive.end(), 0);
    const auto rungs = halvingRungs(options);
    for (std::size_t r = 0; r < rungs.size() && !alive.empty(); ++r) {
        std::vector<std::pair<double, int>> scored;
        for (int c : alive) {
            if (stop && stop()) return out;
            const double s = evaluate(c, rungs[r]);
            out.evaluations.push_back({c, static_cast<int>(r), rungs[r], s});
            out.resourceSpent += rungs[r];
            scored.push_back({std::isnan(s) ? INFINITY : s, c});
        }
        std::stable_sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        if (!scored.empty() && std::isfinite(scored[0].first)) {
            out.best = scored[0].second;
            out.bestScore = scored[0].first;
        }
        const std::size_t keep = r + 1 == rungs.size() ? 0
                                 : static_cast<std::size_t>(std::ceil(static_cast<double>(scored.size()) / options.eta));
        alive.clear();
        for (std::size_t k = 0; k < keep && k < scored.size(); ++k)
            if (std::isfinite(scored[k].first)) alive.push_back(scored[k].second);
    }
    return out;
}

std::vector<Bracket> hyperbandBrackets(const HalvingOptions& o) {
    const double eta = std::max(o.eta, 1.5);
    const int sMax = static_cast<int>(std::floor(std::log(o.maxResource / o.minResource) / std::log(eta) + 1e-9));
    std::vector<Bracket> out;
    for (int s = sMax; s >= 0; --s) {
        const int n = static_cast<int>(std::ceil((sMax + 1.0) / (s + 1.0) * std::pow(eta, s)));
        out.push_back({n, o.maxResource / std::pow(eta, s)});
    }
    return out;
}

} // namespace lathe::search

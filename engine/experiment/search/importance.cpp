// Per-field importance: one-way ANOVA of the trials' normalized ranks over each dimension's values
// (categories, or up to four quantile bins of a numeric field), reported as epsilon-squared, which
// removes the share a field with k bins explains by chance.
#include "engine/experiment/search/importance.h"

#include <algorithm>
#include <cstdio>
#include <map>

namespace lathe::search {

std::vector<FieldImportance> fieldImportance(const Space& space, const std::vector<Observation>& obs) {
    const auto order = rankObservations(obs);
    std::vector<double> rank(obs.size(), 0.0);
    const double denom = obs.size() > 1 ? static_cast<double>(obs.size() - 1) : 1.0;
    for (std::size_t k = 0; k < order.size(); ++k) rank[order[k]] = static_cast<double>(k) / denom;

    std::vector<FieldImportance> out;
    for (std::size_t i = 0; i < space.size(); ++i) {
        const Dimension& d = space.dims()[i];
        FieldImportance fi;
        fi.name = d.name;
        std::vector<std::pair<double, double>> vr; // (value, rank)
        for (std::size_t t = 0; t < obs.size(); ++t)
            if (i < obs[t].point.size() && isActive(obs[t].point[i])) vr.push_back({obs[t].point[i], rank[t]});
        fi.trials = static_cast<int>(vr.size());
        if (static_cast<int>(vr.size()) < kMinTrialsForImportance) {
            out.push_back(fi);
            continue;
        }
        // Bins: categories, or quantile bins of the sorted values (equal values never split).
        std::map<int, std::vector<std::size_t>> bins;
        std::map<int, std::string> labels;
        if (d.kind == DimKind::Categorical) {
            for (std::size_t k = 0; k < vr.size(); ++k) {
                const int c = static_cast<int>(vr[k].first);
                bins[c].push_back(k);
                labels[c] = d.choices[static_cast<std::size_t>(c)];
            }
        } else {
            std::vector<std::size_t> idx(vr.size());
            for (std::size_t k = 0; k < idx.size(); ++k) idx[k] = k;
            std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return vr[a].first < vr[b].first; });
            const std::size_t nb = vr.size() >= 12 ? 4 : 2;
            int bin = 0;
            for (std::size_t k = 0; k < idx.size(); ++k) {
                const int want = static_cast<int>(k * nb / idx.size());
                if (want > bin && vr[idx[k]].first != vr[idx[k - 1]].first) bin = want;
                bins[bin].push_back(idx[k]);
            }
            char buf[96];
            for (auto& [b, members] : bins) {
                double lo = 1e300, hi = -1e300;
                for (std::size_t k : members) {
                    lo = std::min(lo, vr[k].first);
                    hi = std::max(hi, vr[k].first);
                }
                if (lo == hi) std::snprintf(buf, sizeof(buf), "%.4g", lo);
                else std::snprintf(buf, sizeof(buf), "[%.4g, %.4g]", lo, hi);
                labels[b] = buf;
            }
        }
        double mean = 0;
        for (const auto& p : vr) mean += p.second;
        mean /= static_cast<double>(vr.size());
        double sst = 0, ssb = 0;
        for (const auto& p : vr) sst += (p.second - mean) * (p.second - mean);
        double bestMean = 2;
        for (const auto& [b, members] : bins) {
            double m = 0;
            for (std::size_t k : members) m += vr[k].second;
            m /= static_cast<double>(members.size());
            ssb += static_cast<double>(members.size()) * (m - mean) * (m - mean);
            if (m < bestMean) {
                bestMean = m;
                fi.bestValues = labels[b];
            }
        }
        const double k = static_cast<double>(bins.size());
        const double n = static_cast<double>(vr.size());
        if (sst > 0 && k > 1 && n > k) {
            const double msw = (sst - ssb) / (n - k);
            fi.importance = std::clamp((ssb - (k - 1) * msw) / (sst + msw), 0.0, 1.0);
        }
        fi.bestMeanRank = bestMean;
        out.push_back(fi);
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const FieldImportance& a, const FieldImportance& b) { return a.importance > b.importance; });
    return out;
}

} // namespace lathe::search

// Latency significance between stored runs: the final measurement's series latency_ms/b<batch>.
#include "engine/experiment/run_comparison.h"

#include <map>
#include <string>

namespace lathe {

std::map<std::int64_t, std::vector<double>> finalLatencySamples(const RunStore& store, std::int64_t runId) {
    static const std::string prefix = "latency_ms/b";
    std::map<std::int64_t, std::vector<double>> out;
    for (const std::string& series : store.seriesNames(runId)) {
        if (series.rfind(prefix, 0) != 0) continue;
        const std::string digits = series.substr(prefix.size());
        if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) continue;
        std::vector<double>& values = out[std::stoll(digits)];
        for (const MetricSample& s : store.samples(runId, series)) values.push_back(s.value);
    }
    return out;
}

namespace {
bool flaggedNoisy(const RunStore& store, std::int64_t runId) {
    const auto run = store.run(runId);
    if (!run) return false;
    auto it = run->summary.find("latency_noisy");
    return it != run->summary.end() && it->second != 0;
}
} // namespace

std::vector<RunLatencyDifference> latencyDifferences(const RunStore& store, std::int64_t baselineRunId,
                                                     std::int64_t runId, std::uint64_t seed) {
    const auto base = finalLatencySamples(store, baselineRunId);
    const auto other = finalLatencySamples(store, runId);
    const bool noisy = flaggedNoisy(store, baselineRunId) || flaggedNoisy(store, runId);
    std::vector<RunLatencyDifference> out;
    for (const auto& [batch, a] : base) {
        auto it = other.find(batch);
        if (it == other.end() || a.size() < 2 || it->second.size() < 2) continue;
        out.push_back({batch, compareLatency(a, it->second, seed + static_cast<std::uint64_t>(batch)), noisy});
    }
    return out;
}

} // namespace lathe

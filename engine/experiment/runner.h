// Runner: executes run plans on the engine thread: load data -> baseline (trained and cached, or
// loaded) -> steps in order -> measurement -> RunStore. Honours cancel between batches; a failed or
// cancelled run is stored with its status and error text.
#pragma once

#include "engine/experiment/spec.h"
#include "engine/store/run_store.h"
#include "engine/strategies/strategy.h"

#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace lathe {

struct RunOutcome {
    std::int64_t runId = 0;
    std::string status; // run_status::*
    std::string error;
    std::map<std::string, double> summary;
};

struct RunnerEvents {
    std::function<void(std::int64_t runId, const RunPlan& plan)> runStarted;
    std::function<void(const RunOutcome& outcome)> runFinished;
    // fraction of the whole experiment (all plans), the step in progress, seconds left (-1: unknown)
    std::function<void(double fraction, const std::string& step, double etaS)> progress;
    LogFn log;
    MetricSink* liveSink = nullptr; // e.g. the GUI's SampleRing; samples also go to the store
};

struct RunnerOptions {
    std::string deviceOverride;  // non-empty: replaces the spec's device
    std::string cacheDir;        // baseline cache; default $XDG_CACHE_HOME/lathe/baselines
    int onlyPlan = -1;           // >= 0: run only this plan of the sweep (a cluster task's share)
    std::string experimentUuid;  // non-empty: the experiment's stable id (a submitted sweep's tasks share one)
    // A search's trials: each run's parent (the search's own run) and the experiment record they share
    // (0: the Runner adds one per call).
    std::optional<std::int64_t> parentRunId;
    std::int64_t experimentId = 0;
};

class Runner {
public:
    Runner(RunStore& store, RunnerOptions options = {});
    // Runs every plan in order; stops early (remaining plans not started) when cancel is set.
    std::vector<RunOutcome> run(const ExperimentSpec& spec, const nlohmann::json& doc, const RunnerEvents& events,
                                const std::atomic<bool>& cancel);

private:
    RunStore& m_store;
    RunnerOptions m_options;
};

} // namespace lathe

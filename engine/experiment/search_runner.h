// SearchRunner: runs an experiment's `search` section. Every trial is a normal run (Runner) whose parent
// is the search's own run; a configuration the store already holds for the same baseline is looked up, not
// run again; a search started again with the same file resumes from its stored trials; stored runs of the
// same baseline inform the sampler before anything runs (warm start). The result: the best configuration
// (or the Pareto set) as a plain experiment file, and per-field importances saying why it won.
#pragma once

#include "engine/experiment/runner.h"
#include "engine/experiment/search/importance.h"
#include "engine/experiment/search/samplers.h"
#include "engine/experiment/search_spec.h"

#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace lathe {

struct SearchTrial {
    int index = -1;            // 0-based within the search; -1 for a warm-start observation
    std::int64_t runId = 0;
    std::string origin;        // "run" (run now), "stored" (identical configuration looked up), "resumed", "warm"
    std::string status;        // run_status of the run
    std::string error;
    search::Point point;
    nlohmann::json steps;      // the chain as the trial's experiment writes it
    std::map<std::string, double> summary;
    search::Observation observation;
};

struct SearchResult {
    std::int64_t searchRunId = 0;
    std::vector<std::string> dimensionNames;
    // Warm-start observations first (origin "warm": stored runs of the same baseline whose chain the space
    // holds; not counted in the budget), then this search's own trials (resumed, looked up, run), in order.
    std::vector<SearchTrial> trials;
    int warm = 0;                    // how many of trials are warm-start observations
    int best = -1;                   // index into trials: the best feasible (single objective)
    std::vector<int> pareto;         // indices into trials: the feasible Pareto set (several objectives)
    std::vector<int> closest;        // nothing feasible: the trials that came closest, least violation first
    std::vector<search::FieldImportance> importance;
    nlohmann::json winner;           // the experiment file of the best, or of the Pareto set (a sweep over steps)
    std::string explanation;         // the report lathe-cli prints
    std::string stopReason;          // "trials", "wall time", "cancelled"
    int ran = 0, lookedUp = 0, resumed = 0;
    int own() const { return static_cast<int>(trials.size()) - warm; } // trials counted in the budget
};

struct SearchEvents {
    RunnerEvents run; // every trial's run events (log, progress within the run, live samples)
    std::function<void(const SearchTrial& trial, const SearchResult& soFar)> trialFinished;
    std::function<void(const SearchResult& result)> searchStarted; // after resume and warm start
};

// The metric values of a trial as the sampler sees them: objectives minimised (a maximised metric
// negated), the constraints' violation (relative to each bound's size). A missing metric fails the trial.
search::Observation observe(const SearchSpec& spec, const std::map<std::string, double>& summary, std::string* missing);

class SearchRunner {
public:
    SearchRunner(RunStore& store, RunnerOptions options = {});
    // Throws ConfigError before anything is stored for an experiment without a valid search section.
    SearchResult run(const ExperimentSpec& spec, const nlohmann::json& doc, const SearchEvents& events,
                     const std::atomic<bool>& cancel);

private:
    RunStore& m_store;
    RunnerOptions m_options;
};

// A search as the store holds it (finished, or still running: its trials so far), with best, Pareto set,
// importances and winner computed as the search does. specOut receives its search section. Throws
// ConfigError when the run is not a search.
SearchResult inspectSearch(const RunStore& store, std::int64_t searchRunId, SearchSpec* specOut = nullptr);

// The explanation of a finished (or loaded) result, as lathe-cli prints it.
std::string explainSearch(const SearchSpec& spec, const SearchResult& result);

} // namespace lathe

// lathe-cli run / validate / strategies: experiment files from the command line. `run` validates the
// whole file first (exit 2), runs every plan of the sweep into the run store, draws a progress line
// on a terminal, prints one JSON object per run with --json, and turns Ctrl-C into a clean cancel.
#include "app/cli/cli.h"

#include "engine/backends/registry.h"
#include "engine/core/errors.h"
#include "engine/experiment/runner.h"
#include "engine/experiment/search_runner.h"
#include "engine/experiment/spec.h"
#include "engine/store/run_store.h"

#include <nlohmann/json.hpp>

#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

namespace lathe::cli {
namespace {

using json = nlohmann::json;

std::string formatDuration(double seconds) {
    if (seconds < 0 || !std::isfinite(seconds)) return "?";
    const long s = std::lround(seconds);
    char buf[32];
    if (s >= 3600) std::snprintf(buf, sizeof(buf), "%ldh%02ldm", s / 3600, (s / 60) % 60);
    else if (s >= 60) std::snprintf(buf, sizeof(buf), "%ldm%02lds", s / 60, s % 60);
    else std::snprintf(buf, sizeof(buf), "%lds", s);
    return buf;
}

// One line on stderr redrawn with \r, only when attached to a terminal; log lines clear it first.
class ProgressLine {
public:
    explicit ProgressLine(bool enabled) : m_enabled(enabled) {}
    void draw(int run, int total, double fraction, const std::string& what, double etaS) {
        if (!m_enabled) return;
        const auto now = std::chrono::steady_clock::now();
        if (m_drawn && now - m_last < std::chrono::milliseconds(100)) return; // ~10 redraws per second
        m_last = now;
        char head[96];
        std::snprintf(head, sizeof(head), "[run %d/%d] %3.0f%%  ETA %s  ", run, total, 100.0 * fraction,
                      formatDuration(etaS).c_str());
        std::string line = head + what;
        const std::size_t width = terminalWidth();
        if (line.size() >= width) line.resize(width - 1);
        std::fprintf(stderr, "\r\033[K%s", line.c_str());
        std::fflush(stderr);
        m_drawn = true;
    }
    void clear() {
        if (!m_enabled || !m_drawn) return;
        std::fprintf(stderr, "\r\033[K");
        std::fflush(stderr);
        m_drawn = false;
    }

private:
    static std::size_t terminalWidth() {
        struct winsize ws {};
        if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) return ws.ws_col;
        return 80;
    }
    bool m_enabled;
    bool m_drawn = false;
    std::chrono::steady_clock::time_point m_last{};
};

json readJsonFile(const std::string& path) {
    // loadExperimentFile has already checked the syntax; this keeps the document for storage.
    std::ifstream in(path, std::ios::binary);
    std::stringstream buf;
    buf << in.rdbuf();
    return json::parse(buf.str());
}

std::string summaryLine(const RunOutcome& o) {
    std::string line = "run " + std::to_string(o.runId) + " " + o.status;
    if (o.status != run_status::kDone) return line + (o.error.empty() ? "" : ": " + o.error);
    auto get = [&](const char* key) -> const double* {
        auto it = o.summary.find(key);
        return it == o.summary.end() ? nullptr : &it->second;
    };
    char buf[128];
    if (auto* a = get("accuracy")) {
        std::snprintf(buf, sizeof(buf), "  accuracy %.4f", *a);
        line += buf;
        if (auto* d = get("accuracy_delta")) {
            std::snprintf(buf, sizeof(buf), " (%+.4f)", *d);
            line += buf;
        }
    }
    if (auto* p = get("latency_p50_ms")) {
        std::snprintf(buf, sizeof(buf), "  p50 %.4g ms  p99 %.4g ms @b%.0f", *p, get("latency_p99_ms") ? *get("latency_p99_ms") : 0.0,
                      get("batch_size") ? *get("batch_size") : 0.0);
        line += buf;
    }
    if (auto* t = get("throughput_per_s")) {
        std::snprintf(buf, sizeof(buf), "  %.4g/s", *t);
        line += buf;
    }
    if (auto* b = get("model_bytes")) {
        std::snprintf(buf, sizeof(buf), "  %.3g MB", *b / 1e6);
        line += buf;
    }
    if (auto* n = get("latency_noisy"); n && *n > 0) line += "  (noisy)";
    return line;
}

std::string runUsage() {
    return "run FILE.json [--db PATH] [--device auto|cpu|cuda|cuda:N] [--cache-dir DIR] [--json] [--out FILE]\n"
           "          [--plan N] [--experiment-uuid UUID] [--task-shard] [--threads N]\n"
           "  --threads N            CPU backend threads (default: SLURM_CPUS_PER_TASK in a Slurm job that\n"
           "                         set it, else the CPUs this process may use)\n"
           "  --plan N               run only plan N (0-based) of the sweep\n"
           "  --experiment-uuid U    store the runs under the experiment with this stable id (created if new)\n"
           "  --task-shard           the database is a cluster task's own shard (needs --plan and\n"
           "                         --experiment-uuid): what an earlier attempt of the task left unfinished\n"
           "                         is deleted first, and a plan already done there is not run again";
}

// A task Slurm starts again (--requeue, preemption) finds its shard as the killed attempt left it:
// delete that attempt's unfinished run so no half run is merged; a plan already done is not rerun.
// Returns the id of a done run of the plan, or 0 when the plan is to run.
std::int64_t prepareTaskShard(RunStore& store, const std::string& experimentUuid, int plan) {
    const auto experimentId = store.experimentByUuid(experimentUuid);
    if (!experimentId) return 0;
    RunFilter filter;
    filter.withJson = true;
    filter.withSummary = false;
    std::vector<std::int64_t> unfinished;
    for (const RunRecord& r : store.listRuns(filter)) {
        if (r.experimentId != *experimentId) continue;
        const json env = json::parse(r.environmentJson, nullptr, false);
        const json* index = env.is_object() && env.contains("plan") ? &env["plan"]["index"] : nullptr;
        if (!index || !index->is_number_integer() || index->get<int>() != plan) continue;
        if (r.status == run_status::kDone) return r.id;
        if (r.status != run_status::kFailed) unfinished.push_back(r.id);
    }
    if (!unfinished.empty()) {
        store.deleteRuns(unfinished);
        std::cerr << "lathe-cli run: deleted " << unfinished.size()
                  << " unfinished run(s) an earlier attempt of this task left in " << store.path() << "\n";
    }
    return 0;
}


// Where a search's winner goes: --out, default <experiment name>.best.json in the current folder; when a
// sweep runs several searches, plan N's gets ".N" before the extension (best.json -> best.2.json).
std::string winnerPath(const std::string& out, const std::string& experimentName, const RunPlan& plan) {
    if (plan.total <= 1) return out.empty() ? experimentName + ".best.json" : out;
    const std::string n = std::to_string(plan.index);
    if (out.empty()) return experimentName + "." + n + ".best.json";
    const auto slash = out.find_last_of('/');
    const auto dot = out.find_last_of('.');
    if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return out + "." + n;
    return out.substr(0, dot) + "." + n + out.substr(dot);
}

// An experiment with a `search` section: one line per trial, then the winner, why it won, and the winner
// written as a plain experiment file to outFile (winnerPath).
int runSearch(const Args& args, const ExperimentSpec& spec, const json& doc, RunStore& store,
              const RunnerOptions& options, ProgressLine& progress, const std::string& outFile) {
    const bool jsonOut = args.flag("--json");
    const SearchSpec ss = parseSearchSection(spec.search, spec.sourceName);
    SearchEvents events;
    events.run.log = [&](LogLevel level, const std::string& msg) {
        progress.clear();
        const char* prefix = level == LogLevel::Error ? "error: " : level == LogLevel::Warning ? "warning: " : "";
        std::cerr << "lathe: " << prefix << msg << "\n";
    };
    int trialNo = 0;
    events.run.progress = [&](double fraction, const std::string& what, double etaS) {
        progress.draw(trialNo + 1, ss.trials, fraction, what, etaS);
    };
    events.trialFinished = [&](const SearchTrial& t, const SearchResult& soFar) {
        progress.clear();
        trialNo = soFar.own();
        if (jsonOut) {
            json j{{"trial", t.index + 1}, {"run_id", t.runId}, {"origin", t.origin}, {"status", t.status},
                   {"steps", t.steps}, {"feasible", search::feasible(t.observation)}, {"summary", t.summary}};
            if (!t.error.empty()) j["error"] = t.error;
            std::cout << j.dump() << "\n" << std::flush;
            return;
        }
        std::string line = "trial " + std::to_string(t.index + 1) + "/" + std::to_string(ss.trials) + "  run " +
                           std::to_string(t.runId) + (t.origin == "stored" ? " (looked up)" : "") + "  " + t.status;
        char buf[96];
        for (const auto& o : ss.objectives)
            if (t.summary.count(o.metric)) {
                std::snprintf(buf, sizeof(buf), "  %s %.4g", o.metric.c_str(), t.summary.at(o.metric));
                line += buf;
            }
        for (const auto& c : ss.constraints)
            if (t.summary.count(c.metric)) {
                std::snprintf(buf, sizeof(buf), "  %s %.4g", c.metric.c_str(), t.summary.at(c.metric));
                line += buf;
            }
        if (t.status == run_status::kDone) line += search::feasible(t.observation) ? "  feasible" : "  infeasible";
        else if (!t.error.empty()) line += ": " + t.error;
        std::cout << line << "\n" << std::flush;
    };
    SearchResult result;
    {
        InterruptGuard guard;
        SearchRunner runner(store, options);
        result = runner.run(spec, doc, events, cancelFlag());
    }
    progress.clear();
    if (!result.winner.is_null()) {
        std::ofstream out(outFile);
        if (!out) throw ConfigError("cannot write " + outFile);
        out << result.winner.dump(2) << "\n";
    }
    if (jsonOut) {
        json j{{"search_run_id", result.searchRunId}, {"trials", result.own()}, {"warm_start", result.warm}, {"stop", result.stopReason},
               {"best_run_id", result.best >= 0 ? json(result.trials[static_cast<std::size_t>(result.best)].runId) : json()},
               {"winner_file", result.winner.is_null() ? json() : json(outFile)}, {"importance", json::array()}};
        for (const auto& fi : result.importance)
            j["importance"].push_back({{"field", fi.name}, {"importance", fi.importance}, {"best_values", fi.bestValues}});
        std::cout << j.dump() << "\n";
    } else {
        std::cout << result.explanation;
        if (!result.winner.is_null()) std::cout << "winner written to " << outFile << "\n";
    }
    if (result.stopReason == "cancelled") {
        std::cerr << "lathe-cli run: search cancelled after " << result.own()
                  << " trial(s); run the same file again to resume\n";
        return kExitCancelled;
    }
    return result.best >= 0 ? kExitOk : kExitRunFailed;
}

int runRun(const std::vector<std::string>& argv) {
    Args args(argv, {"--db", "--device", "--cache-dir", "--plan", "--experiment-uuid", "--out", "--threads"},
              {"--json", "--task-shard"});
    if (args.positional().size() != 1) throw ConfigError("usage: lathe-cli " + runUsage());
    if (args.value("--threads")) {
        const long long threads = args.integer("--threads", 0);
        if (threads < 1) throw ConfigError("option --threads: expected an integer >= 1");
        setCpuThreads(static_cast<int>(threads));
    }
    const int onlyPlan = static_cast<int>(args.integer("--plan", -1));
    if (args.value("--plan") && onlyPlan < 0) throw ConfigError("option --plan: expected a plan index >= 0");
    const std::string experimentUuid = args.value("--experiment-uuid", "");
    const bool taskShard = args.flag("--task-shard");
    if (taskShard && (onlyPlan < 0 || experimentUuid.empty()))
        throw ConfigError("option --task-shard needs --plan N and --experiment-uuid UUID");
    const std::string file = args.positional()[0];
    const bool jsonOut = args.flag("--json");

    ExperimentSpec spec;
    std::vector<RunPlan> plans;
    json doc;
    try {
        spec = loadExperimentFile(file);
        doc = readJsonFile(file);
        plans = expandSweep(spec, doc);
    } catch (const ConfigError& e) {
        std::cerr << e.what() << "\n";
        return kExitBadInput;
    }
    if (onlyPlan >= static_cast<int>(plans.size()))
        throw ConfigError(file + ": plan " + std::to_string(onlyPlan) + " asked for, but the sweep has " +
                          std::to_string(plans.size()) + " plan(s)");

    RunnerOptions options;
    options.deviceOverride = args.value("--device", "");
    options.cacheDir = args.value("--cache-dir", "");
    options.onlyPlan = onlyPlan;
    options.experimentUuid = experimentUuid;
    const int planCount = onlyPlan >= 0 ? 1 : static_cast<int>(plans.size());
    // An unknown or unavailable device is bad input, found before anything is stored.
    try {
        backendFor(options.deviceOverride.empty() ? spec.device : options.deviceOverride);
    } catch (const BackendError& e) {
        throw ConfigError(e.what());
    }

    RunStore store(args.value("--db", RunStore::defaultPath()));
    if (const int n = store.recoverInterrupted(); n > 0)
        std::cerr << "lathe-cli: " << n << " run(s) left running by a previous process marked interrupted\n";
    // A search resumes from its own run in the shard and runs an interrupted trial again by itself; its
    // trials are not plans, so the shard is left as it is.
    if (taskShard && spec.search.is_null()) {
        if (const std::int64_t done = prepareTaskShard(store, experimentUuid, onlyPlan)) {
            std::cerr << "lathe-cli run: plan " << onlyPlan << " is already done in " << store.path() << " (run "
                      << done << "); not running it again\n";
            return kExitOk;
        }
    }

    ProgressLine progress(stdoutIsTerminal() && ::isatty(STDERR_FILENO) == 1);
    if (!spec.search.is_null()) {
        // A sweep beside the search: one search per plan (only plan N with --plan N), each resumable alone.
        // The plan is chosen here; its trials are single runs (no plan to pick among them).
        RunnerOptions trialOptions = options;
        trialOptions.onlyPlan = -1;
        int status = kExitOk;
        for (const RunPlan& plan : plans) {
            if (onlyPlan >= 0 && plan.index != onlyPlan) continue;
            if (plan.total > 1)
                std::cerr << "lathe-cli run: search " << plan.index + 1 << " of " << plan.total << ": " << plan.label << "\n";
            const int rc = runSearch(args, plan.spec, plan.resolved, store, trialOptions, progress,
                                     winnerPath(args.value("--out", ""), spec.name, plan));
            if (rc == kExitCancelled) return rc;
            if (rc != kExitOk) status = rc;
        }
        return status;
    }
    int currentRun = 0;
    RunnerEvents events;
    events.log = [&](LogLevel level, const std::string& msg) {
        progress.clear();
        const char* prefix = level == LogLevel::Error ? "error: " : level == LogLevel::Warning ? "warning: " : "";
        std::cerr << "lathe: " << prefix << msg << "\n";
    };
    events.runStarted = [&](std::int64_t, const RunPlan& plan) { currentRun = plan.index + 1; };
    events.progress = [&](double fraction, const std::string& what, double etaS) {
        progress.draw(currentRun, static_cast<int>(plans.size()), fraction, what, etaS);
    };
    // A Slurm task stopped with SIGTERM (scancel, time limit, preemption) did not choose to cancel:
    // its run is stored `interrupted`, as a crash would be.
    const bool inSlurmJob = std::getenv("SLURM_JOB_ID") != nullptr;
    events.runFinished = [&](const RunOutcome& o0) {
        RunOutcome o = o0;
        if (o.status == run_status::kCancelled && inSlurmJob && cancelSignal() == SIGTERM) {
            o.status = run_status::kInterrupted;
            o.error = "interrupted: Slurm stopped the task (SIGTERM: scancel, a time limit or preemption)";
            store.finishRun(o.runId, o.status, o.error);
        }
        progress.clear();
        if (jsonOut) {
            json j{{"run_id", o.runId}, {"status", o.status}, {"summary", o.summary}};
            if (!o.error.empty()) j["error"] = o.error;
            std::cout << j.dump() << "\n" << std::flush;
        } else {
            std::cout << summaryLine(o) << "\n" << std::flush;
        }
    };

    std::vector<RunOutcome> outcomes;
    {
        InterruptGuard guard;
        Runner runner(store, options);
        outcomes = runner.run(spec, doc, events, cancelFlag());
    }
    progress.clear();

    bool failed = false, cancelled = cancelFlag().load();
    for (const auto& o : outcomes) {
        failed = failed || o.status == run_status::kFailed;
        cancelled = cancelled || o.status == run_status::kCancelled;
    }
    if (cancelled) {
        std::cerr << "lathe-cli run: cancelled (" << outcomes.size() << " of " << planCount
                  << " run(s) stored)\n";
        return kExitCancelled;
    }
    return failed ? kExitRunFailed : kExitOk;
}

int runValidate(const std::vector<std::string>& argv) {
    Args args(argv, {}, {});
    if (args.positional().empty()) throw ConfigError("usage: lathe-cli validate FILE.json [FILE.json...]");
    int status = kExitOk;
    const bool several = args.positional().size() > 1;
    for (const auto& file : args.positional()) {
        try {
            const ExperimentSpec spec = loadExperimentFile(file);
            const auto plans = expandSweep(spec, readJsonFile(file));
            if (!spec.search.is_null())
                std::cout << (several ? file + ": " : "") << "ok: "
                          << (plans.size() > 1 ? std::to_string(plans.size()) + " searches" : std::string("a search"))
                          << " of up to " << parseSearchSection(spec.search, file).trials << " trial(s)"
                          << (plans.size() > 1 ? " each\n" : "\n");
            else
                std::cout << (several ? file + ": " : "") << "ok: " << plans.size() << " plan(s)\n";
        } catch (const ConfigError& e) {
            std::cerr << e.what() << "\n";
            status = kExitBadInput;
        }
    }
    return status;
}

int runStrategies(const std::vector<std::string>& argv) {
    Args args(argv, {}, {"--json"});
    const auto all = StrategyRegistry::instance().all();
    if (args.flag("--json")) {
        json out = json::array();
        for (const auto* s : all) out.push_back(schemaToJson(*s));
        std::cout << out.dump(2) << "\n";
        return kExitOk;
    }
    for (const auto* s : all) {
        std::printf("%s  (%s)  %s\n", s->name.c_str(), s->family.c_str(), s->summary.c_str());
        for (const auto& f : s->fields) {
            const json j = fieldToJson(f);
            const std::string def = !f.inherits.empty() ? "(" + f.inherits + ")"
                                    : f.defaultJson.empty() ? "(required)" : f.defaultJson;
            std::printf("    %-16s %-12s default %-10s %s\n", f.name.c_str(), j["type"].get<std::string>().c_str(),
                        def.c_str(), f.help.c_str());
        }
    }
    return kExitOk;
}

const Registrar kRun({"run", runUsage(), "run an experiment file (every plan of its sweep) into the run store",
                      runRun});
const Registrar kValidate({"validate", "validate FILE.json [FILE.json...]",
                           "check experiment files without running them (every problem listed)", runValidate});
const Registrar kStrategies({"strategies", "strategies [--json]", "list the registered strategies and their parameters",
                             runStrategies});

} // namespace
} // namespace lathe::cli

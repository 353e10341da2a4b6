// lathe-cli submit / merge / jobs: a sweep on a Slurm cluster. `submit --slurm` writes the plans and two
// sbatch scripts into a work folder and submits a job array (one task per plan, each into its own shard)
// plus a merge job that depends on it; `merge` copies shards into a run store; `jobs` shows the
// submitted sweeps with what Slurm and the shards say of their tasks.
#include "app/cli/cli.h"
#include "app/cli/cmd_runs.h"

#include "app/cluster/slurm.h"
#include "engine/core/errors.h"
#include "engine/experiment/spec.h"
#include "engine/store/run_merge.h"
#include "engine/store/run_store.h"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace lathe::cli {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

std::string readFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream buf;
    buf << in.rdbuf();
    return buf.str();
}

void writeFile(const fs::path& path, const std::string& text, bool executable = false) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) throw ConfigError("work folder: cannot write " + path.string() + ": " + std::strerror(errno));
    if (executable) {
        std::error_code ec;
        fs::permissions(path, fs::perms::owner_exec | fs::perms::group_exec, fs::perm_options::add, ec);
    }
}

// The nearest folder that exists at or above `p`, and whether this user may create files in it.
void requireWritableFolder(const fs::path& p) {
    fs::path probe = p;
    std::error_code ec;
    while (!probe.empty() && !fs::exists(probe, ec)) probe = probe.parent_path();
    if (probe.empty()) probe = ".";
    if (!fs::is_directory(probe, ec))
        throw ConfigError("work folder " + p.string() + ": " + probe.string() + " is not a folder");
    if (::access(probe.c_str(), W_OK | X_OK) != 0)
        throw ConfigError("work folder " + p.string() + " is not writable: " + probe.string() + ": " +
                          std::strerror(errno));
}

std::string selfExecutable() {
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", ec);
    return ec ? std::string("lathe-cli") : self.string();
}

// Slurm's --time formats: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS.
bool plausibleSlurmTime(const std::string& t) {
    if (t.empty() || t.find_first_not_of("0123456789:-") != std::string::npos) return false;
    return std::isdigit(static_cast<unsigned char>(t.front())) && std::isdigit(static_cast<unsigned char>(t.back()));
}

std::string submitUsage() {
    return "submit FILE.json --slurm [--partition P] [--gpus-per-task N] [--time HH:MM:SS] [--account A]\n"
           "          [--max-parallel K] [--workdir DIR] [--db PATH] [--requeue] [--sbatch-file FILE]\n"
           "          [--prelude FILE] [--settings FILE] [--dry-run] [--json]\n"
           "  one Slurm job-array task per plan of the sweep, each running lathe-cli into its own shard in\n"
           "  the work folder (which every node must see), then a merge job (--dependency=afterany) that\n"
           "  merges the shards into --db. --dry-run prints both sbatch scripts and submits nothing.\n"
           "  --sbatch-file: extra \"#SBATCH\" lines; --prelude: shell lines run first (module load, venv).\n"
           "  Defaults for these options come from --settings (default $XDG_CONFIG_HOME/lathe/slurm.json).";
}

int runSubmit(const std::vector<std::string>& argv) {
    Args args(argv,
              {"--partition", "--gpus-per-task", "--time", "--account", "--max-parallel", "--workdir", "--db",
               "--sbatch-file", "--prelude", "--settings"},
              {"--slurm", "--dry-run", "--requeue", "--json"});
    if (args.positional().size() != 1) throw ConfigError("usage: lathe-cli " + submitUsage());
    if (!args.flag("--slurm"))
        throw ConfigError("submit needs --slurm (Slurm is the scheduler Lathe submits sweeps to)");
    const std::string file = args.positional()[0];

    cluster::SlurmOptions options;
    const std::string settingsFile = args.value("--settings", cluster::defaultSlurmSettingsPath());
    if (args.value("--settings") && !fs::exists(settingsFile))
        throw ConfigError("option --settings: " + settingsFile + ": no such file");
    std::string workdirSetting = cluster::loadSlurmSettings(settingsFile, options);
    if (auto v = args.value("--partition")) options.partition = *v;
    if (auto v = args.value("--account")) options.account = *v;
    if (auto v = args.value("--time")) options.time = *v;
    if (!options.time.empty() && !plausibleSlurmTime(options.time))
        throw ConfigError("option --time: expected a Slurm time limit (MINUTES, HH:MM:SS or D-HH:MM:SS), got \"" +
                          options.time + "\"");
    options.gpusPerTask = static_cast<int>(args.integer("--gpus-per-task", options.gpusPerTask));
    options.maxParallel = static_cast<int>(args.integer("--max-parallel", options.maxParallel));
    if (options.gpusPerTask < 0) throw ConfigError("option --gpus-per-task: expected an integer >= 0");
    if (options.maxParallel < 0) throw ConfigError("option --max-parallel: expected an integer >= 0");
    options.requeue = options.requeue || args.flag("--requeue");
    if (auto f = args.value("--sbatch-file"))
        for (auto& l : cluster::readSbatchLines(*f)) options.extraSbatch.push_back(l);
    if (auto f = args.value("--prelude")) {
        if (!fs::exists(*f)) throw ConfigError("option --prelude: " + *f + ": no such file");
        options.prelude += readFile(*f);
    }

    // The whole sweep is validated and expanded here, before anything is written or submitted.
    ExperimentSpec spec;
    std::vector<RunPlan> plans;
    json doc;
    try {
        spec = loadExperimentFile(file);
        doc = json::parse(readFile(file));
        plans = expandSweep(spec, doc);
    } catch (const ConfigError& e) {
        std::cerr << e.what() << "\n";
        return kExitBadInput;
    }
    if (plans.empty()) throw ConfigError(file + ": the sweep has no plans");

    cluster::SweepJob job;
    job.name = spec.name;
    job.uuid = RunStore::newUuid();
    job.tasks = static_cast<int>(plans.size());
    job.latheCli = selfExecutable();
    job.database = fs::absolute(args.value("--db", RunStore::defaultPath())).lexically_normal().string();
    std::string workdir = args.value("--workdir", workdirSetting);
    if (workdir.empty()) workdir = "lathe-slurm";
    // Each submission gets a folder of its own under the one given.
    std::string leaf;
    for (char c : spec.name) leaf += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') ? c : '_';
    job.workdir = (fs::absolute(workdir) / (leaf + "-" + job.uuid.substr(0, 8))).lexically_normal().string();
    job.experimentFile = job.workdir + "/experiment.json";
    const std::string tasksScript = cluster::taskScript(job, options);
    const std::string mergeScript = cluster::mergeScript(job, options);

    requireWritableFolder(job.workdir);
    if (args.flag("--dry-run")) {
        std::cout << tasksScript << "\n# ---- merge job: sbatch --dependency=afterany:<the array's job id> "
                  << job.workdir << "/merge.sbatch ----\n"
                  << mergeScript;
        std::cerr << "lathe-cli submit: dry run: " << job.tasks << " task(s); nothing written, nothing submitted\n";
        return kExitOk;
    }

    // Found before anything is written: no folder is left behind for a sweep that was never submitted.
    cluster::requireSbatch();
    std::error_code ec;
    for (const char* sub : {"shards", "logs"}) {
        fs::create_directories(fs::path(job.workdir) / sub, ec);
        if (ec) throw ConfigError("work folder " + job.workdir + " is not writable: " + ec.message());
    }
    writeFile(job.experimentFile, readFile(file));
    json planList = json::array();
    for (const RunPlan& p : plans)
        planList.push_back({{"task", p.index}, {"label", p.label}, {"config", p.resolved}});
    writeFile(fs::path(job.workdir) / "plans.json", planList.dump(2) + "\n");
    writeFile(fs::path(job.workdir) / "tasks.sbatch", tasksScript, true);
    writeFile(fs::path(job.workdir) / "merge.sbatch", mergeScript, true);

    // The target store is opened (created, migrated) before submitting: a store that cannot be written
    // is found while nothing is queued yet.
    RunStore store(job.database);

    // A sweep that is not submitted whole leaves neither jobs nor its work folder behind.
    std::string arrayId;
    try {
        arrayId = cluster::sbatch({job.workdir + "/tasks.sbatch"});
    } catch (const cluster::SlurmError&) {
        fs::remove_all(job.workdir, ec);
        throw;
    }
    std::string mergeId;
    try {
        mergeId = cluster::sbatch({"--dependency=afterany:" + arrayId, job.workdir + "/merge.sbatch"});
    } catch (const cluster::SlurmError& e) {
        const std::string cancelError = cluster::scancel(arrayId);
        if (cancelError.empty()) fs::remove_all(job.workdir, ec);
        throw cluster::SlurmError(
            std::string(e.what()) + "\nthe merge job was refused, so the task array " + arrayId +
            (cancelError.empty() ? " was cancelled: nothing is left submitted"
                                 : " could not be cancelled (" + cancelError + "): cancel it with scancel " + arrayId));
    }

    SubmissionRecord record;
    record.uuid = job.uuid;
    record.name = job.name;
    record.specFile = fs::absolute(file).lexically_normal().string();
    record.workdir = job.workdir;
    record.tasks = job.tasks;
    record.arrayJobId = arrayId;
    record.mergeJobId = mergeId;
    try {
        store.addSubmission(record);
    } catch (const StoreError& e) {
        std::string cancelled;
        for (const auto& id : {mergeId, arrayId})
            if (const std::string err = cluster::scancel(id); !err.empty()) cancelled += "; " + err;
        throw StoreError(std::string(e.what()) + "\nthe submission could not be recorded, so jobs " + arrayId + " and " +
                         mergeId + (cancelled.empty() ? " were cancelled" : " could not all be cancelled" + cancelled));
    }
    const json manifest{{"uuid", job.uuid},         {"name", job.name},         {"spec_file", record.specFile},
                        {"workdir", job.workdir},   {"tasks", job.tasks},       {"array_job_id", arrayId},
                        {"merge_job_id", mergeId},  {"database", job.database}, {"max_parallel", options.maxParallel}};
    writeFile(fs::path(job.workdir) / "submission.json", manifest.dump(2) + "\n");

    if (args.flag("--json")) {
        std::cout << manifest.dump() << "\n";
    } else {
        std::cout << "submitted \"" << job.name << "\": " << job.tasks << " task(s) as job array " << arrayId
                  << (options.maxParallel > 0 ? " (at most " + std::to_string(options.maxParallel) + " at once)" : "")
                  << ", merge job " << mergeId << " into " << job.database << "\n"
                  << "work folder: " << job.workdir << "\n"
                  << "follow it with: lathe-cli jobs --db " << job.database << "\n";
    }
    return kExitOk;
}

int runMerge(const std::vector<std::string>& argv) {
    Args args(argv, {"--into"}, {"--json"});
    const auto into = args.value("--into");
    if (!into || args.positional().empty()) throw ConfigError("usage: lathe-cli merge SHARD... --into DB [--json]");
    RunStore store(*into);
    const MergeReport report = store.mergeShards(args.positional(), {});
    const int broken = [&] {
        int n = 0;
        for (const auto& s : report.shards) n += !s.ok() && !s.missing;
        return n;
    }();
    int missing = 0;
    for (const auto& s : report.shards) missing += s.missing;
    if (args.flag("--json")) {
        json shards = json::array();
        for (const auto& s : report.shards) {
            json j{{"path", s.path},       {"merged", s.merged},           {"replaced", s.replaced},
                   {"skipped", s.skipped}, {"interrupted", s.interrupted}, {"missing", s.missing}};
            if (!s.ok()) j["error"] = s.error;
            shards.push_back(std::move(j));
        }
        std::cout << json{{"into", *into},
                          {"merged", report.total(&ShardMergeResult::merged)},
                          {"replaced", report.total(&ShardMergeResult::replaced)},
                          {"skipped", report.total(&ShardMergeResult::skipped)},
                          {"interrupted", report.total(&ShardMergeResult::interrupted)},
                          {"missing", missing},
                          {"broken", broken},
                          {"shards", shards}}
                         .dump()
                  << "\n";
    } else {
        for (const auto& s : report.shards) {
            if (s.missing) {
                std::cout << "missing " << s.path << " (its task never wrote it)\n";
            } else if (!s.ok()) {
                std::cout << "broken  " << s.path << ": " << s.error << "\n";
            } else {
                std::cout << "merged  " << s.path << ": " << s.merged << " new, " << s.replaced << " replaced, "
                          << s.skipped << " already there" << (s.interrupted ? ", " + std::to_string(s.interrupted) +
                                                                                   " stored interrupted"
                                                                             : std::string())
                          << "\n";
            }
        }
        std::cout << "into " << *into << ": " << report.total(&ShardMergeResult::merged) << " run(s) merged, "
                  << report.total(&ShardMergeResult::replaced) << " replaced, "
                  << report.total(&ShardMergeResult::skipped) << " skipped, " << broken << " broken shard(s), "
                  << missing << " missing\n";
    }
    if (broken > 0) std::cerr << "lathe-cli merge: " << broken << " shard(s) could not be read; the rest were merged\n";
    return broken > 0 ? kExitRunFailed : kExitOk;
}

int runJobs(const std::vector<std::string>& argv) {
    Args args(argv, {"--db"}, {"--json"});
    const std::string path = args.value("--db", RunStore::defaultPath());
    auto store = RunStore::openForReading(path);
    std::vector<SubmissionRecord> subs = store ? store->submissions() : std::vector<SubmissionRecord>{};
    json out = json::array();
    if (!args.flag("--json")) {
        if (subs.empty()) {
            std::cout << "no sweeps submitted into " << path << "\n";
            return kExitOk;
        }
        std::printf("%-4s %-24s %-10s %-10s %5s %7s %7s %5s %6s %6s %-10s %s\n", "id", "name", "array", "merge", "tasks",
                    "pending", "running", "done", "failed", "merged", "merge job", "submitted");
    }
    for (const auto& s : subs) {
        const JobStates states = cluster::SlurmStateSource().query(s);
        const SweepCounts c = sweepCounts(s, states, store.get());
        const std::string mergeState = mergeStateText(c, states);
        if (args.flag("--json")) {
            json j{{"id", s.id},           {"uuid", s.uuid},         {"name", s.name},       {"workdir", s.workdir},
                   {"tasks", s.tasks},     {"array_job_id", s.arrayJobId}, {"merge_job_id", s.mergeJobId},
                   {"pending", c.pending}, {"running", c.running},   {"done", c.done},       {"failed", c.failed},
                   {"merged", c.merged},   {"merge_state", mergeState}, {"submitted_at", s.submittedAt},
                   {"slurm", states.source}};
            if (!states.error.empty()) j["slurm_error"] = states.error;
            out.push_back(std::move(j));
        } else {
            std::printf("%-4lld %-24s %-10s %-10s %5d %7d %7d %5d %6d %6d %-10s %s\n", static_cast<long long>(s.id),
                        s.name.substr(0, 24).c_str(), s.arrayJobId.c_str(), s.mergeJobId.c_str(), s.tasks, c.pending,
                        c.running, c.done, c.failed, c.merged, mergeState.c_str(), formatTime(s.submittedAt).c_str());
            if (!states.error.empty()) std::printf("     Slurm could not be asked: %s\n", states.error.c_str());
        }
    }
    if (args.flag("--json")) std::cout << out.dump() << "\n";
    return kExitOk;
}

const Registrar kSubmit({"submit", submitUsage(), "submit a sweep to a Slurm cluster: a job array plus a merge job",
                         runSubmit});
const Registrar kMerge({"merge", "merge SHARD... --into DB [--json]\n"
                                 "  copies every run of the shards (run stores, e.g. a cluster task's) into DB in one "
                                 "transaction;\n  runs already there are skipped; exit 1 when a shard is broken (the "
                                 "rest are merged)",
                        "merge run stores (a cluster sweep's shards) into one", runMerge});
const Registrar kJobs({"jobs", "jobs [--db PATH] [--json]",
                       "the sweeps submitted to Slurm, with their tasks pending, running, done and failed", runJobs});

} // namespace
} // namespace lathe::cli

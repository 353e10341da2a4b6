// sbatch scripts for a sweep, the Slurm commands around them, and the state of a submission's tasks.
#include "app/cluster/slurm.h"

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace lathe::cluster {

namespace {

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return {};
    const auto e = s.find_last_not_of(" \t\r\n");
    return s.substr(b, e - b + 1);
}

// Job names are shown by squeue; keep them to characters every shell and Slurm tool takes as they are.
std::string jobName(const std::string& prefix, const std::string& name) {
    std::string out = prefix;
    for (char c : name) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') ? c : '_';
    return out.substr(0, 64);
}

void commonSbatch(std::ostringstream& s, const SlurmOptions& o) {
    if (!o.partition.empty()) s << "#SBATCH --partition=" << o.partition << "\n";
    if (!o.account.empty()) s << "#SBATCH --account=" << o.account << "\n";
    if (!o.time.empty()) s << "#SBATCH --time=" << o.time << "\n";
}

void extraAndPrelude(std::ostringstream& s, const SweepJob& job, const SlurmOptions& o) {
    for (const auto& line : o.extraSbatch) s << line << "\n";
    s << "\nset -u\n";
    s << "LATHE_CLI=" << shellQuote(job.latheCli) << "\n";
    if (!o.prelude.empty()) {
        s << "# prelude\n" << o.prelude;
        if (o.prelude.back() != '\n') s << "\n";
    }
}

} // namespace

std::string arraySpec(int tasks, int maxParallel) {
    std::string spec = "0-" + std::to_string(tasks - 1);
    if (maxParallel > 0) spec += "%" + std::to_string(maxParallel);
    return spec;
}

std::string taskScript(const SweepJob& job, const SlurmOptions& o) {
    std::ostringstream s;
    s << "#!/bin/bash\n"
      << "# Lathe sweep \"" << job.name << "\" (" << job.uuid << "): plan N of the sweep is array task N,\n"
      << "# run by lathe-cli into its own shard " << job.workdir << "/shards/task-N.sqlite.\n"
      << "#SBATCH --job-name=" << jobName("lathe-", job.name) << "\n"
      << "#SBATCH --array=" << arraySpec(job.tasks, o.maxParallel) << "\n"
      << "#SBATCH --output=" << job.workdir << "/logs/task-%a.out\n"
      << "#SBATCH --open-mode=append\n";
    commonSbatch(s, o);
    if (o.gpusPerTask > 0) s << "#SBATCH --gpus-per-task=" << o.gpusPerTask << "\n";
    s << (o.requeue ? "#SBATCH --requeue\n" : "#SBATCH --no-requeue\n");
    extraAndPrelude(s, job, o);
    s << "task=\"${SLURM_ARRAY_TASK_ID:?submit this script with sbatch: it is a job array}\"\n"
      << "echo \"lathe: task $task of job ${SLURM_ARRAY_JOB_ID:-?}, attempt $(( ${SLURM_RESTART_COUNT:-0} + 1 )), "
         "on $(hostname), GPUs ${CUDA_VISIBLE_DEVICES:-none}\"\n"
      << "exec \"$LATHE_CLI\" run " << shellQuote(job.experimentFile) << " --plan \"$task\" --experiment-uuid "
      << job.uuid << " --task-shard \\\n"
      << "    --db " << shellQuote(job.workdir + "/shards") << "/task-\"$task\".sqlite\n";
    return s.str();
}

std::string mergeScript(const SweepJob& job, const SlurmOptions& o) {
    std::ostringstream s;
    s << "#!/bin/bash\n"
      << "# Lathe sweep \"" << job.name << "\" (" << job.uuid << "): merges the tasks' shards into\n"
      << "# " << job.database << " once every task has ended (submitted with --dependency=afterany).\n"
      << "#SBATCH --job-name=" << jobName("lathe-merge-", job.name) << "\n"
      << "#SBATCH --output=" << job.workdir << "/logs/merge.out\n"
      << "#SBATCH --open-mode=append\n";
    commonSbatch(s, o);
    extraAndPrelude(s, job, o);
    s << "shards=()\n"
      << "for ((task = 0; task < " << job.tasks << "; task++)); do shards+=(" << shellQuote(job.workdir + "/shards")
      << "/task-$task.sqlite); done\n"
      << "exec \"$LATHE_CLI\" merge \"${shards[@]}\" --into " << shellQuote(job.database) << "\n";
    return s.str();
}

std::vector<std::string> readSbatchLines(const std::string& file) {
    std::ifstream in(file);
    if (!in) throw ConfigError(file + ": cannot read the file of sbatch options");
    std::vector<std::string> lines;
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
        const std::string t = trim(line);
        if (t.empty()) continue;
        if (t.rfind("#SBATCH", 0) == 0) {
            lines.push_back(t);
        } else if (t.rfind("--", 0) == 0 || (t.size() > 1 && t[0] == '-' && std::isalpha(static_cast<unsigned char>(t[1])))) {
            lines.push_back("#SBATCH " + t);
        } else if (t[0] == '#') {
            continue;
        } else {
            throw ConfigError(file + ":" + std::to_string(n) + ": expected an \"#SBATCH --option\" line or an sbatch "
                              "option (--option=value), got \"" + t + "\"");
        }
    }
    return lines;
}

std::string defaultSlurmSettingsPath() {
    if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && xdg[0] == '/')
        return std::string(xdg) + "/lathe/slurm.json";
    const char* home = std::getenv("HOME");
    return std::string(home && *home ? home : ".") + "/.config/lathe/slurm.json";
}

std::string loadSlurmSettings(const std::string& file, SlurmOptions& o) {
    std::error_code ec;
    if (!std::filesystem::exists(file, ec)) return {};
    std::ifstream in(file);
    std::stringstream buf;
    buf << in.rdbuf();
    const nlohmann::json doc = nlohmann::json::parse(buf.str(), nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) throw ConfigError(file + ": expected a JSON object of Slurm settings");
    auto fail = [&](const std::string& key, const char* expected) -> ConfigError {
        return ConfigError(file + ": /" + key + ": expected " + expected + ", got " + doc[key].dump());
    };
    std::string workdir;
    for (const auto& [key, value] : doc.items()) {
        if (key == "partition" || key == "account" || key == "time" || key == "workdir" || key == "sbatch_file" ||
            key == "prelude_file") {
            if (!value.is_string()) throw fail(key, "a string");
            const std::string v = value.get<std::string>();
            if (key == "partition") o.partition = v;
            else if (key == "account") o.account = v;
            else if (key == "time") o.time = v;
            else if (key == "workdir") workdir = v;
            else if (key == "sbatch_file") for (auto& l : readSbatchLines(v)) o.extraSbatch.push_back(l);
            else {
                std::ifstream p(v);
                if (!p) throw ConfigError(file + ": /prelude_file: cannot read " + v);
                std::stringstream pb;
                pb << p.rdbuf();
                o.prelude += pb.str();
            }
        } else if (key == "gpus_per_task" || key == "max_parallel") {
            if (!value.is_number_integer() || value.get<long long>() < 0) throw fail(key, "an integer >= 0");
            (key == "gpus_per_task" ? o.gpusPerTask : o.maxParallel) = value.get<int>();
        } else if (key == "requeue") {
            if (!value.is_boolean()) throw fail(key, "true or false");
            o.requeue = value.get<bool>();
        } else if (key == "sbatch") {
            if (!value.is_array()) throw fail(key, "an array of \"#SBATCH --option\" lines");
            for (std::size_t i = 0; i < value.size(); ++i) {
                if (!value[i].is_string())
                    throw ConfigError(file + ": /sbatch/" + std::to_string(i) + ": expected a string, got " + value[i].dump());
                std::string l = trim(value[i].get<std::string>());
                o.extraSbatch.push_back(l.rfind("#SBATCH", 0) == 0 ? l : "#SBATCH " + l);
            }
        } else if (key == "prelude") {
            if (value.is_string()) {
                o.prelude += value.get<std::string>() + "\n";
            } else if (value.is_array()) {
                for (std::size_t i = 0; i < value.size(); ++i) {
                    if (!value[i].is_string())
                        throw ConfigError(file + ": /prelude/" + std::to_string(i) + ": expected a string, got " +
                                          value[i].dump());
                    o.prelude += value[i].get<std::string>() + "\n";
                }
            } else {
                throw fail(key, "a string or an array of lines");
            }
        } else {
            throw ConfigError(file + ": /" + key + ": unknown setting (known: partition, account, time, gpus_per_task, "
                              "max_parallel, requeue, workdir, sbatch, sbatch_file, prelude, prelude_file)");
        }
    }
    return workdir;
}

namespace {
std::string quoteMessage(const ProcessResult& r) {
    std::string msg = trim(r.err.empty() ? r.out : r.err);
    return msg.empty() ? "(no message)" : msg;
}
} // namespace

void requireSbatch() {
    if (!findOnPath("sbatch"))
        throw SlurmError("sbatch not found on PATH: is this a Slurm login node (or is the Slurm client, e.g. Debian's "
                         "slurm-client, installed)? Nothing was submitted.");
}

std::string sbatch(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"sbatch", "--parsable"};
    argv.insert(argv.end(), args.begin(), args.end());
    const std::string cmd = commandLine(argv);
    requireSbatch();
    const ProcessResult r = runProcess(argv, 120);
    if (!r.started) throw SlurmError(cmd + ": could not run it: " + r.startError);
    if (r.timedOut) throw SlurmError(cmd + ": no answer within 120 s (is the Slurm controller reachable?)");
    if (r.exitCode != 0)
        throw SlurmError(cmd + " failed (exit status " + std::to_string(r.exitCode) + "): " + quoteMessage(r));
    // --parsable prints "jobid" or "jobid;cluster".
    std::string id = trim(r.out);
    if (auto nl = id.rfind('\n'); nl != std::string::npos) id = trim(id.substr(nl + 1));
    if (auto semi = id.find(';'); semi != std::string::npos) id = id.substr(0, semi);
    if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos)
        throw SlurmError(cmd + ": expected a job id, got \"" + trim(r.out) + "\"" +
                         (r.err.empty() ? "" : " (" + trim(r.err) + ")"));
    return id;
}

std::string scancel(const std::string& jobId) {
    const std::vector<std::string> argv{"scancel", jobId};
    const ProcessResult r = runProcess(argv, 60);
    if (!r.started) return commandLine(argv) + ": could not run it: " + r.startError;
    if (r.timedOut) return commandLine(argv) + ": no answer within 60 s";
    if (r.exitCode != 0)
        return commandLine(argv) + " failed (exit status " + std::to_string(r.exitCode) + "): " + quoteMessage(r);
    return {};
}

void parseSqueue(const std::string& text, const std::string& arrayId, const std::string& mergeId, JobStates& states) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        // %F|%K|%i|%T: array job id, array task id (N/A outside arrays), job id, state.
        std::vector<std::string> f;
        std::stringstream ls(line);
        for (std::string part; std::getline(ls, part, '|');) f.push_back(trim(part));
        if (f.size() < 4) continue;
        if (f[2] == mergeId || f[0] == mergeId) {
            states.merge = f[3];
        } else if (f[0] == arrayId) {
            // A pending array shows its remaining tasks as a range ("2-3%2") when not expanded.
            const std::string& k = f[1];
            try {
                const auto dash = k.find('-');
                if (dash == std::string::npos) {
                    states.tasks[std::stoi(k)] = f[3];
                } else {
                    const int lo = std::stoi(k.substr(0, dash));
                    const int hi = std::stoi(k.substr(dash + 1));
                    for (int t = lo; t <= hi; ++t) states.tasks[t] = f[3];
                }
            } catch (const std::exception&) {
            }
        }
    }
}

void parseSacct(const std::string& text, const std::string& arrayId, const std::string& mergeId, JobStates& states) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        // JobID|State, e.g. "123_4|COMPLETED", "124|FAILED", "123_[5-7]|PENDING", "125|CANCELLED by 0".
        const auto bar = line.find('|');
        if (bar == std::string::npos) continue;
        const std::string id = trim(line.substr(0, bar));
        std::string state = trim(line.substr(bar + 1));
        if (auto sp = state.find(' '); sp != std::string::npos) state = state.substr(0, sp);
        if (id == mergeId) {
            if (states.merge.empty()) states.merge = state;
            continue;
        }
        const std::string prefix = arrayId + "_";
        if (id.rfind(prefix, 0) != 0) continue;
        const std::string task = id.substr(prefix.size());
        try {
            if (task.find_first_not_of("0123456789") == std::string::npos && !task.empty()) {
                states.tasks.emplace(std::stoi(task), state); // squeue's word, when it has one, wins
            }
        } catch (const std::exception&) {
        }
    }
}

JobStates querySlurm(const std::string& arrayId, const std::string& mergeId, int timeoutS) {
    JobStates states;
    const std::string jobs = arrayId + (mergeId.empty() ? "" : "," + mergeId);
    const std::vector<std::string> squeue{"squeue", "-h", "-r", "-t", "all", "-j", jobs, "-o", "%F|%K|%i|%T"};
    const ProcessResult q = runProcess(squeue, timeoutS);
    if (!q.started) {
        states.error = commandLine(squeue) + ": " + q.startError;
        return states;
    }
    if (q.timedOut) {
        states.error = commandLine(squeue) + ": no answer within " + std::to_string(timeoutS) +
                       " s (is the Slurm controller reachable?)";
        return states;
    }
    // squeue exits 1 with "Invalid job id specified" once the jobs are purged from its memory: not an error.
    if (q.exitCode != 0 && q.err.find("Invalid job id") == std::string::npos) {
        states.error = commandLine(squeue) + " failed (exit status " + std::to_string(q.exitCode) + "): " + quoteMessage(q);
        return states;
    }
    parseSqueue(q.out, arrayId, mergeId, states);
    states.source = "squeue";
    // sacct knows finished jobs where the cluster keeps accounting (slurmdbd); elsewhere it says so and
    // the shards tell instead.
    if (findOnPath("sacct")) {
        const std::vector<std::string> sacct{"sacct", "-n", "-P", "-X", "-j", jobs, "-o", "JobID,State"};
        const ProcessResult a = runProcess(sacct, timeoutS);
        if (a.started && a.exitCode == 0 && !a.out.empty()) {
            parseSacct(a.out, arrayId, mergeId, states);
            states.source = "squeue+sacct";
        }
    }
    return states;
}

JobStates SlurmStateSource::query(const SubmissionRecord& submission) {
    return querySlurm(submission.arrayJobId, submission.mergeJobId, m_timeoutS);
}

} // namespace lathe::cluster

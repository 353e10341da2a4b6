// Sweeps on a Slurm cluster: the sbatch scripts of a submitted sweep (one job-array task per plan, each
// writing its own shard; a merge job that depends on the array), the sbatch/scancel/squeue/sacct calls
// (counting a submission's tasks from them is engine/store/sweep_status.h). Qt-free: lathe-cli and the window both use it.
#pragma once

#include "app/cluster/process.h"
#include "engine/core/errors.h"
#include "engine/store/run_store.h"
#include "engine/store/sweep_status.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace lathe::cluster {

// A Slurm command failed: the message names the command and quotes Slurm's own words.
class SlurmError : public ConfigError {
public:
    using ConfigError::ConfigError;
};

// What the user chose (options, or the settings file; see loadSlurmSettings).
struct SlurmOptions {
    std::string partition, account, time; // empty: the cluster's defaults
    int gpusPerTask = 0;                  // 0: ask for none
    int maxParallel = 0;                  // 0: as many at once as Slurm allows
    bool requeue = false;                 // let Slurm requeue a preempted or failed-node task
    std::vector<std::string> extraSbatch; // "#SBATCH ..." lines for both jobs
    std::string prelude;                  // shell lines run before lathe-cli (module load, venv)
};

// One submitted sweep, as the scripts see it. Every path is absolute.
struct SweepJob {
    std::string name;         // the experiment's name
    std::string uuid;         // the submission's (and the experiment's) stable id
    std::string workdir;      // on a file system every node sees
    std::string experimentFile; // the copy in workdir the tasks run
    std::string database;     // where the merge job merges the shards
    std::string latheCli;     // the lathe-cli the nodes run (the prelude may set LATHE_CLI instead)
    int tasks = 0;
};

std::string arraySpec(int tasks, int maxParallel);             // "0-3%2"

// The job-array script (sbatch it with nothing else: the array and every option are in it).
std::string taskScript(const SweepJob& job, const SlurmOptions& options);
// The merge job's script; submitted with --dependency=afterany:ARRAY_JOB_ID.
std::string mergeScript(const SweepJob& job, const SlurmOptions& options);

// Lines of a file of extra sbatch options: "#SBATCH --x" lines or bare "--x" options; blank lines and
// other comments are skipped. Throws ConfigError naming the file and line.
std::vector<std::string> readSbatchLines(const std::string& file);

// Defaults from a JSON settings file ({"partition", "account", "time", "gpus_per_task", "max_parallel",
// "requeue", "workdir", "sbatch": [lines], "sbatch_file", "prelude": text or [lines], "prelude_file"}).
// A missing file leaves `options` alone; a malformed one throws ConfigError naming the file and pointer.
// Returns the settings' workdir (empty when not set).
std::string loadSlurmSettings(const std::string& file, SlurmOptions& options);
// $XDG_CONFIG_HOME/lathe/slurm.json (default ~/.config/lathe/slurm.json).
std::string defaultSlurmSettingsPath();

// Throws SlurmError when sbatch is not on PATH.
void requireSbatch();
// sbatch --parsable ARGS...: the job id. Throws SlurmError (command, exit status and Slurm's message)
// when sbatch is missing, fails or prints no id.
std::string sbatch(const std::vector<std::string>& args);
// scancel JOB_ID; "" on success, otherwise what went wrong.
std::string scancel(const std::string& jobId);

// Parses `squeue -h -r -t all -o %F|%K|%i|%T` (and sacct -n -P -X -o JobID,State lines) for one
// submission: array job id `arrayId`, merge job id `mergeId`.
void parseSqueue(const std::string& text, const std::string& arrayId, const std::string& mergeId, JobStates& states);
void parseSacct(const std::string& text, const std::string& arrayId, const std::string& mergeId, JobStates& states);
// Asks squeue, then sacct where the cluster keeps accounting, for the jobs of one submission; each command
// is killed after timeoutS seconds (a controller that does not answer is then an error, not a hang).
JobStates querySlurm(const std::string& arrayId, const std::string& mergeId, int timeoutS = 60);

// What lathe-cli jobs and the window ask: querySlurm with a timeout per command.
class SlurmStateSource : public JobStateSource {
public:
    explicit SlurmStateSource(int timeoutS = 60) : m_timeoutS(timeoutS) {}
    JobStates query(const SubmissionRecord& submission) override;

private:
    int m_timeoutS;
};

} // namespace lathe::cluster

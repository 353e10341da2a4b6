// Sweeps on a Slurm cluster: the sbatch scripts of a submitted sweep (one job-array task per plan, each
// writing its own shard; a merge job that depends on the array), the sbatch/scancel/squeue/sacct calls,
// and the state of a submission's tasks. Qt-free: lathe-cli and the window both use it.
#pragma once

#include "app/cluster/process.h"
#include "engine/core/errors.h"
#include "engine/store/run_store.h"

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

std::string shardPath(const std::string& workdir, int task); // WORKDIR/shards/task-N.sqlite
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

// The state of one task (or the merge job) as Slurm says it: PENDING, RUNNING, COMPLETED, ...
struct JobStates {
    std::map<int, std::string> tasks; // array task id -> state
    std::string merge;                // the merge job's state ("" unknown)
    std::string error;                // why Slurm could not be asked ("" when it answered)
    std::string source;               // "squeue", "squeue+sacct"
};
// Parses `squeue -h -r -t all -o %F|%K|%i|%T` (and sacct -n -P -X -o JobID,State lines) for one
// submission: array job id `arrayId`, merge job id `mergeId`.
void parseSqueue(const std::string& text, const std::string& arrayId, const std::string& mergeId, JobStates& states);
void parseSacct(const std::string& text, const std::string& arrayId, const std::string& mergeId, JobStates& states);
// Asks squeue, then sacct where the cluster keeps accounting, for the jobs of one submission.
JobStates querySlurm(const std::string& arrayId, const std::string& mergeId);

// How a submission's tasks stand: Slurm's states where it still knows them, else the task's shard.
struct SweepCounts {
    int pending = 0, running = 0, done = 0, failed = 0;
    int merged = 0; // runs of the sweep in the target store
    std::string mergeState;
};
enum class TaskState { Pending, Running, Done, Failed };
// Slurm's state name -> what it means for a task ("" or unknown: nothing).
std::optional<TaskState> taskStateOf(const std::string& slurmState);
// Counts for one submission: each task by Slurm's word where Slurm still knows it, otherwise by its
// shard's last run (done, or failed/interrupted/cancelled; a run left running by a task Slurm no longer
// knows is failed); a task with neither is pending while Slurm could not be asked, failed otherwise.
// `target` (may be null) gives the merged count.
SweepCounts sweepCounts(const SubmissionRecord& submission, const JobStates& states, const RunStore* target);

} // namespace lathe::cluster

// Where a submitted sweep stands: the scheduler's word on each task (JobStates, from a JobStateSource)
// read together with each task's shard into counts of pending, running, done and failed tasks.
// Shared by `lathe-cli jobs` and the window's sweeps table; the Slurm queries live in app/cluster.
#pragma once

#include "engine/store/run_store.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace lathe {

// WORKDIR/shards/task-N.sqlite: the run store task N of a submission writes.
std::string shardPath(const std::string& workdir, int task);

// The state of each task (and of the merge job) as the scheduler says it: PENDING, RUNNING, COMPLETED, ...
struct JobStates {
    std::map<int, std::string> tasks; // array task id -> state
    std::string merge;                // the merge job's state ("" unknown)
    std::string error;                // why the scheduler could not be asked ("" when it answered)
    std::string source;               // "squeue", "squeue+sacct"
};

// Asks the scheduler about one submission's jobs. The window calls it off its UI thread, so an
// implementation may block, but only up to a timeout of its own; failures go into JobStates::error.
class JobStateSource {
public:
    virtual ~JobStateSource() = default;
    virtual JobStates query(const SubmissionRecord& submission) = 0;
};

enum class TaskState { Pending, Running, Done, Failed };
// Slurm's state name -> what it means for a task ("" or unknown: nothing).
std::optional<TaskState> taskStateOf(const std::string& slurmState);

// How a submission's tasks stand.
struct SweepCounts {
    int pending = 0, running = 0, done = 0, failed = 0;
    int merged = 0; // runs of the sweep in the target store
    std::string mergeState;
    std::vector<TaskState> tasks; // task N's state
    bool active() const { return pending > 0 || running > 0; }
};
// Counts for one submission: each task by the scheduler's word where it still knows it, otherwise by its
// shard's last run (done, or failed/interrupted/cancelled; a run left running by a task the scheduler no
// longer knows is failed); a task with neither is pending while the scheduler could not be asked, failed
// otherwise. `target` (may be null) gives the merged count.
SweepCounts sweepCounts(const SubmissionRecord& submission, const JobStates& states, const RunStore* target);

// The merge job's state as `lathe-cli jobs` and the window show it: the scheduler's word, else "ended"
// (no longer listed) or "unknown" (the scheduler could not be asked).
std::string mergeStateText(const SweepCounts& counts, const JobStates& states);

// The shards of the tasks that have ended (done or failed): what can be merged now without storing a
// still-running run as interrupted.
std::vector<std::string> finishedShards(const SubmissionRecord& submission, const SweepCounts& counts);

} // namespace lathe

// Counting a submitted sweep's tasks from the scheduler's states and the tasks' shards.
#include "engine/store/sweep_status.h"

namespace lathe {

std::string shardPath(const std::string& workdir, int task) {
    return workdir + "/shards/task-" + std::to_string(task) + ".sqlite";
}

std::optional<TaskState> taskStateOf(const std::string& s) {
    if (s == "PENDING" || s == "CONFIGURING" || s == "REQUEUED" || s == "REQUEUE_HOLD" || s == "REQUEUE_FED" ||
        s == "RESV_DEL_HOLD" || s == "SUSPENDED")
        return TaskState::Pending;
    if (s == "RUNNING" || s == "COMPLETING" || s == "STAGE_OUT" || s == "SIGNALING" || s == "RESIZING")
        return TaskState::Running;
    if (s == "COMPLETED") return TaskState::Done;
    if (s == "FAILED" || s == "CANCELLED" || s == "TIMEOUT" || s == "NODE_FAIL" || s == "PREEMPTED" ||
        s == "BOOT_FAIL" || s == "DEADLINE" || s == "OUT_OF_MEMORY" || s == "REVOKED" || s == "SPECIAL_EXIT")
        return TaskState::Failed;
    return std::nullopt;
}

SweepCounts sweepCounts(const SubmissionRecord& sub, const JobStates& states, const RunStore* target) {
    SweepCounts c;
    c.mergeState = states.merge;
    for (int t = 0; t < sub.tasks; ++t) {
        std::optional<TaskState> state;
        if (auto it = states.tasks.find(t); it != states.tasks.end()) state = taskStateOf(it->second);
        // COMPLETED only says the script exited 0: the shard says whether the run was done.
        if (!state || *state == TaskState::Done) {
            std::optional<TaskState> fromShard;
            try {
                if (auto shard = RunStore::openForReading(shardPath(sub.workdir, t))) {
                    RunFilter f;
                    f.limit = 1;
                    f.withSummary = false;
                    const auto runs = shard->listRuns(f);
                    if (!runs.empty()) {
                        const std::string& s = runs.front().status;
                        if (s == run_status::kDone) fromShard = TaskState::Done;
                        else if (s == run_status::kRunning || s == run_status::kQueued)
                            fromShard = states.error.empty() ? TaskState::Failed : TaskState::Running;
                        else fromShard = TaskState::Failed;
                    }
                }
            } catch (const std::exception&) {
                fromShard = TaskState::Failed; // a shard that cannot be read
            }
            if (fromShard) state = fromShard;
            else if (!state) state = states.error.empty() ? TaskState::Failed : TaskState::Pending;
        }
        c.tasks.push_back(*state);
        switch (*state) {
        case TaskState::Pending: ++c.pending; break;
        case TaskState::Running: ++c.running; break;
        case TaskState::Done: ++c.done; break;
        case TaskState::Failed: ++c.failed; break;
        }
    }
    if (target) {
        if (auto exp = target->experimentByUuid(sub.uuid)) {
            RunFilter f;
            f.withSummary = false;
            for (const auto& r : target->listRuns(f)) c.merged += r.experimentId == *exp ? 1 : 0;
        }
    }
    return c;
}

std::string mergeStateText(const SweepCounts& counts, const JobStates& states) {
    if (!counts.mergeState.empty()) return counts.mergeState;
    return states.error.empty() ? "ended" : "unknown";
}

std::vector<std::string> finishedShards(const SubmissionRecord& submission, const SweepCounts& counts) {
    std::vector<std::string> shards;
    for (std::size_t t = 0; t < counts.tasks.size(); ++t)
        if (counts.tasks[t] == TaskState::Done || counts.tasks[t] == TaskState::Failed)
            shards.push_back(shardPath(submission.workdir, static_cast<int>(t)));
    return shards;
}

} // namespace lathe

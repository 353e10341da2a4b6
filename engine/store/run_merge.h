// Merging run stores: the shards a cluster's tasks wrote (one SQLite file per task, since SQLite over NFS
// with many writers corrupts databases) into the store the window shows. See RunStore::mergeShards.
#pragma once

#include "engine/store/run_store.h"

#include <functional>
#include <string>
#include <vector>

namespace lathe {

struct MergeOptions {
    // Called inside the merge's transaction after each run is copied; an exception thrown here aborts
    // the whole merge and leaves the target as it was (progress output, and tests of that guarantee).
    std::function<void(const std::string& shardPath, const std::string& runUuid)> afterRun;
};

struct ShardMergeResult {
    std::string path;
    int merged = 0;      // runs new to the target, copied
    int replaced = 0;    // runs stored `interrupted` by an earlier merge that the shard now holds finished
    int skipped = 0;     // runs the target already holds (same uuid)
    int interrupted = 0; // of merged + replaced: still running or queued in the shard, stored `interrupted`
    bool missing = false; // no such file (e.g. a task that never started)
    std::string error;    // non-empty: the shard is missing or broken and nothing of it was merged
    bool ok() const { return error.empty(); }
};

struct MergeReport {
    std::vector<ShardMergeResult> shards;
    int total(int ShardMergeResult::*field) const {
        int n = 0;
        for (const auto& s : shards) n += s.*field;
        return n;
    }
    int broken() const {
        int n = 0;
        for (const auto& s : shards) n += s.ok() ? 0 : 1;
        return n;
    }
};

// The text stored as the error of a run merged `interrupted` because its shard still had it running.
constexpr const char* kMergedRunningError =
    "interrupted: still running in its shard when merged (its task stopped before the run finished: a time "
    "limit, scancel, preemption or a crash)";

} // namespace lathe

// lathe-cli merge's engine: RunStore::mergeShards copies runs with everything they own (samples,
// summaries, per-layer stats, notes, artifacts, any table a later schema adds), recognises runs it
// already holds by uuid, keeps one transaction (a failure or a crash mid-merge leaves the target as it
// was), reports broken and missing shards and merges the rest. Issue 17. Qt-free (mini_test.h).
#include "engine/core/errors.h"
#include "engine/store/run_merge.h"
#include "engine/store/run_store.h"
#include "tests/support/mini_test.h"
#include "tests/support/test_common.h"

#include <sqlite3.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sys/wait.h>
#include <unistd.h>

using namespace lathe;
namespace fs = std::filesystem;

namespace {

int g_dirCounter = 0;
std::string freshDir() {
    const std::string dir = test::tempDir() + "/case" + std::to_string(++g_dirCounter);
    fs::create_directories(dir);
    return dir;
}

void rawExec(const std::string& path, const std::string& sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    const std::string message = err ? err : "";
    sqlite3_free(err);
    sqlite3_close(db);
    REQUIRE_MSG(rc == SQLITE_OK, sql + ": " + message);
}

long long rawCount(const std::string& path, const std::string& sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    REQUIRE_MSG(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK, sql);
    long long n = -1;
    if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

const std::string kSweepUuid = "0f0e0d0c-0b0a-4908-8706-050403020100";

// One run the way the runner leaves it: samples of two series, a summary, per-layer stats, two
// artifacts, notes; `finish` empty leaves it running (its task killed).
std::int64_t addRun(RunStore& store, const std::string& name, int seed, const std::string& finish = run_status::kDone) {
    const std::int64_t exp = store.addExperiment("sweep", R"({"name":"sweep"})", kSweepUuid);
    NewRun nr;
    nr.experimentId = exp;
    nr.name = name;
    nr.model = "mlp";
    nr.dataset = "fashion-mnist/test";
    nr.device = "cpu";
    nr.strategyChain = "train";
    nr.tags = {"t" + std::to_string(seed)};
    nr.configJson = R"({"lr":)" + std::to_string(seed) + "}";
    nr.environmentJson = R"({"slurm":{"array_task_id":")" + std::to_string(seed) + R"("}})";
    const std::int64_t id = store.createRun(nr);
    store.startRun(id);
    std::vector<MetricSample> samples;
    const auto values = test::randomVector(150, static_cast<std::uint64_t>(seed));
    for (int i = 0; i < 150; ++i) {
        MetricSample s;
        s.runId = id;
        s.setSeries(i % 2 ? "train.loss" : "latency_ms@b64");
        s.step = i / 2;
        s.tMs = 10.0 * i;
        s.value = values[static_cast<std::size_t>(i)];
        samples.push_back(s);
    }
    store.appendSamples(samples);
    if (finish.empty()) return id;
    store.setSummary(id, {{"accuracy", 0.5 + seed / 100.0}, {"latency_p50_ms", 1.25 * seed}});
    const LayerStat stats[] = {{"fc1", "sparsity", 0.1 * seed}, {"fc2", "bytes", 4096.0 + seed}};
    store.addLayerStats(id, stats);
    store.addArtifact(id, {"model", "/shared/models/" + name + ".safetensors", "ab12"});
    store.addArtifact(id, {"report", "/shared/reports/" + name + ".md", ""});
    store.setNotes(id, {{"simulated", "no"}, {"seed", std::to_string(seed)}});
    store.finishRun(id, finish, finish == run_status::kFailed ? "boom" : "");
    return id;
}

std::string makeShard(const std::string& dir, const std::string& name, int seed,
                      const std::string& finish = run_status::kDone) {
    const std::string path = dir + "/" + name + ".sqlite";
    RunStore store(path);
    addRun(store, name, seed, finish);
    return path;
}

// Every field that must survive a merge, as one comparable text.
std::string describeRun(const RunStore& store, std::int64_t id) {
    const auto r = store.run(id);
    REQUIRE(r.has_value());
    std::ostringstream out;
    out << r->uuid << "|" << r->name << "|" << r->status << "|" << r->model << "|" << r->dataset << "|" << r->device
        << "|" << r->strategyChain << "|" << r->configJson << "|" << r->environmentJson << "|" << r->error << "|"
        << r->experimentName << "|" << r->createdAt << "|" << r->startedAt << "|" << r->finishedAt << "\n";
    for (const auto& t : r->tags) out << "tag " << t << "\n";
    for (const auto& [k, v] : r->summary) out << "summary " << k << "=" << v << "\n";
    for (const auto& [k, v] : r->notes) out << "note " << k << "=" << v << "\n";
    for (const auto& s : store.samples(id)) out << "sample " << s.seriesName() << " " << s.step << " " << s.tMs << " " << s.value << "\n";
    for (const auto& l : store.layerStats(id)) out << "layer " << l.layer << " " << l.key << " " << l.value << "\n";
    for (const auto& a : store.artifacts(id)) out << "artifact " << a.kind << " " << a.path << " " << a.sha256 << "\n";
    return out.str();
}

std::map<std::string, std::string> runsByUuid(const RunStore& store) {
    std::map<std::string, std::string> out;
    for (const auto& r : store.listRuns()) out[r.uuid] = describeRun(store, r.id);
    return out;
}

} // namespace

TEST_CASE(runsGetStableUuids) {
    const std::string dir = freshDir();
    RunStore store(dir + "/a.sqlite");
    const auto a = addRun(store, "a", 1), b = addRun(store, "b", 2);
    const std::regex uuid("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
    CHECK(std::regex_match(store.run(a)->uuid, uuid));
    CHECK(std::regex_match(store.run(b)->uuid, uuid));
    CHECK(store.run(a)->uuid != store.run(b)->uuid);
    CHECK_EQ(store.runByUuid(store.run(b)->uuid).value_or(0), b);
    // A submitted sweep's tasks share one experiment, found by its uuid.
    CHECK_EQ(store.run(a)->experimentId, store.run(b)->experimentId);
    CHECK_EQ(store.experimentByUuid(kSweepUuid).value_or(0), store.run(a)->experimentId);
}

TEST_CASE(migrationGivesOldRunsUuids) {
    const std::string path = freshDir() + "/v4.sqlite";
    for (int v = 1; v <= 4; ++v) rawExec(path, RunStore::schemaScript(v));
    rawExec(path, "INSERT INTO experiments(name, created_at) VALUES ('old', 1);"
                  "INSERT INTO runs(experiment_id, name, created_at) VALUES (1, 'r1', 1), (1, 'r2', 2);");
    RunStore store(path);
    CHECK_EQ(store.schemaVersion(), RunStore::currentSchemaVersion());
    const auto runs = store.listRuns();
    REQUIRE(runs.size() == 2);
    const std::regex uuid("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
    CHECK(std::regex_match(runs[0].uuid, uuid));
    CHECK(std::regex_match(runs[1].uuid, uuid));
    CHECK(runs[0].uuid != runs[1].uuid);
    CHECK_EQ(rawCount(path, "SELECT count(*) FROM experiments WHERE uuid IS NULL"), 0LL);
}

TEST_CASE(mergeKeepsEverythingARunOwns) {
    const std::string dir = freshDir();
    const std::string s0 = makeShard(dir, "task-0", 3), s1 = makeShard(dir, "task-1", 4, run_status::kFailed);
    std::map<std::string, std::string> expected;
    for (const auto& s : {s0, s1})
        for (auto& [k, v] : runsByUuid(*RunStore::openForReading(s))) expected[k] = v;
    RunStore target(dir + "/target.sqlite");
    addRun(target, "already-here", 9);
    const MergeReport report = target.mergeShards({s0, s1}, {});
    REQUIRE(report.shards.size() == 2);
    CHECK_EQ(report.total(&ShardMergeResult::merged), 2);
    CHECK_EQ(report.broken(), 0);
    const auto merged = runsByUuid(target);
    CHECK_EQ(merged.size(), std::size_t(3));
    for (const auto& [uuid, text] : expected) {
        ROW(uuid);
        REQUIRE(merged.count(uuid) == 1);
        CHECK_EQ(merged.at(uuid), text);
    }
    // The sweep's runs join the experiment of the same uuid; none is duplicated.
    CHECK_EQ(rawCount(dir + "/target.sqlite", "SELECT count(*) FROM experiments"), 1LL);
    CHECK_EQ(target.integrityCheck(), std::string("ok"));
}

TEST_CASE(mergeTwiceAddsNothing) {
    const std::string dir = freshDir();
    const std::string s0 = makeShard(dir, "task-0", 1), s1 = makeShard(dir, "task-1", 2);
    RunStore target(dir + "/target.sqlite");
    CHECK_EQ(target.mergeShards({s0, s1}, {}).total(&ShardMergeResult::merged), 2);
    const auto before = runsByUuid(target);
    const MergeReport again = target.mergeShards({s1, s0, s1}, {});
    CHECK_EQ(again.total(&ShardMergeResult::merged), 0);
    CHECK_EQ(again.total(&ShardMergeResult::skipped), 3);
    CHECK_EQ(runsByUuid(target), before);
    CHECK_EQ(rawCount(dir + "/target.sqlite", "SELECT count(*) FROM samples"), 300LL);
}

TEST_CASE(runLeftRunningIsInterruptedThenReplacedOnceFinished) {
    const std::string dir = freshDir();
    const std::string path = dir + "/task-0.sqlite";
    std::int64_t shardRun = 0;
    {
        RunStore shard(path);
        shardRun = addRun(shard, "killed", 5, "");
    }
    RunStore target(dir + "/target.sqlite");
    const MergeReport first = target.mergeShards({path}, {});
    CHECK_EQ(first.total(&ShardMergeResult::interrupted), 1);
    auto runs = target.listRuns();
    REQUIRE(runs.size() == 1);
    const std::int64_t id = runs[0].id;
    CHECK_EQ(runs[0].status, std::string(run_status::kInterrupted));
    CHECK_EQ(target.run(id)->error, std::string(kMergedRunningError));
    CHECK(runs[0].finishedAt > 0);

    // The run was alive after all (a merge by hand while the task ran) and finished: the next merge
    // replaces the interrupted copy in place, samples not doubled.
    {
        RunStore shard(path);
        shard.setSummary(shardRun, {{"accuracy", 0.8}});
        shard.finishRun(shardRun, run_status::kDone);
    }
    const MergeReport second = target.mergeShards({path}, {});
    CHECK_EQ(second.total(&ShardMergeResult::replaced), 1);
    CHECK_EQ(second.total(&ShardMergeResult::merged), 0);
    runs = target.listRuns();
    REQUIRE(runs.size() == 1);
    CHECK_EQ(runs[0].id, id);
    CHECK_EQ(runs[0].status, std::string(run_status::kDone));
    CHECK_EQ(runs[0].summary.at("accuracy"), 0.8);
    CHECK_EQ(target.sampleCount(id), std::int64_t(150));
    // Finished on both sides now: a third merge skips it.
    CHECK_EQ(target.mergeShards({path}, {}).total(&ShardMergeResult::skipped), 1);
}

TEST_CASE(failureMidMergeLeavesTargetAsItWas) {
    const std::string dir = freshDir();
    const std::string s0 = makeShard(dir, "task-0", 1), s1 = makeShard(dir, "task-1", 2);
    RunStore target(dir + "/target.sqlite");
    addRun(target, "before", 7);
    const auto before = runsByUuid(target);
    int copied = 0;
    MergeOptions options;
    options.afterRun = [&](const std::string&, const std::string&) {
        if (++copied == 2) throw StoreError("disk gone (injected after the second run)");
    };
    const std::string error = test::errorOf<StoreError>([&] { target.mergeShards({s0, s1}, options); });
    CHECK_MSG(error.find("injected") != std::string::npos, error);
    CHECK_EQ(copied, 2);
    CHECK_EQ(runsByUuid(target), before);
    CHECK_EQ(rawCount(dir + "/target.sqlite", "SELECT count(*) FROM samples"), 150LL);
    // Nothing was half-done: the same merge without the failure merges both.
    CHECK_EQ(target.mergeShards({s0, s1}, {}).total(&ShardMergeResult::merged), 2);
}

TEST_CASE(crashMidMergeLeavesTargetAsItWas) {
    const std::string dir = freshDir();
    const std::string s0 = makeShard(dir, "task-0", 1), s1 = makeShard(dir, "task-1", 2);
    const std::string targetPath = dir + "/target.sqlite";
    { RunStore target(targetPath); addRun(target, "before", 7); }
    // The child dies by SIGKILL inside the merge's transaction, after copying one run.
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        try {
            RunStore target(targetPath);
            MergeOptions options;
            options.afterRun = [](const std::string&, const std::string&) { ::raise(SIGKILL); };
            target.mergeShards({s0, s1}, options);
        } catch (...) {
        }
        ::_exit(3);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    REQUIRE_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the child was to die by SIGKILL mid-merge");
    RunStore target(targetPath);
    CHECK_EQ(target.integrityCheck(), std::string("ok"));
    const auto runs = target.listRuns();
    REQUIRE(runs.size() == 1);
    CHECK_EQ(runs[0].name, std::string("before"));
    CHECK_EQ(rawCount(targetPath, "SELECT count(*) FROM samples"), 150LL);
    CHECK_EQ(target.mergeShards({s0, s1}, {}).total(&ShardMergeResult::merged), 2);
}

TEST_CASE(brokenShardsAreReportedAndTheRestMerged) {
    const std::string dir = freshDir();
    const std::string good0 = makeShard(dir, "task-0", 1), good1 = makeShard(dir, "task-3", 2);
    const std::string garbage = dir + "/garbage.sqlite";
    std::ofstream(garbage) << std::string(8192, 'x');
    // A real shard with its pages overwritten past the header.
    const std::string damaged = makeShard(dir, "task-1", 4);
    {
        RunStore checkpoint(damaged); // closing the last connection checkpoints the WAL into the file
    }
    {
        std::fstream f(damaged, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(100);
        const std::string junk(6000, '\x5a');
        f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    }
    const std::string foreign = dir + "/foreign.sqlite";
    rawExec(foreign, "CREATE TABLE t(x)");
    const std::string missing = dir + "/task-2.sqlite";
    RunStore target(dir + "/target.sqlite");
    const MergeReport report = target.mergeShards({good0, garbage, damaged, missing, foreign, good1}, {});
    REQUIRE(report.shards.size() == 6);
    CHECK(report.shards[0].ok());
    CHECK_EQ(report.shards[0].merged, 1);
    CHECK(!report.shards[1].ok());
    CHECK_MSG(report.shards[1].error.find(garbage) != std::string::npos, report.shards[1].error);
    CHECK(!report.shards[2].ok());
    CHECK_MSG(report.shards[2].error.find(damaged) != std::string::npos, report.shards[2].error);
    CHECK(report.shards[3].missing);
    CHECK_MSG(report.shards[4].error.find("not a Lathe run store") != std::string::npos, report.shards[4].error);
    CHECK(report.shards[5].ok());
    CHECK_EQ(report.broken(), 4);
    CHECK_EQ(report.total(&ShardMergeResult::merged), 2);
    CHECK_EQ(target.listRuns().size(), std::size_t(2));
}

TEST_CASE(tablesALaterSchemaAddsAreCarried) {
    const std::string dir = freshDir();
    const std::string shard = makeShard(dir, "task-0", 1);
    const std::string targetPath = dir + "/target.sqlite";
    { RunStore create(targetPath); }
    const std::string ddl = "CREATE TABLE run_extras(run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, "
                            "k TEXT, v BLOB)";
    rawExec(shard, ddl + "; INSERT INTO run_extras SELECT id, 'k', x'00ff' FROM runs");
    rawExec(targetPath, ddl);
    RunStore target(targetPath);
    CHECK_EQ(target.mergeShards({shard}, {}).total(&ShardMergeResult::merged), 1);
    CHECK_EQ(rawCount(targetPath, "SELECT count(*) FROM run_extras e JOIN runs r ON r.id = e.run_id "
                                  "WHERE e.v = x'00ff'"),
             1LL);

    // A shard with a column the target lacks (written by a newer Lathe) is refused, not half-copied.
    const std::string newer = makeShard(dir, "task-1", 2);
    rawExec(newer, "ALTER TABLE samples ADD COLUMN unit TEXT");
    const MergeReport report = target.mergeShards({newer}, {});
    CHECK(!report.shards[0].ok());
    CHECK_MSG(report.shards[0].error.find("unit") != std::string::npos, report.shards[0].error);
    CHECK_EQ(target.listRuns().size(), std::size_t(1));
}

MINI_TEST_MAIN()

// RunStore: every run ever made, in one SQLite file (WAL, foreign keys, forward migrations).
// One write connection per process (the engine thread); readers open it ReadOnly. Schema: docs/database.md.
// A RunStore is one connection: use it from one thread at a time; give each thread its own RunStore.
#pragma once

#include "engine/core/metrics.h"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

struct sqlite3;

namespace lathe {

// Run status vocabulary (ARCHITECTURE.md §4).
namespace run_status {
constexpr const char* kQueued = "queued";
constexpr const char* kRunning = "running";
constexpr const char* kDone = "done";
constexpr const char* kFailed = "failed";
constexpr const char* kCancelled = "cancelled";
constexpr const char* kInterrupted = "interrupted";
} // namespace run_status

struct NewRun {
    std::int64_t experimentId = 0; // 0: no experiment
    std::string name;            // plan label, e.g. "mlp-int8 [sparsity=0.5]"
    std::string model;           // zoo name or file
    std::string dataset;
    std::string device;          // "cpu", "cuda:0"
    std::string strategyChain;   // "train > prune.magnitude > quantize.int8"
    std::vector<std::string> tags;
    std::string configJson;      // the resolved plan
    std::string environmentJson;
    std::optional<std::int64_t> parentRunId;
};

struct RunRecord {
    std::int64_t id = 0;
    std::int64_t experimentId = 0;
    std::string experimentName;
    std::string name;
    std::string status;
    std::string model, dataset, device, strategyChain;
    std::vector<std::string> tags;
    double createdAt = 0;   // unix seconds
    double startedAt = 0;   // unix seconds (0: not started)
    double finishedAt = 0;  // unix seconds (0: not finished)
    std::string configJson, environmentJson, error; // JSON only from run() or RunFilter::withJson
    std::optional<std::int64_t> parentRunId;
    std::int64_t ownerPid = 0; // the process that created/started the run (0: unknown, schema v1)
    std::string ownerHost;
    std::string uuid; // stable across copies of the store (shards merged into another); schema v6
    std::map<std::string, double> summary; // NaN where the value was not a number
    std::map<std::string, std::string> notes; // only from run()
};

struct RunFilter {
    std::string text;                  // matches name, experiment, model, dataset, device, strategy chain, tags
    std::vector<std::string> statuses; // empty: any
    std::string model, device, tag;    // exact matches; empty: any
    std::int64_t limit = 0;            // 0: no limit; newest first
    bool withSummary = true;
    bool withJson = false;             // also load config_json and environment_json
};

struct LayerStat {
    std::string layer, key;
    double value = 0;
};

struct Artifact {
    std::string kind, path, sha256;
};

// One measured peak of a device (`lathe-cli bench peaks`), e.g. key "gemm_f32_gflops" or "copy_gbps".
// `device` is the name runs record as environment_json's device.name (DeviceInfo::name).
struct DevicePeak {
    std::string device, backend, key;
    double value = 0;
    double measuredAt = 0;      // unix seconds
    std::string detailJson = "{}"; // how it was measured (sizes, repeats, threads)
};

// A sweep submitted to a cluster scheduler (lathe-cli submit --slurm): its tasks write shards in
// `workdir`, a dependent job merges them into this store. `uuid` is also the experiment's uuid.
struct SubmissionRecord {
    std::int64_t id = 0;
    std::string uuid;
    std::string name;
    std::string specFile;
    std::string workdir;
    int tasks = 0;
    std::string arrayJobId, mergeJobId;
    std::string scheduler = "slurm";
    double submittedAt = 0; // unix seconds
};

struct MergeOptions;
struct MergeReport;

struct SeriesInfo {
    std::string name;
    std::int64_t samples = 0;
};

class RunStore {
public:
    enum class Mode { ReadWrite, ReadOnly };
    // Every connection waits this long for a lock before failing with "database is locked".
    static constexpr int kBusyTimeoutMs = 10000;

    // ReadWrite creates the file (and its folder) and migrates it to the current schema.
    // ReadOnly never writes: the file must exist and already have the current schema.
    // Throws StoreError naming the path and SQLite's message.
    explicit RunStore(const std::string& path, Mode mode = Mode::ReadWrite);
    ~RunStore();
    RunStore(const RunStore&) = delete;
    RunStore& operator=(const RunStore&) = delete;

    // For readers (the GUI's tables, lathe-cli runs/show/...): nullptr when the file does not exist;
    // otherwise ReadOnly, after one ReadWrite open that migrates it if its schema is older.
    static std::unique_ptr<RunStore> openForReading(const std::string& path);

    // $XDG_DATA_HOME/lathe/runs.sqlite (default ~/.local/share/lathe/runs.sqlite).
    static std::string defaultPath();
    static int currentSchemaVersion();
    // A new random (version 4) UUID, the form runs' and experiments' stable ids take.
    static std::string newUuid();
    // The SQL that brought the schema to `version`: version 1 is the original DDL, version N > 1 the
    // migration from N-1. Kept verbatim forever so old databases (and tests) can be rebuilt.
    static std::string schemaScript(int version);
    int schemaVersion() const;
    const std::string& path() const { return m_path; }
    Mode mode() const { return m_mode; }

    // Runs left `running` (or `queued`) by a process on this host that no longer exists become
    // `interrupted`. Runs owned by a live process or by another host are left alone. Returns how many.
    int recoverInterrupted();
    // The same judgement without writing, for read-only views (lathe-cli runs, show, ...): each run of
    // `runs` that recoverInterrupted would mark gets status `interrupted` and the reason as its error,
    // in memory only. Returns how many.
    int showOrphansAsInterrupted(std::vector<RunRecord>& runs) const;

    // uuid empty: a new random one. Given (the tasks of one submitted sweep share it): the experiment
    // already stored under that uuid is reused and its id returned.
    std::int64_t addExperiment(const std::string& name, const std::string& specJson, const std::string& uuid = {});
    std::optional<std::int64_t> experimentByUuid(const std::string& uuid) const;
    std::int64_t createRun(const NewRun& run); // status `queued`, owner = this process
    void startRun(std::int64_t runId);         // `running`, started_at = now, owner = this process
    void finishRun(std::int64_t runId, const std::string& status, const std::string& error = {});

    // Batched: one transaction per call.
    void appendSamples(std::span<const MetricSample> samples);
    void setSummary(std::int64_t runId, const std::map<std::string, double>& values);
    void addLayerStats(std::int64_t runId, std::span<const LayerStat> stats);
    void addArtifact(std::int64_t runId, const Artifact& artifact);
    // Notes by key (replacing a key's earlier text): how a strategy obtained its figures.
    void setNotes(std::int64_t runId, const std::map<std::string, std::string>& notes);

    // Replaces each (device, key)'s earlier value: a device's peaks are re-measured, never accumulated.
    void setDevicePeaks(std::span<const DevicePeak> peaks);
    // Every device's peaks, or one device's.
    std::vector<DevicePeak> devicePeaks(const std::string& device = {}) const;

    std::vector<RunRecord> listRuns(const RunFilter& filter = {}) const;
    std::optional<RunRecord> run(std::int64_t runId) const; // every field, JSON and summary included
    std::vector<MetricSample> samples(std::int64_t runId, const std::string& series = {}) const;
    std::vector<std::string> seriesNames(std::int64_t runId) const;
    std::vector<SeriesInfo> seriesInfo(std::int64_t runId) const; // names with sample counts
    std::int64_t sampleCount(std::int64_t runId) const;
    std::vector<LayerStat> layerStats(std::int64_t runId) const;
    std::vector<Artifact> artifacts(std::int64_t runId) const;
    std::map<std::string, std::string> notes(std::int64_t runId) const;
    std::optional<std::string> experimentSpec(std::int64_t experimentId) const;
    std::optional<std::int64_t> runByUuid(const std::string& uuid) const;

    // Submitted sweeps (newest first) and recording one; addSubmission returns its id.
    std::int64_t addSubmission(const SubmissionRecord& submission);
    std::vector<SubmissionRecord> submissions() const;

    // Copies every run of the shards (other run stores: a cluster task's own database) with everything
    // it owns into this store, in one transaction: a failure leaves this store as it was. A run already
    // here (same uuid) is skipped, except one stored `interrupted` by an earlier merge that the shard now
    // holds finished, which is replaced. A shard that cannot be read is reported, the others merged.
    // Defined in run_merge.cpp (MergeOptions and MergeReport: engine/store/run_merge.h).
    MergeReport mergeShards(const std::vector<std::string>& shardPaths, const MergeOptions& options);
    int deleteRuns(std::span<const std::int64_t> runIds); // returns how many existed

    // Changes whenever any connection commits (PRAGMA data_version, this connection's own commits,
    // max run id and run count): an opaque token for cheap polling, compared for inequality only.
    std::int64_t changeCounter() const;

    // PRAGMA integrity_check: "ok", or SQLite's list of problems.
    std::string integrityCheck() const;

private:
    class Statements;
    void open();
    void migrate();
    int readSchemaVersion() const;
    void requireWritable(const char* what) const;

    std::string m_path;
    Mode m_mode;
    sqlite3* m_db = nullptr;
    std::unique_ptr<Statements> m_statements;
    std::string m_host;
    std::int64_t m_pid = 0;
    std::int64_t m_localCommits = 0;
};

// A MetricSink that buffers samples and writes them to the store in batched transactions.
class StoreSampleWriter final : public MetricSink {
public:
    explicit StoreSampleWriter(RunStore& store, std::size_t batch = 4096);
    ~StoreSampleWriter() override; // flushes; never throws (a failure is reported on stderr)
    void push(const MetricSample& sample) override;
    void flush() override;          // throws StoreError; the unwritten samples stay pending
    std::size_t pending() const { return m_pending.size(); }

private:
    RunStore& m_store;
    std::size_t m_batch;
    std::vector<MetricSample> m_pending;
};

} // namespace lathe

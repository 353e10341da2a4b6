// RunStore: every run ever made, in one SQLite file (WAL, foreign keys, forward migrations).
// One write connection per process (the engine thread); readers open it ReadOnly. Schema: docs/database.md.
#pragma once

#include "engine/experiment/metrics.h"

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
    std::int64_t experimentId = 0;
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
    double startedAt = 0;   // unix seconds (0: not started)
    double finishedAt = 0;  // unix seconds (0: not finished)
    std::string configJson, environmentJson, error;
    std::optional<std::int64_t> parentRunId;
    std::map<std::string, double> summary;
};

struct RunFilter {
    std::string text;                  // matches name, experiment, model, strategy chain, tags
    std::vector<std::string> statuses; // empty: any
    std::string model, device, tag;
    std::int64_t limit = 0;            // 0: no limit; newest first
    bool withSummary = true;
};

struct LayerStat {
    std::string layer, key;
    double value = 0;
};

struct Artifact {
    std::string kind, path, sha256;
};

class RunStore {
public:
    enum class Mode { ReadWrite, ReadOnly };

    // ReadWrite creates the file (and its folder) and migrates it to the current schema.
    // Throws StoreError naming the path and SQLite's message.
    explicit RunStore(const std::string& path, Mode mode = Mode::ReadWrite);
    ~RunStore();
    RunStore(const RunStore&) = delete;
    RunStore& operator=(const RunStore&) = delete;

    // $XDG_DATA_HOME/lathe/runs.sqlite (default ~/.local/share/lathe/runs.sqlite).
    static std::string defaultPath();
    static int currentSchemaVersion();
    int schemaVersion() const;
    const std::string& path() const { return m_path; }

    // Runs left `running` by a process that no longer exists become `interrupted`. Returns how many.
    int recoverInterrupted();

    std::int64_t addExperiment(const std::string& name, const std::string& specJson);
    std::int64_t createRun(const NewRun& run); // status `queued`
    void startRun(std::int64_t runId);         // `running`, started_at = now, owner = this process
    void finishRun(std::int64_t runId, const std::string& status, const std::string& error = {});

    // Batched: one transaction per call.
    void appendSamples(std::span<const MetricSample> samples);
    void setSummary(std::int64_t runId, const std::map<std::string, double>& values);
    void addLayerStats(std::int64_t runId, std::span<const LayerStat> stats);
    void addArtifact(std::int64_t runId, const Artifact& artifact);

    std::vector<RunRecord> listRuns(const RunFilter& filter = {}) const;
    std::optional<RunRecord> run(std::int64_t runId) const;
    std::vector<MetricSample> samples(std::int64_t runId, const std::string& series = {}) const;
    std::vector<std::string> seriesNames(std::int64_t runId) const;
    std::vector<LayerStat> layerStats(std::int64_t runId) const;
    std::vector<Artifact> artifacts(std::int64_t runId) const;
    std::optional<std::string> experimentSpec(std::int64_t experimentId) const;
    int deleteRuns(std::span<const std::int64_t> runIds); // returns how many existed

    // Changes whenever any connection commits (PRAGMA data_version + run count): cheap polling.
    std::int64_t changeCounter() const;

private:
    std::string m_path;
    Mode m_mode;
    sqlite3* m_db = nullptr;
};

// A MetricSink that buffers samples and writes them to the store in batched transactions.
class StoreSampleWriter final : public MetricSink {
public:
    explicit StoreSampleWriter(RunStore& store, std::size_t batch = 4096);
    ~StoreSampleWriter() override; // flushes; never throws
    void push(const MetricSample& sample) override;
    void flush() override;

private:
    RunStore& m_store;
    std::size_t m_batch;
    std::vector<MetricSample> m_pending;
};

} // namespace lathe

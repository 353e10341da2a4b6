// RunStore: opening (pragmas, migrations), the write path (runs, samples, summaries) and the
// batched StoreSampleWriter. Queries live in run_store_queries.cpp.
#include "engine/store/run_store.h"

#include "engine/core/errors.h"
#include "engine/store/run_store_internal.h"

#include <nlohmann/json.hpp>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

namespace lathe {

using store_detail::Stmt;
using store_detail::WriteTransaction;

namespace store_detail {

double nowUnixSeconds() {
    using namespace std::chrono;
    return duration<double>(system_clock::now().time_since_epoch()).count();
}

std::string hostName() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
    return buf;
}

bool isValidStatus(std::string_view s) {
    for (const char* v : {run_status::kQueued, run_status::kRunning, run_status::kDone, run_status::kFailed,
                          run_status::kCancelled, run_status::kInterrupted})
        if (s == v) return true;
    return false;
}

std::string newUuid() {
    // random_device reads the kernel's generator (getrandom / /dev/urandom) on glibc.
    static thread_local std::random_device device;
    std::array<unsigned char, 16> b{};
    for (std::size_t i = 0; i < b.size(); i += 4) {
        const unsigned v = device();
        for (std::size_t k = 0; k < 4; ++k) b[i + k] = static_cast<unsigned char>(v >> (8 * k));
    }
    b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40); // version 4
    b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80); // RFC 4122 variant
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(36);
    for (std::size_t i = 0; i < b.size(); ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
        out += kHex[b[i] >> 4];
        out += kHex[b[i] & 0x0f];
    }
    return out;
}

} // namespace store_detail

using store_detail::nowUnixSeconds;

namespace {
// A view (bound SQLITE_STATIC) must point at storage that outlives the step: never a temporary.
std::string_view jsonOrEmptyObject(const std::string& json) {
    return json.empty() ? std::string_view("{}") : std::string_view(json);
}

// Why a run found `running`/`queued` cannot still be going, or "" when it may be (its owner lives,
// is this process, or is on another host where liveness cannot be told). hasOwner is false for rows
// written before schema v2 recorded owners.
std::string orphanReason(bool hasOwner, std::int64_t pid, const std::string& host, const std::string& status,
                         const std::string& thisHost) {
    if (status != run_status::kRunning && status != run_status::kQueued) return {};
    if (!hasOwner) {
        // No Lathe of that age can still be writing it; a queued one may yet be started.
        return status == run_status::kRunning ? "interrupted: found running with no recorded owner process" : "";
    }
    if (host != thisHost) return {};
    if (pid == static_cast<std::int64_t>(::getpid())) return {};
    if (pid <= 0 || (::kill(static_cast<pid_t>(pid), 0) == -1 && errno == ESRCH))
        return "interrupted: the process that owned this run (pid " + std::to_string(pid) + " on " + host +
               ") ended while it was " + status;
    return {};
}
} // namespace

RunStore::RunStore(const std::string& path, Mode mode) : m_path(path), m_mode(mode) {
    m_host = store_detail::hostName();
    m_pid = static_cast<std::int64_t>(::getpid());
    try {
        open();
    } catch (...) {
        m_statements.reset();
        if (m_db) sqlite3_close_v2(m_db);
        m_db = nullptr;
        throw;
    }
}

RunStore::~RunStore() {
    m_statements.reset();
    if (m_db) sqlite3_close_v2(m_db);
}

std::string RunStore::defaultPath() {
    namespace fs = std::filesystem;
    // XDG: a relative XDG_DATA_HOME is invalid and must be ignored.
    if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg && xdg[0] == '/')
        return (fs::path(xdg) / "lathe" / "runs.sqlite").string();
    const char* home = std::getenv("HOME");
    if (!home || !*home) {
        if (const passwd* pw = ::getpwuid(::getuid()); pw && pw->pw_dir) home = pw->pw_dir;
    }
    if (!home || !*home)
        throw StoreError("run store: cannot find a default location: neither XDG_DATA_HOME nor HOME is set "
                         "(pass --db PATH)");
    return (fs::path(home) / ".local" / "share" / "lathe" / "runs.sqlite").string();
}

std::unique_ptr<RunStore> RunStore::openForReading(const std::string& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return nullptr;
    try {
        return std::make_unique<RunStore>(path, Mode::ReadOnly);
    } catch (const StoreError& readOnlyError) {
        // An older schema needs one read-write open to migrate; anything else is reported as it was.
        try {
            { RunStore migrate(path, Mode::ReadWrite); }
            return std::make_unique<RunStore>(path, Mode::ReadOnly);
        } catch (const StoreError&) {
            throw readOnlyError;
        }
    }
}

void RunStore::open() {
    namespace fs = std::filesystem;
    if (m_path.empty()) throw StoreError("run store: empty database path");
    std::error_code ec;
    if (m_mode == Mode::ReadOnly) {
        if (!fs::exists(m_path, ec)) throw StoreError("run store " + m_path + ": no such file (nothing stored yet?)");
    } else if (const fs::path parent = fs::path(m_path).parent_path(); !parent.empty()) {
        fs::create_directories(parent, ec);
        if (ec) throw StoreError("run store " + m_path + ": cannot create folder " + parent.string() + ": " + ec.message());
    }

    // NOMUTEX: a RunStore is one thread's connection (its statement cache is not shared either).
    const int flags = SQLITE_OPEN_NOMUTEX |
                      (m_mode == Mode::ReadOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
    const int rc = sqlite3_open_v2(m_path.c_str(), &m_db, flags, nullptr);
    if (rc != SQLITE_OK) store_detail::throwError(m_db, rc, m_path, "opening");
    sqlite3_extended_result_codes(m_db, 1);
    // Set before anything else touches the file: every lock below waits instead of failing.
    sqlite3_busy_timeout(m_db, kBusyTimeoutMs);
    m_statements = std::make_unique<Statements>(m_db, m_path);

    if (m_mode == Mode::ReadWrite) {
        auto st = m_statements->get("PRAGMA journal_mode=WAL");
        const std::string journal = st.step() ? st.text(0) : std::string();
        if (journal != "wal")
            throw StoreError("run store " + m_path + ": cannot switch to WAL mode (journal_mode is \"" + journal +
                             "\"; is it on a network filesystem?)");
    }
    store_detail::exec(m_db, m_path,
                       "PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-16384; "
                       "PRAGMA temp_store=MEMORY",
                       "setting connection pragmas");

    if (m_mode == Mode::ReadWrite) {
        migrate();
        return;
    }
    const int version = readSchemaVersion();
    if (version < currentSchemaVersion())
        throw StoreError("run store " + m_path + ": schema version " + std::to_string(version) + " is older than " +
                         std::to_string(currentSchemaVersion()) +
                         "; open it read-write once (any lathe-cli command that writes) to migrate it");
}

int RunStore::readSchemaVersion() const {
    auto tables = m_statements->get(
        "SELECT count(*), coalesce(sum(name = 'schema_version'), 0) FROM sqlite_master WHERE type = 'table'");
    tables.step();
    const std::int64_t tableCount = tables.integer(0);
    const bool hasVersionTable = tables.integer(1) > 0;
    if (!hasVersionTable) {
        if (tableCount > 0)
            throw StoreError("run store " + m_path + ": not a Lathe run store (it has tables but no schema_version)");
        return 0;
    }
    auto st = m_statements->get("SELECT coalesce(max(version), 0) FROM schema_version");
    st.step();
    const int version = static_cast<int>(st.integer(0));
    if (version > currentSchemaVersion())
        throw StoreError("run store " + m_path + ": schema version " + std::to_string(version) +
                         " was written by a newer Lathe (this one knows up to " +
                         std::to_string(currentSchemaVersion()) + ")");
    return version;
}

void RunStore::migrate() {
    if (readSchemaVersion() == currentSchemaVersion()) return;
    WriteTransaction txn(m_db, m_path, "migrating the schema");
    const int from = readSchemaVersion(); // another process may have migrated while we waited
    for (int v = from + 1; v <= currentSchemaVersion(); ++v)
        store_detail::exec(m_db, m_path, schemaScript(v), "migrating the schema to version " + std::to_string(v));
    txn.commit();
    ++m_localCommits;
}

int RunStore::schemaVersion() const { return readSchemaVersion(); }

void RunStore::requireWritable(const char* what) const {
    if (m_mode == Mode::ReadOnly)
        throw StoreError("run store " + m_path + ": " + what + ": the store was opened read-only");
}

std::int64_t RunStore::addExperiment(const std::string& name, const std::string& specJson, const std::string& uuid) {
    requireWritable("adding an experiment");
    WriteTransaction txn(m_db, m_path, "adding an experiment");
    if (!uuid.empty()) {
        auto find = m_statements->get("SELECT id FROM experiments WHERE uuid = ?");
        find.bind(1, std::string_view(uuid));
        if (find.step()) return find.integer(0); // the transaction rolls back: nothing was written
    }
    const std::string id = uuid.empty() ? store_detail::newUuid() : uuid;
    auto st = m_statements->get("INSERT INTO experiments(name, spec_json, created_at, uuid) VALUES (?, ?, ?, ?)");
    st.bind(1, std::string_view(name)).bind(2, jsonOrEmptyObject(specJson));
    st.bind(3, nowUnixSeconds()).bind(4, std::string_view(id)).run();
    const std::int64_t rowId = sqlite3_last_insert_rowid(m_db);
    txn.commit();
    ++m_localCommits;
    return rowId;
}

std::int64_t RunStore::createRun(const NewRun& run) {
    requireWritable("creating a run");
    const std::string tags = nlohmann::json(run.tags).dump();
    WriteTransaction txn(m_db, m_path, "creating a run");
    auto st = m_statements->get(
        "INSERT INTO runs(experiment_id, name, status, model, dataset, device, strategy_chain, tags, created_at, "
        "config_json, environment_json, parent_run_id, owner_pid, owner_host, uuid) "
        "VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (run.experimentId > 0) st.bind(1, run.experimentId);
    else st.bindNull(1);
    st.bind(2, std::string_view(run.name)).bind(3, std::string_view(run.model));
    st.bind(4, std::string_view(run.dataset)).bind(5, std::string_view(run.device));
    st.bind(6, std::string_view(run.strategyChain)).bind(7, std::string_view(tags));
    st.bind(8, nowUnixSeconds());
    st.bind(9, jsonOrEmptyObject(run.configJson));
    st.bind(10, jsonOrEmptyObject(run.environmentJson));
    if (run.parentRunId) st.bind(11, *run.parentRunId);
    else st.bindNull(11);
    st.bind(12, static_cast<std::int64_t>(::getpid())).bind(13, std::string_view(m_host));
    const std::string uuid = store_detail::newUuid();
    st.bind(14, std::string_view(uuid));
    st.run();
    const std::int64_t id = sqlite3_last_insert_rowid(m_db);
    txn.commit();
    ++m_localCommits;
    return id;
}

void RunStore::startRun(std::int64_t runId) {
    requireWritable("starting a run");
    WriteTransaction txn(m_db, m_path, "starting run " + std::to_string(runId));
    auto st = m_statements->get(
        "UPDATE runs SET status = 'running', started_at = ?, finished_at = NULL, owner_pid = ?, owner_host = ? "
        "WHERE id = ?");
    st.bind(1, nowUnixSeconds()).bind(2, static_cast<std::int64_t>(::getpid())).bind(3, std::string_view(m_host));
    st.bind(4, runId).run();
    if (sqlite3_changes(m_db) == 0) throw StoreError("run store " + m_path + ": no run " + std::to_string(runId));
    txn.commit();
    ++m_localCommits;
}

void RunStore::finishRun(std::int64_t runId, const std::string& status, const std::string& error) {
    requireWritable("finishing a run");
    if (!store_detail::isValidStatus(status))
        throw StoreError("run store " + m_path + ": finishing run " + std::to_string(runId) + ": unknown status \"" +
                         status + "\"");
    WriteTransaction txn(m_db, m_path, "finishing run " + std::to_string(runId));
    auto st = m_statements->get("UPDATE runs SET status = ?, finished_at = ?, error = ? WHERE id = ?");
    st.bind(1, std::string_view(status)).bind(2, nowUnixSeconds()).bind(3, std::string_view(error));
    st.bind(4, runId).run();
    if (sqlite3_changes(m_db) == 0) throw StoreError("run store " + m_path + ": no run " + std::to_string(runId));
    txn.commit();
    ++m_localCommits;
}

void RunStore::appendSamples(std::span<const MetricSample> samples) {
    if (samples.empty()) return;
    requireWritable("appending samples");
    // Multi-row INSERTs: one statement execution per kRowsPerInsert samples instead of per sample
    // cuts the per-statement cost (cursor open/close, foreign-key setup) that dominates small rows.
    constexpr std::size_t kRowsPerInsert = 64;
    static const std::string kManySql = [] {
        std::string sql = "INSERT INTO samples(run_id, series, step, t_ms, value) VALUES ";
        for (std::size_t i = 0; i < kRowsPerInsert; ++i) sql += i ? ",(?,?,?,?,?)" : "(?,?,?,?,?)";
        return sql;
    }();
    WriteTransaction txn(m_db, m_path, "appending samples");
    std::size_t i = 0;
    if (samples.size() >= kRowsPerInsert) {
        auto many = m_statements->get(kManySql);
        for (; i + kRowsPerInsert <= samples.size(); i += kRowsPerInsert) {
            for (std::size_t k = 0; k < kRowsPerInsert; ++k) {
                const MetricSample& s = samples[i + k];
                const int p = static_cast<int>(k * 5);
                many.bind(p + 1, s.runId).bind(p + 2, s.seriesName()).bind(p + 3, s.step);
                many.bind(p + 4, s.tMs).bind(p + 5, s.value);
            }
            many.run();
        }
    }
    if (i < samples.size()) {
        auto one = m_statements->get("INSERT INTO samples(run_id, series, step, t_ms, value) VALUES (?, ?, ?, ?, ?)");
        for (; i < samples.size(); ++i) {
            const MetricSample& s = samples[i];
            one.bind(1, s.runId).bind(2, s.seriesName()).bind(3, s.step).bind(4, s.tMs).bind(5, s.value);
            one.run();
        }
    }
    txn.commit();
    ++m_localCommits;
}

void RunStore::setSummary(std::int64_t runId, const std::map<std::string, double>& values) {
    if (values.empty()) return;
    requireWritable("writing a summary");
    WriteTransaction txn(m_db, m_path, "writing the summary of run " + std::to_string(runId));
    auto st = m_statements->get("INSERT INTO summaries(run_id, key, value) VALUES (?, ?, ?) "
                                "ON CONFLICT(run_id, key) DO UPDATE SET value = excluded.value");
    for (const auto& [key, value] : values) {
        st.bind(1, runId).bind(2, std::string_view(key)).bind(3, value);
        st.run();
    }
    txn.commit();
    ++m_localCommits;
}

void RunStore::addLayerStats(std::int64_t runId, std::span<const LayerStat> stats) {
    if (stats.empty()) return;
    requireWritable("writing layer stats");
    WriteTransaction txn(m_db, m_path, "writing layer stats of run " + std::to_string(runId));
    auto st = m_statements->get("INSERT OR REPLACE INTO layer_stats(run_id, layer, key, value) VALUES (?, ?, ?, ?)");
    for (const LayerStat& s : stats) {
        st.bind(1, runId).bind(2, std::string_view(s.layer)).bind(3, std::string_view(s.key)).bind(4, s.value);
        st.run();
    }
    txn.commit();
    ++m_localCommits;
}

void RunStore::setNotes(std::int64_t runId, const std::map<std::string, std::string>& notes) {
    if (notes.empty()) return;
    requireWritable("writing notes");
    WriteTransaction txn(m_db, m_path, "writing the notes of run " + std::to_string(runId));
    auto st = m_statements->get("INSERT INTO run_notes(run_id, key, value) VALUES (?, ?, ?) "
                                "ON CONFLICT(run_id, key) DO UPDATE SET value = excluded.value");
    for (const auto& [key, value] : notes) {
        st.bind(1, runId).bind(2, std::string_view(key)).bind(3, std::string_view(value));
        st.run();
    }
    txn.commit();
    ++m_localCommits;
}

void RunStore::setDevicePeaks(std::span<const DevicePeak> peaks) {
    if (peaks.empty()) return;
    requireWritable("writing device peaks");
    WriteTransaction txn(m_db, m_path, "writing the peaks of device " + peaks.front().device);
    auto st = m_statements->get(
        "INSERT INTO device_peaks(device, backend, key, value, measured_at, detail_json) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(device, key) DO UPDATE SET backend = excluded.backend, value = excluded.value, "
        "measured_at = excluded.measured_at, detail_json = excluded.detail_json");
    for (const DevicePeak& p : peaks) {
        st.bind(1, std::string_view(p.device)).bind(2, std::string_view(p.backend)).bind(3, std::string_view(p.key));
        st.bind(4, p.value).bind(5, p.measuredAt).bind(6, std::string_view(p.detailJson));
        st.run();
    }
    txn.commit();
    ++m_localCommits;
}

void RunStore::addArtifact(std::int64_t runId, const Artifact& artifact) {
    requireWritable("adding an artifact");
    WriteTransaction txn(m_db, m_path, "adding an artifact to run " + std::to_string(runId));
    auto st = m_statements->get("INSERT INTO artifacts(run_id, kind, path, sha256) VALUES (?, ?, ?, ?)");
    st.bind(1, runId).bind(2, std::string_view(artifact.kind)).bind(3, std::string_view(artifact.path));
    st.bind(4, std::string_view(artifact.sha256)).run();
    txn.commit();
    ++m_localCommits;
}

int RunStore::deleteRuns(std::span<const std::int64_t> runIds) {
    if (runIds.empty()) return 0;
    requireWritable("deleting runs");
    WriteTransaction txn(m_db, m_path, "deleting runs");
    auto st = m_statements->get("DELETE FROM runs WHERE id = ?");
    int deleted = 0;
    for (std::int64_t id : runIds) {
        st.bind(1, id).run();
        deleted += sqlite3_changes(m_db);
    }
    txn.commit();
    ++m_localCommits;
    return deleted;
}

int RunStore::recoverInterrupted() {
    requireWritable("recovering interrupted runs");
    struct Candidate {
        std::int64_t id;
        std::string error;
    };
    std::vector<Candidate> dead;
    {
        auto st = m_statements->get(
            "SELECT id, owner_pid, owner_host, status FROM runs WHERE status IN ('running', 'queued')");
        while (st.step()) {
            // The NULL test first: reading a NULL as an integer converts it (sqlite3_column_type).
            const bool hasOwner = !st.isNull(1);
            const std::int64_t pid = st.integer(1);
            std::string why = orphanReason(hasOwner, pid, st.text(2), st.text(3), m_host);
            if (!why.empty()) dead.push_back({st.integer(0), std::move(why)});
        }
    }
    if (dead.empty()) return 0;
    WriteTransaction txn(m_db, m_path, "marking interrupted runs");
    auto st = m_statements->get("UPDATE runs SET status = 'interrupted', finished_at = ?, error = ? "
                                "WHERE id = ? AND status IN ('running', 'queued')");
    int marked = 0;
    for (const auto& c : dead) {
        st.bind(1, nowUnixSeconds()).bind(2, std::string_view(c.error)).bind(3, c.id).run();
        marked += sqlite3_changes(m_db);
    }
    txn.commit();
    ++m_localCommits;
    return marked;
}

int RunStore::showOrphansAsInterrupted(std::vector<RunRecord>& runs) const {
    int shown = 0;
    for (RunRecord& r : runs) {
        // RunRecord::ownerPid is 0 where the row has none (schema v1).
        std::string why = orphanReason(r.ownerPid != 0, r.ownerPid, r.ownerHost, r.status, m_host);
        if (why.empty()) continue;
        r.status = run_status::kInterrupted;
        r.error = std::move(why);
        ++shown;
    }
    return shown;
}

StoreSampleWriter::StoreSampleWriter(RunStore& store, std::size_t batch)
    : m_store(store), m_batch(batch == 0 ? 1 : batch) {
    m_pending.reserve(m_batch);
}

StoreSampleWriter::~StoreSampleWriter() {
    try {
        flush();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "lathe: %zu samples were not stored: %s\n", m_pending.size(), e.what());
    }
}

void StoreSampleWriter::push(const MetricSample& sample) {
    m_pending.push_back(sample);
    if (m_pending.size() >= m_batch) flush();
}

void StoreSampleWriter::flush() {
    if (m_pending.empty()) return;
    m_store.appendSamples(m_pending);
    m_pending.clear();
}

} // namespace lathe

// RunStore queries: listing and filtering runs, one run with everything, samples, layer stats,
// artifacts, and the cheap change token the GUI polls.
#include "engine/core/errors.h"
#include "engine/store/run_store.h"
#include "engine/store/run_store_internal.h"

#include <nlohmann/json.hpp>

#include <unordered_map>

namespace lathe {

using store_detail::ReadTransaction;
using store_detail::StatementCache;
using store_detail::Stmt;

namespace {

constexpr const char* kRunColumns =
    "SELECT r.id, coalesce(r.experiment_id, 0), coalesce(e.name, ''), r.name, r.status, r.model, r.dataset, "
    "r.device, r.strategy_chain, r.tags, r.created_at, r.started_at, r.finished_at, r.error, r.parent_run_id, "
    "r.owner_pid, r.owner_host, coalesce(r.uuid, '')";
constexpr const char* kRunJsonColumns = ", r.config_json, r.environment_json";
constexpr const char* kRunFrom = " FROM runs r LEFT JOIN experiments e ON e.id = r.experiment_id";

std::vector<std::string> parseTags(const std::string& text) {
    std::vector<std::string> tags;
    if (text.empty() || text == "[]") return tags;
    const auto doc = nlohmann::json::parse(text, nullptr, false);
    if (!doc.is_array()) return tags;
    for (const auto& t : doc)
        if (t.is_string()) tags.push_back(t.get<std::string>());
    return tags;
}

RunRecord readRun(const Stmt& st, bool withJson) {
    RunRecord r;
    r.id = st.integer(0);
    r.experimentId = st.integer(1);
    r.experimentName = st.text(2);
    r.name = st.text(3);
    r.status = st.text(4);
    r.model = st.text(5);
    r.dataset = st.text(6);
    r.device = st.text(7);
    r.strategyChain = st.text(8);
    r.tags = parseTags(st.text(9));
    r.createdAt = st.isNull(10) ? 0 : st.real(10);
    r.startedAt = st.isNull(11) ? 0 : st.real(11);
    r.finishedAt = st.isNull(12) ? 0 : st.real(12);
    r.error = st.text(13);
    if (!st.isNull(14)) r.parentRunId = st.integer(14);
    r.ownerPid = st.isNull(15) ? 0 : st.integer(15);
    r.ownerHost = st.text(16);
    r.uuid = st.text(17);
    if (withJson) {
        r.configJson = st.text(18);
        r.environmentJson = st.text(19);
    }
    return r;
}

void loadSummaries(StatementCache& statements, std::vector<RunRecord>& runs) {
    if (runs.empty()) return;
    // Few runs: one indexed lookup each. Many: one range scan over the summaries' primary key.
    if (runs.size() <= 256) {
        for (auto& r : runs) {
            auto st = statements.get("SELECT key, value FROM summaries WHERE run_id = ?");
            st.bind(1, r.id);
            while (st.step()) r.summary.emplace(st.text(0), st.real(1));
        }
        return;
    }
    std::unordered_map<std::int64_t, RunRecord*> byId;
    byId.reserve(runs.size());
    std::int64_t lo = runs.front().id, hi = runs.front().id;
    for (auto& r : runs) {
        byId.emplace(r.id, &r);
        lo = std::min(lo, r.id);
        hi = std::max(hi, r.id);
    }
    auto st = statements.get("SELECT run_id, key, value FROM summaries WHERE run_id BETWEEN ? AND ?");
    st.bind(1, lo).bind(2, hi);
    while (st.step()) {
        auto it = byId.find(st.integer(0));
        if (it != byId.end()) it->second->summary.emplace(st.text(1), st.real(2));
    }
}

// LIKE pattern matching `text` literally anywhere.
std::string containsPattern(const std::string& text) {
    std::string p = "%";
    for (char c : text) {
        if (c == '%' || c == '_' || c == '\\') p += '\\';
        p += c;
    }
    return p + "%";
}

} // namespace

std::vector<RunRecord> RunStore::listRuns(const RunFilter& filter) const {
    std::string sql = kRunColumns;
    if (filter.withJson) sql += kRunJsonColumns;
    sql += kRunFrom;
    sql += " WHERE 1";
    if (!filter.text.empty())
        sql += " AND (r.name LIKE ?1 ESCAPE '\\' OR e.name LIKE ?1 ESCAPE '\\' OR r.model LIKE ?1 ESCAPE '\\' "
               "OR r.dataset LIKE ?1 ESCAPE '\\' OR r.device LIKE ?1 ESCAPE '\\' "
               "OR r.strategy_chain LIKE ?1 ESCAPE '\\' OR r.tags LIKE ?1 ESCAPE '\\')";
    if (!filter.statuses.empty()) {
        sql += " AND r.status IN (";
        for (std::size_t i = 0; i < filter.statuses.size(); ++i)
            sql += (i ? ", ?" : "?") + std::to_string(10 + i);
        sql += ")";
    }
    if (!filter.model.empty()) sql += " AND r.model = ?2";
    if (!filter.device.empty()) sql += " AND r.device = ?3";
    if (!filter.tag.empty()) sql += " AND EXISTS (SELECT 1 FROM json_each(r.tags) WHERE json_each.value = ?4)";
    sql += " ORDER BY r.id DESC";
    if (filter.limit > 0) sql += " LIMIT ?5";

    ReadTransaction read(m_db, m_path);
    std::vector<RunRecord> runs;
    {
        auto st = m_statements->get(sql);
        const std::string pattern = containsPattern(filter.text);
        if (!filter.text.empty()) st.bind(1, std::string_view(pattern));
        for (std::size_t i = 0; i < filter.statuses.size(); ++i)
            st.bind(10 + static_cast<int>(i), std::string_view(filter.statuses[i]));
        if (!filter.model.empty()) st.bind(2, std::string_view(filter.model));
        if (!filter.device.empty()) st.bind(3, std::string_view(filter.device));
        if (!filter.tag.empty()) st.bind(4, std::string_view(filter.tag));
        if (filter.limit > 0) st.bind(5, filter.limit);
        while (st.step()) runs.push_back(readRun(st, filter.withJson));
    }
    if (filter.withSummary) loadSummaries(*m_statements, runs);
    return runs;
}

std::optional<RunRecord> RunStore::run(std::int64_t runId) const {
    ReadTransaction read(m_db, m_path);
    std::vector<RunRecord> runs;
    {
        auto st = m_statements->get(std::string(kRunColumns) + kRunJsonColumns + kRunFrom + " WHERE r.id = ?");
        st.bind(1, runId);
        if (!st.step()) return std::nullopt;
        runs.push_back(readRun(st, true));
    }
    loadSummaries(*m_statements, runs);
    runs.front().notes = notes(runId);
    return std::move(runs.front());
}

std::vector<MetricSample> RunStore::samples(std::int64_t runId, const std::string& series) const {
    std::vector<MetricSample> out;
    auto st = series.empty()
                  ? m_statements->get("SELECT series, step, t_ms, value FROM samples WHERE run_id = ?1 "
                                      "ORDER BY series, step, rowid")
                  : m_statements->get("SELECT series, step, t_ms, value FROM samples WHERE run_id = ?1 "
                                      "AND series = ?2 ORDER BY step, rowid");
    st.bind(1, runId);
    if (!series.empty()) st.bind(2, std::string_view(series));
    while (st.step()) {
        MetricSample s;
        s.runId = runId;
        const char* name = st.textPtr(0);
        s.setSeries(name ? name : "");
        s.step = st.integer(1);
        s.tMs = st.real(2);
        s.value = st.real(3);
        out.push_back(s);
    }
    return out;
}

std::vector<std::string> RunStore::seriesNames(std::int64_t runId) const {
    std::vector<std::string> out;
    for (auto& s : seriesInfo(runId)) out.push_back(std::move(s.name));
    return out;
}

std::vector<SeriesInfo> RunStore::seriesInfo(std::int64_t runId) const {
    std::vector<SeriesInfo> out;
    auto st = m_statements->get("SELECT series, count(*) FROM samples WHERE run_id = ? GROUP BY series ORDER BY series");
    st.bind(1, runId);
    while (st.step()) out.push_back({st.text(0), st.integer(1)});
    return out;
}

std::int64_t RunStore::sampleCount(std::int64_t runId) const {
    auto st = m_statements->get("SELECT count(*) FROM samples WHERE run_id = ?");
    st.bind(1, runId);
    st.step();
    return st.integer(0);
}

std::vector<LayerStat> RunStore::layerStats(std::int64_t runId) const {
    std::vector<LayerStat> out;
    auto st = m_statements->get("SELECT layer, key, value FROM layer_stats WHERE run_id = ? ORDER BY layer, key");
    st.bind(1, runId);
    while (st.step()) out.push_back({st.text(0), st.text(1), st.real(2)});
    return out;
}

std::vector<Artifact> RunStore::artifacts(std::int64_t runId) const {
    std::vector<Artifact> out;
    auto st = m_statements->get("SELECT kind, path, sha256 FROM artifacts WHERE run_id = ? ORDER BY id");
    st.bind(1, runId);
    while (st.step()) out.push_back({st.text(0), st.text(1), st.text(2)});
    return out;
}

std::map<std::string, std::string> RunStore::notes(std::int64_t runId) const {
    std::map<std::string, std::string> out;
    auto st = m_statements->get("SELECT key, value FROM run_notes WHERE run_id = ?");
    st.bind(1, runId);
    while (st.step()) out.emplace(st.text(0), st.text(1));
    return out;
}

std::vector<DevicePeak> RunStore::devicePeaks(const std::string& device) const {
    std::vector<DevicePeak> out;
    auto st = m_statements->get(
        "SELECT device, backend, key, value, measured_at, detail_json FROM device_peaks "
        "WHERE ?1 = '' OR device = ?1 ORDER BY device, key");
    st.bind(1, std::string_view(device));
    while (st.step()) out.push_back({st.text(0), st.text(1), st.text(2), st.real(3), st.real(4), st.text(5)});
    return out;
}

std::optional<std::string> RunStore::experimentSpec(std::int64_t experimentId) const {
    auto st = m_statements->get("SELECT spec_json FROM experiments WHERE id = ?");
    st.bind(1, experimentId);
    if (!st.step()) return std::nullopt;
    return st.text(0);
}

std::int64_t RunStore::changeCounter() const {
    std::int64_t dataVersion = 0, maxId = 0, count = 0;
    {
        auto st = m_statements->get("PRAGMA data_version");
        if (st.step()) dataVersion = st.integer(0);
    }
    {
        auto st = m_statements->get("SELECT coalesce(max(id), 0), count(*) FROM runs");
        if (st.step()) {
            maxId = st.integer(0);
            count = st.integer(1);
        }
    }
    // data_version moves on other connections' commits, m_localCommits on ours; the run numbers
    // catch a delete-and-recreate between two polls. Mixed with unsigned wrap-around.
    std::uint64_t h = static_cast<std::uint64_t>(dataVersion);
    for (std::int64_t v : {m_localCommits, maxId, count}) h = h * 1000003u + static_cast<std::uint64_t>(v);
    return static_cast<std::int64_t>(h);
}

std::string RunStore::integrityCheck() const {
    std::string result;
    auto st = m_statements->get("PRAGMA integrity_check");
    while (st.step()) {
        if (!result.empty()) result += '\n';
        result += st.text(0);
    }
    return result;
}

} // namespace lathe

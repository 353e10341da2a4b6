// RunStore::mergeShards: copies runs, with every row a run owns, from other run stores into this one.
// Tables a run owns are found from the shard's schema (every table with a foreign key to runs), so a
// table a later schema adds is carried without a change here. Runs are recognised by their uuid.
#include "engine/store/run_merge.h"

#include "engine/core/errors.h"
#include "engine/store/run_store_internal.h"

#include <filesystem>
#include <map>
#include <set>

namespace lathe {

namespace {

// A failure reading the shard: that shard is reported broken and the others are still merged.
// Any other error (writing the target) aborts the whole merge.
class ShardReadError : public StoreError {
public:
    using StoreError::StoreError;
};

[[noreturn]] void shardFail(sqlite3* db, int rc, const std::string& path, std::string_view what) {
    try {
        store_detail::throwError(db, rc, path, what);
    } catch (const StoreError& e) {
        throw ShardReadError(e.what());
    }
}

// A raw prepared statement for the generic copies (sqlite3_bind_value needs the handle). Errors name
// the shard as broken (fromShard) or abort the merge (the target).
class Raw {
public:
    Raw(sqlite3* db, const std::string& path, const std::string& sql, bool fromShard)
        : m_db(db), m_path(path), m_shard(fromShard) {
        const int rc = sqlite3_prepare_v2(db, sql.c_str(), static_cast<int>(sql.size()), &m_stmt, nullptr);
        if (rc != SQLITE_OK) fail(rc, "preparing \"" + sql.substr(0, 60) + "\"");
    }
    ~Raw() { sqlite3_finalize(m_stmt); }
    Raw(const Raw&) = delete;
    Raw& operator=(const Raw&) = delete;

    sqlite3_stmt* get() const { return m_stmt; }
    bool step() {
        const int rc = sqlite3_step(m_stmt);
        if (rc == SQLITE_ROW) return true;
        if (rc == SQLITE_DONE) return false;
        const char* sql = sqlite3_sql(m_stmt);
        fail(rc, "running \"" + std::string(sql ? sql : "?").substr(0, 60) + "\"");
    }
    void run() {
        while (step()) {
        }
        sqlite3_reset(m_stmt);
    }
    void reset() {
        sqlite3_reset(m_stmt);
        sqlite3_clear_bindings(m_stmt);
    }
    void bind(int i, std::int64_t v) { check(sqlite3_bind_int64(m_stmt, i, v)); }
    void bindNull(int i) { check(sqlite3_bind_null(m_stmt, i)); }
    void bindText(int i, const std::string& v) {
        check(sqlite3_bind_text(m_stmt, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    }
    void bindReal(int i, double v) { check(sqlite3_bind_double(m_stmt, i, v)); }
    void bindValue(int i, sqlite3_value* v) { check(sqlite3_bind_value(m_stmt, i, v)); }
    std::string text(int c) const {
        const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(m_stmt, c));
        return p ? std::string(p) : std::string();
    }

private:
    [[noreturn]] void fail(int rc, const std::string& what) {
        if (m_shard) shardFail(m_db, rc, m_path, what);
        store_detail::throwError(m_db, rc, m_path, what);
    }
    void check(int rc) {
        if (rc != SQLITE_OK) fail(rc, "binding a parameter");
    }
    sqlite3* m_db;
    const std::string& m_path;
    bool m_shard;
    sqlite3_stmt* m_stmt = nullptr;
};

struct Column {
    std::string name;
    bool rowidAlias = false; // INTEGER PRIMARY KEY: the target numbers its own rows
};

std::vector<Column> columnsOf(sqlite3* db, const std::string& path, const std::string& table, bool fromShard) {
    std::vector<Column> cols;
    Raw st(db, path, "SELECT name, type, pk, (SELECT count(*) FROM pragma_table_info(?1) WHERE pk > 0) "
                     "FROM pragma_table_info(?1) ORDER BY cid", fromShard);
    st.bindText(1, table);
    while (st.step()) {
        Column c{st.text(0)};
        std::string type = st.text(1);
        for (char& ch : type) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        c.rowidAlias = sqlite3_column_int(st.get(), 2) == 1 && sqlite3_column_int(st.get(), 3) == 1 && type == "INTEGER";
        cols.push_back(std::move(c));
    }
    return cols;
}

std::string ident(const std::string& name) {
    std::string q = "\"";
    for (char c : name) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
}

// A table whose rows belong to a run (a foreign key to runs), as the shard and the target both have it.
struct OwnedTable {
    std::string name;
    std::string runColumn;
    std::vector<std::string> columns; // copied as they are, the run column and rowid aliases excluded
    bool hasRowid = true;             // false for WITHOUT ROWID tables (ordered by their key)
};

bool tableHasRowid(sqlite3* db, const std::string& table) {
    sqlite3_stmt* st = nullptr;
    const std::string sql = "SELECT rowid FROM " + ident(table) + " LIMIT 0";
    const bool ok = sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK;
    sqlite3_finalize(st);
    return ok;
}

bool isFinished(const std::string& status) {
    return status == run_status::kDone || status == run_status::kFailed || status == run_status::kCancelled;
}

// One shard's copy, inside the target's transaction.
class ShardCopy {
public:
    ShardCopy(sqlite3* target, const std::string& targetPath, sqlite3* shard, const std::string& shardPath,
              ShardMergeResult& result, const MergeOptions& options)
        : m_dst(target), m_dstPath(targetPath), m_src(shard), m_srcPath(shardPath), m_result(result),
          m_options(options) {}

    void run() {
        discoverTables();
        const std::vector<std::string> runCols = copiedColumns("runs");

        std::string select = "SELECT id, uuid, status, experiment_id, parent_run_id";
        for (const auto& c : runCols) select += ", " + ident(c);
        Raw runs(m_src, m_srcPath, select + " FROM runs ORDER BY id", true);
        const int base = 5;
        while (runs.step()) {
            sqlite3_stmt* row = runs.get();
            const std::int64_t shardId = sqlite3_column_int64(row, 0);
            const std::string uuid = runs.text(1);
            const std::string status = runs.text(2);
            if (uuid.empty())
                throw ShardReadError("run store " + m_srcPath + ": run " + std::to_string(shardId) +
                                     " has no uuid, so a merge could not recognise it later");
            std::optional<std::int64_t> existing;
            std::string existingStatus;
            {
                Raw find(m_dst, m_dstPath, "SELECT id, status FROM runs WHERE uuid = ?", false);
                find.bindText(1, uuid);
                if (find.step()) {
                    existing = sqlite3_column_int64(find.get(), 0);
                    existingStatus = find.text(1);
                }
            }
            const bool replace = existing && existingStatus == run_status::kInterrupted && isFinished(status);
            if (existing && !replace) {
                ++m_result.skipped;
                m_shardToTarget[shardId] = *existing;
                continue;
            }
            const bool stillRunning = status == run_status::kRunning || status == run_status::kQueued;

            // Values for every copied column: the row's own, except the ids that are renumbered here
            // and the status of a run its task left running.
            std::vector<std::string> names;
            std::vector<std::function<void(Raw&, int)>> binders;
            for (std::size_t i = 0; i < runCols.size(); ++i) {
                const std::string& name = runCols[i];
                const int col = base + static_cast<int>(i);
                names.push_back(name);
                if (name == "experiment_id") {
                    const auto exp = sqlite3_column_type(row, 3) == SQLITE_NULL
                                         ? std::optional<std::int64_t>()
                                         : std::optional<std::int64_t>(mapExperiment(sqlite3_column_int64(row, 3)));
                    binders.push_back([exp](Raw& st, int p) { exp ? st.bind(p, *exp) : st.bindNull(p); });
                } else if (name == "parent_run_id") {
                    std::optional<std::int64_t> parent;
                    if (sqlite3_column_type(row, 4) != SQLITE_NULL) {
                        auto it = m_shardToTarget.find(sqlite3_column_int64(row, 4));
                        if (it != m_shardToTarget.end()) parent = it->second;
                    }
                    binders.push_back([parent](Raw& st, int p) { parent ? st.bind(p, *parent) : st.bindNull(p); });
                } else if (stillRunning && name == "status") {
                    binders.push_back([](Raw& st, int p) { st.bindText(p, run_status::kInterrupted); });
                } else if (stillRunning && name == "error") {
                    binders.push_back([](Raw& st, int p) { st.bindText(p, kMergedRunningError); });
                } else if (stillRunning && name == "finished_at") {
                    binders.push_back([](Raw& st, int p) { st.bindReal(p, store_detail::nowUnixSeconds()); });
                } else {
                    binders.push_back([row, col](Raw& st, int p) { st.bindValue(p, sqlite3_column_value(row, col)); });
                }
            }

            std::int64_t targetId = 0;
            if (replace) {
                targetId = *existing;
                std::string sql = "UPDATE runs SET ";
                for (std::size_t i = 0; i < names.size(); ++i) sql += (i ? ", " : "") + ident(names[i]) + " = ?";
                Raw update(m_dst, m_dstPath, sql + " WHERE id = ?", false);
                for (std::size_t i = 0; i < binders.size(); ++i) binders[i](update, static_cast<int>(i) + 1);
                update.bind(static_cast<int>(binders.size()) + 1, targetId);
                update.run();
                for (const auto& t : m_tables) {
                    Raw del(m_dst, m_dstPath,
                            "DELETE FROM " + ident(t.name) + " WHERE " + ident(t.runColumn) + " = ?", false);
                    del.bind(1, targetId);
                    del.run();
                }
                ++m_result.replaced;
            } else {
                std::string sql = "INSERT INTO runs(";
                std::string values;
                for (std::size_t i = 0; i < names.size(); ++i) {
                    sql += (i ? ", " : "") + ident(names[i]);
                    values += i ? ", ?" : "?";
                }
                Raw insert(m_dst, m_dstPath, sql + ") VALUES (" + values + ")", false);
                for (std::size_t i = 0; i < binders.size(); ++i) binders[i](insert, static_cast<int>(i) + 1);
                insert.run();
                targetId = sqlite3_last_insert_rowid(m_dst);
                ++m_result.merged;
            }
            if (stillRunning) ++m_result.interrupted;
            m_shardToTarget[shardId] = targetId;
            for (const auto& t : m_tables) copyOwned(t, shardId, targetId);
            if (m_options.afterRun) m_options.afterRun(m_srcPath, uuid);
        }
    }

private:
    void discoverTables() {
        Raw tables(m_src, m_srcPath,
                   "SELECT m.name, f.\"from\" FROM sqlite_master m, pragma_foreign_key_list(m.name) f "
                   "WHERE m.type = 'table' AND f.\"table\" = 'runs' AND m.name <> 'runs' ORDER BY m.name",
                   true);
        while (tables.step()) {
            OwnedTable t{tables.text(0), tables.text(1), {}, true};
            t.hasRowid = tableHasRowid(m_src, t.name);
            for (const auto& c : columnsOf(m_src, m_srcPath, t.name, true))
                if (!c.rowidAlias && c.name != t.runColumn) t.columns.push_back(c.name);
            std::vector<std::string> all = t.columns;
            all.push_back(t.runColumn);
            requireInTarget(t.name, all);
            m_tables.push_back(std::move(t));
        }
    }

    // The shard's columns of `table` but its id, each checked to exist in the target.
    std::vector<std::string> copiedColumns(const std::string& table) {
        std::vector<std::string> cols;
        for (const auto& c : columnsOf(m_src, m_srcPath, table, true))
            if (c.name != "id") cols.push_back(c.name);
        requireInTarget(table, cols);
        return cols;
    }

    void requireInTarget(const std::string& table, const std::vector<std::string>& columns) {
        std::set<std::string> have;
        for (const auto& c : columnsOf(m_dst, m_dstPath, table, false)) have.insert(c.name);
        for (const auto& c : columns)
            if (!have.count(c))
                throw ShardReadError("run store " + m_srcPath + ": table " + table + " has a column " + c +
                                     " that the target " + m_dstPath +
                                     " lacks (was the shard written by a newer Lathe?)");
    }

    std::int64_t mapExperiment(std::int64_t shardExperimentId) {
        if (auto it = m_experiments.find(shardExperimentId); it != m_experiments.end()) return it->second;
        const std::vector<std::string> cols = copiedColumns("experiments");
        std::string select = "SELECT coalesce(uuid, '')";
        for (const auto& c : cols) select += ", " + ident(c);
        Raw src(m_src, m_srcPath, select + " FROM experiments WHERE id = ?", true);
        src.bind(1, shardExperimentId);
        if (!src.step())
            throw ShardReadError("run store " + m_srcPath + ": a run refers to experiment " +
                                 std::to_string(shardExperimentId) + ", which is not there");
        const std::string uuid = src.text(0);
        std::int64_t id = 0;
        {
            Raw find(m_dst, m_dstPath, "SELECT id FROM experiments WHERE uuid = ?", false);
            find.bindText(1, uuid);
            if (find.step()) id = sqlite3_column_int64(find.get(), 0);
        }
        if (id == 0) {
            std::string sql = "INSERT INTO experiments(";
            std::string values;
            for (std::size_t i = 0; i < cols.size(); ++i) {
                sql += (i ? ", " : "") + ident(cols[i]);
                values += i ? ", ?" : "?";
            }
            Raw insert(m_dst, m_dstPath, sql + ") VALUES (" + values + ")", false);
            for (std::size_t i = 0; i < cols.size(); ++i)
                insert.bindValue(static_cast<int>(i) + 1, sqlite3_column_value(src.get(), static_cast<int>(i) + 1));
            insert.run();
            id = sqlite3_last_insert_rowid(m_dst);
        }
        m_experiments[shardExperimentId] = id;
        return id;
    }

    void copyOwned(const OwnedTable& t, std::int64_t shardRunId, std::int64_t targetRunId) {
        std::string select = "SELECT ";
        std::string insert = "INSERT INTO " + ident(t.name) + "(" + ident(t.runColumn);
        std::string values = "?";
        for (std::size_t i = 0; i < t.columns.size(); ++i) {
            select += (i ? ", " : "") + ident(t.columns[i]);
            insert += ", " + ident(t.columns[i]);
            values += ", ?";
        }
        if (t.columns.empty()) select += "1";
        // rowid order keeps the order rows were written in (samples of one step, artifacts' order).
        Raw src(m_src, m_srcPath,
                select + " FROM " + ident(t.name) + " WHERE " + ident(t.runColumn) + " = ?" +
                    (t.hasRowid ? " ORDER BY rowid" : ""),
                true);
        src.bind(1, shardRunId);
        Raw dst(m_dst, m_dstPath, insert + ") VALUES (" + values + ")", false);
        while (src.step()) {
            dst.bind(1, targetRunId);
            for (std::size_t i = 0; i < t.columns.size(); ++i)
                dst.bindValue(static_cast<int>(i) + 2, sqlite3_column_value(src.get(), static_cast<int>(i)));
            dst.run();
            dst.reset();
        }
    }

    sqlite3* m_dst;
    const std::string& m_dstPath;
    sqlite3* m_src;
    const std::string& m_srcPath;
    ShardMergeResult& m_result;
    const MergeOptions& m_options;
    std::vector<OwnedTable> m_tables;
    std::map<std::int64_t, std::int64_t> m_shardToTarget;
    std::map<std::int64_t, std::int64_t> m_experiments;
};

} // namespace

MergeReport RunStore::mergeShards(const std::vector<std::string>& shardPaths, const MergeOptions& options) {
    namespace fs = std::filesystem;
    requireWritable("merging shards");
    MergeReport report;
    // Open (and check) every shard before the transaction: openForReading may migrate an older shard.
    std::vector<std::unique_ptr<RunStore>> shards;
    for (const std::string& path : shardPaths) {
        ShardMergeResult r;
        r.path = path;
        std::unique_ptr<RunStore> shard;
        std::error_code ec;
        if (fs::equivalent(path, m_path, ec)) {
            r.error = "run store " + path + ": is the target itself";
        } else {
            try {
                shard = openForReading(path);
                if (!shard) {
                    r.missing = true;
                    r.error = "run store " + path + ": no such file";
                } else if (const std::string check = shard->integrityCheck(); check != "ok") {
                    r.error = "run store " + path + ": damaged (integrity check: " + check.substr(0, 300) + ")";
                    shard.reset();
                }
            } catch (const StoreError& e) {
                r.error = e.what();
                shard.reset();
            }
        }
        report.shards.push_back(std::move(r));
        shards.push_back(std::move(shard));
    }

    store_detail::WriteTransaction txn(m_db, m_path, "merging shards");
    for (std::size_t i = 0; i < shards.size(); ++i) {
        if (!shards[i]) continue;
        ShardMergeResult& r = report.shards[i];
        store_detail::exec(m_db, m_path, "SAVEPOINT merge_shard", "merging " + r.path);
        try {
            ShardCopy(m_db, m_path, shards[i]->m_db, shards[i]->m_path, r, options).run();
            store_detail::exec(m_db, m_path, "RELEASE merge_shard", "merging " + r.path);
        } catch (const ShardReadError& e) {
            // Only this shard's rows go; the runs of the shards before it stay in the transaction.
            store_detail::exec(m_db, m_path, "ROLLBACK TO merge_shard; RELEASE merge_shard", "merging " + r.path);
            r.merged = r.replaced = r.skipped = r.interrupted = 0;
            r.error = e.what();
        }
        shards[i].reset();
    }
    txn.commit();
    ++m_localCommits;
    return report;
}

} // namespace lathe

// Thin RAII over the SQLite C API for the run store: errors that name the database file, cached
// prepared statements that reset themselves, and short BEGIN IMMEDIATE write transactions.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace lathe::store_detail {

// Throws StoreError: "run store PATH: WHAT: <sqlite message> (<code>)". Disk full and the
// busy timeout get a sentence of their own, since those are what users can act on.
[[noreturn]] void throwError(sqlite3* db, int rc, const std::string& path, std::string_view what);

// A borrowed prepared statement; reset and unbound when it goes out of scope so the cache can reuse it.
class Stmt {
public:
    Stmt(sqlite3_stmt* stmt, sqlite3* db, const std::string& path) : m_stmt(stmt), m_db(db), m_path(path) {}
    ~Stmt() {
        sqlite3_reset(m_stmt);
        sqlite3_clear_bindings(m_stmt);
    }
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;

    Stmt& bind(int i, std::int64_t v) { return check(sqlite3_bind_int64(m_stmt, i, v)); }
    Stmt& bind(int i, int v) { return check(sqlite3_bind_int64(m_stmt, i, v)); }
    Stmt& bind(int i, double v) { return check(sqlite3_bind_double(m_stmt, i, v)); }
    // The text must outlive the step (SQLITE_STATIC: no copy on the ingest path).
    Stmt& bind(int i, std::string_view v) {
        return check(sqlite3_bind_text(m_stmt, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC));
    }
    Stmt& bindNull(int i) { return check(sqlite3_bind_null(m_stmt, i)); }

    // true: a row is available; false: done. Throws on error.
    bool step();
    // Steps to completion; for INSERT/UPDATE/DELETE.
    void run() {
        while (step()) {
        }
        sqlite3_reset(m_stmt);
    }

    bool isNull(int c) const { return sqlite3_column_type(m_stmt, c) == SQLITE_NULL; }
    std::int64_t integer(int c) const { return sqlite3_column_int64(m_stmt, c); }
    double real(int c) const; // NULL reads as NaN (SQLite stores NaN as NULL)
    std::string text(int c) const {
        const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(m_stmt, c));
        return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(m_stmt, c))) : std::string();
    }
    const char* textPtr(int c) const { return reinterpret_cast<const char*>(sqlite3_column_text(m_stmt, c)); }

private:
    Stmt& check(int rc) {
        if (rc != SQLITE_OK) throwError(m_db, rc, m_path, "binding a parameter");
        return *this;
    }
    sqlite3_stmt* m_stmt;
    sqlite3* m_db;
    const std::string& m_path;
};

// Prepared statements keyed by their SQL text, prepared once per connection.
class StatementCache {
public:
    StatementCache(sqlite3* db, const std::string& path) : m_db(db), m_path(path) {}
    ~StatementCache();
    StatementCache(const StatementCache&) = delete;
    StatementCache& operator=(const StatementCache&) = delete;
    Stmt get(const std::string& sql);

private:
    sqlite3* m_db;
    const std::string& m_path;
    std::unordered_map<std::string, sqlite3_stmt*> m_cache;
};

// Runs SQL without results (several statements allowed); throws on error.
void exec(sqlite3* db, const std::string& path, const std::string& sql, std::string_view what);

// BEGIN IMMEDIATE ... COMMIT: takes the write lock up front so the busy timeout applies (a deferred
// transaction that upgrades from read to write can fail with SQLITE_BUSY at once).
class WriteTransaction {
public:
    WriteTransaction(sqlite3* db, const std::string& path, std::string_view what);
    ~WriteTransaction(); // rolls back unless committed
    WriteTransaction(const WriteTransaction&) = delete;
    WriteTransaction& operator=(const WriteTransaction&) = delete;
    void commit();

private:
    sqlite3* m_db;
    const std::string& m_path;
    std::string m_what;
    bool m_done = false;
};

} // namespace lathe::store_detail

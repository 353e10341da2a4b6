// SQLite helpers for the run store: error text, statement cache, write transactions.
#include "engine/store/sqlite_util.h"

#include "engine/core/errors.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <limits>

namespace lathe::store_detail {

namespace {

// SQLite reports a failed write() past RLIMIT_FSIZE or on a full disk as a plain I/O error, and its
// saved errno is not reliable by the time we see it; look at the filesystem and the limit instead.
std::string diagnoseWriteFailure(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path file(path);
    const fs::path dir = file.parent_path().empty() ? fs::path(".") : file.parent_path();
    struct statvfs vfs {};
    if (::statvfs(dir.c_str(), &vfs) == 0 &&
        static_cast<unsigned long long>(vfs.f_bavail) * vfs.f_frsize < 1024ull * 1024ull)
        return "no space left on the device";
    rlimit limit{};
    if (::getrlimit(RLIMIT_FSIZE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
        for (const std::string& f : {path, path + "-wal", path + "-journal"}) {
            const auto size = fs::file_size(f, ec);
            if (!ec && size + 256 * 1024 >= limit.rlim_cur) return "the file size limit (ulimit -f) was reached";
        }
    }
    return {};
}

} // namespace

void throwError(sqlite3* db, int rc, const std::string& path, std::string_view what) {
    const int primary = rc & 0xff;
    const int sysErrno = db ? sqlite3_system_errno(db) : 0;
    std::string diskFull;
    if (primary == SQLITE_FULL) diskFull = "no space left or the file size limit was reached";
    else if (sysErrno == ENOSPC || sysErrno == EDQUOT) diskFull = std::strerror(sysErrno);
    else if (sysErrno == EFBIG) diskFull = "the file size limit (ulimit -f) was reached";
    else if (primary == SQLITE_IOERR) diskFull = diagnoseWriteFailure(path);
    std::string message = "run store " + path + ": " + std::string(what) + ": ";
    message += db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    message += " (" + std::string(sqlite3_errstr(rc)) + ", code " + std::to_string(rc) + ")";
    if (!diskFull.empty()) {
        message += "; disk full (" + diskFull + "): the write was rolled back, earlier runs are intact";
    } else if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
        message += "; another process held the database past the busy timeout";
    } else if (primary == SQLITE_NOTADB || primary == SQLITE_CORRUPT) {
        message += "; the file is not a Lathe run store or is damaged";
    } else if (sysErrno) {
        message += std::string("; ") + std::strerror(sysErrno);
    }
    throw StoreError(message);
}

bool Stmt::step() {
    const int rc = sqlite3_step(m_stmt);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    const char* sql = sqlite3_sql(m_stmt);
    std::string what = "running \"";
    what += sql ? std::string(sql).substr(0, 60) : std::string("?");
    what += "\"";
    throwError(m_db, rc, m_path, what);
}

double Stmt::real(int c) const {
    if (sqlite3_column_type(m_stmt, c) == SQLITE_NULL) return std::numeric_limits<double>::quiet_NaN();
    return sqlite3_column_double(m_stmt, c);
}

StatementCache::~StatementCache() {
    for (auto& [sql, stmt] : m_cache) sqlite3_finalize(stmt);
}

Stmt StatementCache::get(const std::string& sql) {
    auto it = m_cache.find(sql);
    if (it == m_cache.end()) {
        sqlite3_stmt* stmt = nullptr;
        const int rc = sqlite3_prepare_v3(m_db, sql.c_str(), static_cast<int>(sql.size()),
                                          SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
        if (rc != SQLITE_OK) throwError(m_db, rc, m_path, "preparing \"" + sql.substr(0, 60) + "\"");
        it = m_cache.emplace(sql, stmt).first;
    }
    return Stmt(it->second, m_db, m_path);
}

void exec(sqlite3* db, const std::string& path, const std::string& sql, std::string_view what) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    if (err) sqlite3_free(err);
    if (rc != SQLITE_OK) throwError(db, rc, path, what);
}

WriteTransaction::WriteTransaction(sqlite3* db, const std::string& path, std::string_view what)
    : m_db(db), m_path(path), m_what(what) {
    exec(m_db, m_path, "BEGIN IMMEDIATE", m_what);
}

WriteTransaction::~WriteTransaction() {
    // After a failed COMMIT (disk full) SQLite may already have rolled back; autocommit says so.
    if (!m_done && !sqlite3_get_autocommit(m_db)) sqlite3_exec(m_db, "ROLLBACK", nullptr, nullptr, nullptr);
}

void WriteTransaction::commit() {
    exec(m_db, m_path, "COMMIT", m_what);
    m_done = true;
}

} // namespace lathe::store_detail

// Private to engine/store: the statement cache type behind RunStore and small shared helpers.
#pragma once

#include "engine/store/run_store.h"
#include "engine/store/sqlite_util.h"

#include <string>
#include <string_view>

namespace lathe {

class RunStore::Statements : public store_detail::StatementCache {
public:
    using StatementCache::StatementCache;
};

namespace store_detail {
double nowUnixSeconds();
std::string hostName();
bool isValidStatus(std::string_view s);
// A random (version 4) UUID, "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx": runs' and experiments' stable ids.
std::string newUuid();

// Read-only snapshot over several statements (a run and its summary agree with each other).
class ReadTransaction {
public:
    ReadTransaction(sqlite3* db, const std::string& path) : m_db(db) {
        m_own = sqlite3_get_autocommit(db) != 0;
        if (m_own) exec(db, path, "BEGIN", "starting a read");
    }
    ~ReadTransaction() {
        if (m_own && !sqlite3_get_autocommit(m_db)) sqlite3_exec(m_db, "COMMIT", nullptr, nullptr, nullptr);
    }
    ReadTransaction(const ReadTransaction&) = delete;
    ReadTransaction& operator=(const ReadTransaction&) = delete;

private:
    sqlite3* m_db;
    bool m_own = false;
};
} // namespace store_detail

} // namespace lathe

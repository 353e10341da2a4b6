// RunStore: the sweeps submitted to a cluster scheduler (schema v6's submissions table) and lookups by
// the stable uuids runs and experiments carry since schema v6.
#include "engine/store/run_store.h"

#include "engine/store/run_store_internal.h"

namespace lathe {

using store_detail::WriteTransaction;

std::string RunStore::newUuid() { return store_detail::newUuid(); }

std::optional<std::int64_t> RunStore::runByUuid(const std::string& uuid) const {
    auto st = m_statements->get("SELECT id FROM runs WHERE uuid = ?");
    st.bind(1, std::string_view(uuid));
    if (!st.step()) return std::nullopt;
    return st.integer(0);
}

std::optional<std::int64_t> RunStore::experimentByUuid(const std::string& uuid) const {
    auto st = m_statements->get("SELECT id FROM experiments WHERE uuid = ?");
    st.bind(1, std::string_view(uuid));
    if (!st.step()) return std::nullopt;
    return st.integer(0);
}

std::int64_t RunStore::addSubmission(const SubmissionRecord& s) {
    requireWritable("recording a submission");
    WriteTransaction txn(m_db, m_path, "recording a submission");
    auto st = m_statements->get(
        "INSERT INTO submissions(uuid, name, spec_file, workdir, tasks, array_job_id, merge_job_id, scheduler, "
        "submitted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    st.bind(1, std::string_view(s.uuid)).bind(2, std::string_view(s.name)).bind(3, std::string_view(s.specFile));
    st.bind(4, std::string_view(s.workdir)).bind(5, s.tasks).bind(6, std::string_view(s.arrayJobId));
    st.bind(7, std::string_view(s.mergeJobId)).bind(8, std::string_view(s.scheduler));
    st.bind(9, s.submittedAt > 0 ? s.submittedAt : store_detail::nowUnixSeconds()).run();
    const std::int64_t id = sqlite3_last_insert_rowid(m_db);
    txn.commit();
    ++m_localCommits;
    return id;
}

std::vector<SubmissionRecord> RunStore::submissions() const {
    std::vector<SubmissionRecord> out;
    auto st = m_statements->get("SELECT id, uuid, name, spec_file, workdir, tasks, array_job_id, merge_job_id, "
                                "scheduler, submitted_at FROM submissions ORDER BY id DESC");
    while (st.step()) {
        SubmissionRecord s;
        s.id = st.integer(0);
        s.uuid = st.text(1);
        s.name = st.text(2);
        s.specFile = st.text(3);
        s.workdir = st.text(4);
        s.tasks = static_cast<int>(st.integer(5));
        s.arrayJobId = st.text(6);
        s.mergeJobId = st.text(7);
        s.scheduler = st.text(8);
        s.submittedAt = st.real(9);
        out.push_back(std::move(s));
    }
    return out;
}

} // namespace lathe

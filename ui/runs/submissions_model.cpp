// SubmissionsModel: submissions from the store, states from a JobStateSource asked on a thread of its own.
#include "ui/runs/submissions_model.h"

#include "ui/runs/runs_table_model.h"

#include <QApplication>
#include <QDateTime>
#include <QLocale>
#include <QPointer>
#include <QStyle>

#include <thread>

namespace lathe::ui {

namespace {
QString qs(const std::string& s) { return QString::fromStdString(s); }

bool ongoing(const std::string& slurmState) {
    const auto s = taskStateOf(slurmState);
    return s && (*s == TaskState::Pending || *s == TaskState::Running);
}
} // namespace

struct SubmissionsModel::Answer {
    std::string uuid;
    JobStates states;
    SweepCounts counts;
};

SubmissionsModel::SubmissionsModel(RunsTableModel* runs, QObject* parent) : QAbstractTableModel(parent), m_runs(runs) {
    m_poll.setInterval(5000);
    connect(&m_poll, &QTimer::timeout, this, &SubmissionsModel::poll);
    m_answerTimer.setSingleShot(true);
    connect(&m_answerTimer, &QTimer::timeout, this, [this] {
        if (!m_inFlight) return;
        m_noAnswer = true;
        if (!m_rows.empty()) emit dataChanged(index(0, 0), index(rowCount() - 1, ColumnCount - 1));
        emit statesChanged();
    });
    // New submissions and merged runs show as the runs table sees them; another store starts afresh.
    connect(m_runs, &RunsTableModel::refreshed, this, &SubmissionsModel::reload);
    connect(m_runs, &QAbstractItemModel::modelReset, this, &SubmissionsModel::reload);
}

SubmissionsModel::~SubmissionsModel() = default;

void SubmissionsModel::setStateSource(std::shared_ptr<JobStateSource> source) {
    m_source = std::move(source);
    ++m_generation; // an answer of the old source is not this one's
    m_lastRunCount = -1;
    m_inFlight = false;
    m_noAnswer = false;
    m_answerTimer.stop();
    for (Row& r : m_rows) r.answered = false;
    reload();
}

void SubmissionsModel::setPollInterval(int ms) {
    if (ms <= 0) m_poll.stop();
    else m_poll.start(ms);
}

void SubmissionsModel::setAnswerTimeout(int ms) {
    m_answerTimeoutMs = ms;
    if (m_answerTimer.isActive()) m_answerTimer.start(ms);
}

void SubmissionsModel::reload() {
    std::vector<SubmissionRecord> subs;
    if (RunStore* store = m_runs->store()) {
        try {
            subs = store->submissions();
        } catch (const std::exception&) {
            // The runs table reports store errors; the rows stay as they were.
            return;
        }
    }
    bool sameList = subs.size() == m_rows.size();
    for (std::size_t i = 0; sameList && i < subs.size(); ++i) sameList = subs[i].uuid == m_rows[i].submission.uuid;
    if (!sameList) {
        std::vector<Row> rows;
        for (auto& s : subs) {
            Row row;
            const int old = rowOfSubmission(qs(s.uuid));
            if (old >= 0) row = m_rows[static_cast<std::size_t>(old)];
            row.submission = std::move(s);
            rows.push_back(std::move(row));
        }
        beginResetModel();
        m_rows = std::move(rows);
        endResetModel();
    }
    // Runs were added or removed (merged ones among them), or the list changed: count again. The runs
    // table refreshes every second while a local experiment writes samples; that alone recounts nothing.
    // Slurm itself is asked on the poll's schedule only (and about rows it never answered for).
    const int runCount = m_runs->rowCount();
    if (sameList && runCount == m_lastRunCount) return;
    m_lastRunCount = runCount;
    if (m_inFlight) m_recount = true;
    else if (!m_rows.empty()) startQuery(false);
}

void SubmissionsModel::poll() {
    if (m_rows.empty() || m_inFlight) return;
    // A sweep whose tasks and merge job have all ended is not asked about again: it is recounted only
    // when the runs table sees the store change (reload).
    for (const Row& r : m_rows)
        if (!settled(r)) {
            startQuery(true);
            return;
        }
}

bool SubmissionsModel::settled(const Row& row) const {
    return row.answered && row.states.error.empty() && !row.counts.active() && !ongoing(row.states.merge);
}

void SubmissionsModel::startQuery(bool askActive) {
    struct Job {
        SubmissionRecord submission;
        bool ask;
        JobStates cached;
    };
    std::vector<Job> jobs;
    bool anyAsk = false;
    for (const Row& r : m_rows) {
        const bool ask = !r.answered || (askActive && !settled(r));
        anyAsk = anyAsk || ask;
        jobs.push_back({r.submission, ask, r.states});
    }
    m_inFlight = true;
    m_recount = false;
    m_noAnswer = false;
    if (anyAsk) m_answerTimer.start(m_answerTimeoutMs);
    const std::string target = m_runs->path().toStdString();
    // The thread owns copies of everything it reads; its answer comes back through the event loop and is
    // dropped when the model is gone or has moved on (m_generation). Never joined: a source that hangs
    // past its own timeout cannot hang the window, at shutdown included.
    std::thread([source = m_source, jobs = std::move(jobs), target, self = QPointer<SubmissionsModel>(this),
                 generation = m_generation]() mutable {
        std::vector<Answer> answers;
        std::unique_ptr<RunStore> store;
        try {
            if (!target.empty()) store = std::make_unique<RunStore>(target, RunStore::Mode::ReadOnly);
        } catch (const std::exception&) {
            // merged counts stay 0 when the store cannot be read here
        }
        for (Job& job : jobs) {
            Answer a;
            a.uuid = job.submission.uuid;
            if (!job.ask) {
                a.states = std::move(job.cached);
            } else if (!source) {
                a.states.error = "no scheduler to ask";
            } else {
                try {
                    a.states = source->query(job.submission);
                } catch (const std::exception& e) {
                    a.states.error = e.what();
                }
            }
            a.counts = sweepCounts(job.submission, a.states, store.get());
            answers.push_back(std::move(a));
        }
        if (QCoreApplication* app = QCoreApplication::instance()) {
            QMetaObject::invokeMethod(
                app,
                [self = std::move(self), generation, answers = std::move(answers)] {
                    if (self) self->applyAnswers(generation, answers);
                },
                Qt::QueuedConnection);
        }
    }).detach();
}

void SubmissionsModel::applyAnswers(int generation, const std::vector<Answer>& answers) {
    if (generation != m_generation) return;
    m_inFlight = false;
    m_noAnswer = false;
    m_answerTimer.stop();
    ++m_answers;
    for (const Answer& a : answers) {
        const int r = rowOfSubmission(qs(a.uuid));
        if (r < 0) continue;
        Row& row = m_rows[static_cast<std::size_t>(r)];
        row.states = a.states;
        row.counts = a.counts;
        row.answered = true;
        emit dataChanged(index(r, 0), index(r, ColumnCount - 1));
    }
    emit statesChanged();
    if (m_recount) startQuery(false);
}

int SubmissionsModel::rowOfSubmission(const QString& uuid) const {
    const std::string u = uuid.toStdString();
    for (std::size_t i = 0; i < m_rows.size(); ++i)
        if (m_rows[i].submission.uuid == u) return static_cast<int>(i);
    return -1;
}

QString SubmissionsModel::errorText(int r) const {
    const Row& row = m_rows[static_cast<std::size_t>(r)];
    if (m_noAnswer && !settled(row))
        return tr("no answer from Slurm within %1 s").arg(m_answerTimeoutMs / 1000.0, 0, 'g', 3);
    return qs(row.states.error);
}

QString SubmissionsModel::stateText(int r) const {
    const Row& row = m_rows[static_cast<std::size_t>(r)];
    if (!errorText(r).isEmpty()) return tr("controller unreachable");
    if (!row.answered) return tr("asking Slurm...");
    if (row.counts.running > 0) return tr("running");
    if (row.counts.pending > 0) return tr("pending");
    if (ongoing(row.states.merge)) return tr("merging");
    return tr("finished");
}

int SubmissionsModel::rowCount(const QModelIndex& parent) const {
    return parent.isValid() ? 0 : static_cast<int>(m_rows.size());
}

int SubmissionsModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : ColumnCount; }

QVariant SubmissionsModel::data(const QModelIndex& index, int role) const {
    if (!index.isValid() || index.row() >= rowCount()) return {};
    const Row& row = m_rows[static_cast<std::size_t>(index.row())];
    const SweepCounts& c = row.counts;
    const bool counted = row.answered;
    auto count = [&](int n) { return counted ? QVariant(n) : QVariant(); };
    switch (role) {
    case Qt::DisplayRole:
        switch (index.column()) {
        case State: return stateText(index.row());
        case Experiment: return qs(row.submission.name);
        case SlurmJob: return qs(row.submission.arrayJobId);
        case Tasks: return row.submission.tasks;
        case Pending: return count(c.pending);
        case Running: return count(c.running);
        case Done: return count(c.done);
        case Failed: return count(c.failed);
        case Merged: return count(c.merged);
        case MergeJob:
            return counted ? QStringLiteral("%1 %2").arg(qs(row.submission.mergeJobId), qs(mergeStateText(c, row.states)))
                           : qs(row.submission.mergeJobId);
        case Submitted:
            return QLocale().toString(QDateTime::fromSecsSinceEpoch(static_cast<qint64>(row.submission.submittedAt)),
                                      QLocale::ShortFormat);
        default: return {};
        }
    case Qt::DecorationRole: {
        if (index.column() != State) return {};
        QStyle* style = QApplication::style();
        if (!errorText(index.row()).isEmpty()) return style->standardIcon(QStyle::SP_MessageBoxWarning);
        if (counted && c.failed > 0 && !c.active()) return style->standardIcon(QStyle::SP_MessageBoxCritical);
        if (counted && c.running > 0) return style->standardIcon(QStyle::SP_MediaPlay);
        if (counted && !c.active()) return style->standardIcon(QStyle::SP_DialogApplyButton);
        return style->standardIcon(QStyle::SP_FileDialogContentsView);
    }
    case Qt::TextAlignmentRole:
        return index.column() >= Tasks && index.column() <= Merged ? QVariant(Qt::AlignRight | Qt::AlignVCenter)
                                                                    : QVariant();
    case Qt::ToolTipRole:
        if (index.column() == State && !errorText(index.row()).isEmpty()) return errorText(index.row());
        if (index.column() == SlurmJob || index.column() == MergeJob)
            return tr("job array %1, merge job %2\nwork folder %3")
                .arg(qs(row.submission.arrayJobId), qs(row.submission.mergeJobId), qs(row.submission.workdir));
        if (index.column() == Experiment) return qs(row.submission.specFile);
        return {};
    case SubmissionUuidRole: return qs(row.submission.uuid);
    default: return {};
    }
}

QVariant SubmissionsModel::headerData(int section, Qt::Orientation orientation, int role) const {
    if (orientation != Qt::Horizontal || role != Qt::DisplayRole) return {};
    switch (section) {
    case State: return tr("State");
    case Experiment: return tr("Experiment");
    case SlurmJob: return tr("Slurm job");
    case Tasks: return tr("Tasks");
    case Pending: return tr("Pending");
    case Running: return tr("Running");
    case Done: return tr("Done");
    case Failed: return tr("Failed");
    case Merged: return tr("Merged runs");
    case MergeJob: return tr("Merge job");
    case Submitted: return tr("Submitted");
    default: return {};
    }
}

} // namespace lathe::ui

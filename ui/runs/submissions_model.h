// SubmissionsModel: the sweeps submitted to a cluster (the store's `submissions`), one row each with its
// Slurm job, its tasks pending, running, done and failed, and its runs merged so far, counted as
// `lathe-cli jobs` counts them (engine/store/sweep_status.h). The scheduler is asked off the UI thread
// through a JobStateSource; an answer that does not come in time shows "controller unreachable".
#pragma once

#include "engine/store/run_store.h"
#include "engine/store/sweep_status.h"

#include <QAbstractTableModel>
#include <QTimer>

#include <memory>
#include <vector>

namespace lathe::ui {

class RunsTableModel;

class SubmissionsModel : public QAbstractTableModel {
    Q_OBJECT
public:
    enum Column { State, Experiment, SlurmJob, Tasks, Pending, Running, Done, Failed, Merged, MergeJob, Submitted, ColumnCount };
    enum Role { SubmissionUuidRole = Qt::UserRole + 1 };

    // Reads the submissions through `runs`' read-only store, again whenever it refreshes.
    explicit SubmissionsModel(RunsTableModel* runs, QObject* parent = nullptr);
    ~SubmissionsModel() override;

    // Who is asked about the jobs (the window: Slurm; tests: a fake). Null: nobody (rows say so).
    void setStateSource(std::shared_ptr<JobStateSource> source);
    // How often the scheduler is asked while a sweep is active (0: stop), and how long an answer may take
    // before the rows say "controller unreachable" (the query goes on; its answer still counts).
    void setPollInterval(int ms);
    void setAnswerTimeout(int ms); // a query in flight gets `ms` from now
    int answerTimeout() const { return m_answerTimeoutMs; }

    // Re-reads the submissions from the store and asks the scheduler again (not if a query is running).
    void reload();
    bool queryInFlight() const { return m_inFlight; }
    // Queries answered so far (tests wait on it).
    int answers() const { return m_answers; }

    struct Row {
        SubmissionRecord submission;
        JobStates states;
        SweepCounts counts;
        bool answered = false; // a query about it has come back
    };
    const Row& row(int r) const { return m_rows[static_cast<std::size_t>(r)]; }
    int rowOfSubmission(const QString& uuid) const;
    // "running", "pending", "merging", "finished", "controller unreachable", "asking Slurm..."
    QString stateText(int r) const;
    // Why the scheduler could not be asked ("" when it answered).
    QString errorText(int r) const;

    int rowCount(const QModelIndex& parent = {}) const override;
    int columnCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

signals:
    // After each answer (or a timed-out one): the panel's status line follows.
    void statesChanged();

private:
    struct Answer;
    void poll();
    void startQuery(bool askActive); // asks the scheduler about unanswered rows, and active ones if askActive
    void applyAnswers(int generation, const std::vector<Answer>& answers);
    bool settled(const Row& row) const;

    RunsTableModel* m_runs;
    std::shared_ptr<JobStateSource> m_source;
    std::vector<Row> m_rows;
    QTimer m_poll;
    QTimer m_answerTimer;
    int m_answerTimeoutMs = 20000;
    bool m_inFlight = false;
    bool m_recount = false;  // the store changed while a query was in flight
    int m_lastRunCount = -1; // the runs table's row count at the last recount
    bool m_noAnswer = false; // the query in flight has run past m_answerTimeoutMs
    int m_generation = 0;    // answers of an older store or source are dropped
    int m_answers = 0;
};

} // namespace lathe::ui

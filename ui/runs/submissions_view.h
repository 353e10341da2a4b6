// SubmissionsView: the sweeps submitted to a cluster, above the runs table: one row per sweep (state,
// Slurm job, tasks pending/running/done/failed, runs merged, merge job), a status line that says when
// Slurm could not be asked, and a context menu to show a sweep's runs or merge its finished shards now.
// Hidden while the store has no submissions.
#pragma once

#include <QStringList>
#include <QWidget>

class QLabel;
class QTableView;

namespace lathe::ui {

class SubmissionsModel;

class SubmissionsView : public QWidget {
    Q_OBJECT
public:
    explicit SubmissionsView(SubmissionsModel* model, QWidget* parent = nullptr);

    QTableView* table() const { return m_table; }
    QLabel* statusLabel() const { return m_status; }
    // The shards of the sweep in `row` whose tasks have ended (what "Merge finished shards" merges).
    QStringList finishedShards(int row) const;
    // Tall enough for up to four sweeps: the runs table below keeps the room.
    QSize sizeHint() const override;

signals:
    // The runs table should show this sweep's runs (its experiment's name as the filter).
    void showRunsRequested(const QString& experimentName);
    // Merge these shards into the run store now (through the engine thread: the window only reads).
    void mergeRequested(const QString& sweepName, const QStringList& shards);

private:
    void showContextMenu(const QPoint& pos);
    void updateVisibility();
    void updateStatus();

    SubmissionsModel* m_model;
    QTableView* m_table;
    QLabel* m_title;
    QLabel* m_status;
};

} // namespace lathe::ui

// RunDetails: a finished run (or several, overlaid for comparison) from the store: its charts from the
// stored samples, its summary metrics, its error and its resolved configuration.
#pragma once

#include <QList>
#include <QWidget>

class QLabel;
class QPlainTextEdit;
class QTableWidget;

namespace lathe {
class RunStore;
}

namespace lathe::ui {

class LiveDashboard;

class RunDetails : public QWidget {
    Q_OBJECT
public:
    explicit RunDetails(QWidget* parent = nullptr);
    // Loads the runs from `store` (a read-only connection is fine). Returns how many were found.
    int showRuns(RunStore& store, const QList<qint64>& runIds);
    // Shows nothing (e.g. after switching to another run database).
    void clear();
    LiveDashboard* dashboard() const { return m_dashboard; }
    QTableWidget* summaryTable() const { return m_summary; }
    QList<qint64> runIds() const { return m_runIds; }

private:
    QLabel* m_title;
    LiveDashboard* m_dashboard;
    QTableWidget* m_summary;
    QPlainTextEdit* m_config;
    QList<qint64> m_runIds;
};

} // namespace lathe::ui

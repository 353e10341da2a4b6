// RunDetails: a finished run (or several, overlaid for comparison) from the store: its charts from the
// stored samples, its per-layer stats as bar charts, charts across the runs shown (a sweep's summary
// metrics against each other), its summary metrics, its error and its resolved configuration.
#pragma once

#include <QList>
#include <QWidget>

class QLabel;
class QPlainTextEdit;
class QTabWidget;
class QTableWidget;

namespace lathe {
class RunStore;
}

namespace lathe::ui {

class CompareView;
class LayerChartsPanel;
class LineagePanel;
class LiveDashboard;
class RunsChartsPanel;

class RunDetails : public QWidget {
    Q_OBJECT
public:
    explicit RunDetails(QWidget* parent = nullptr);
    // Loads the runs from `store` (a read-only connection is fine). Returns how many were found.
    int showRuns(const RunStore& store, const QList<qint64>& runIds);
    // Shows nothing (e.g. after switching to another run database).
    void clear();
    LiveDashboard* dashboard() const { return m_dashboard; }
    LayerChartsPanel* layerCharts() const { return m_layers; }
    RunsChartsPanel* runsCharts() const { return m_across; }
    CompareView* compareView() const { return m_compare; }
    LineagePanel* lineage() const { return m_lineage; }
    // The tabs: "Series", "Layers" (enabled when a run has per-layer stats), "Steps" (one run measured at
    // two points or more), "Across runs", "Compare" (enabled, and shown first, when several runs are open).
    QTabWidget* chartTabs() const { return m_tabs; }
    QTableWidget* summaryTable() const { return m_summary; }
    QList<qint64> runIds() const { return m_runIds; }

signals:
    // The user asked for one run from a chart across runs (a click on its Pareto point).
    void runActivated(qint64 runId);

private:
    QLabel* m_title;
    LiveDashboard* m_dashboard;
    LayerChartsPanel* m_layers;
    RunsChartsPanel* m_across;
    CompareView* m_compare;
    LineagePanel* m_lineage;
    QTabWidget* m_tabs;
    QTableWidget* m_summary;
    QPlainTextEdit* m_config;
    QList<qint64> m_runIds;
};

} // namespace lathe::ui

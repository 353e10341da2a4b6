// SearchView: one search as the store holds it, finished or still running. The trials as points (objective
// against the first constraint's metric, or the two objectives), the feasible region shaded, the incumbent
// or the Pareto front drawn over them, each field's importance as a bar, and a button that opens the
// winner as an experiment. showSearch() again redraws with the trials that arrived since.
#pragma once

#include "engine/experiment/search_runner.h"

#include <QWidget>

#include <cstdint>

class QLabel;
class QPushButton;

namespace lathe {
class RunStore;
}

namespace lathe::ui {

class ChartView;

class SearchView : public QWidget {
    Q_OBJECT
public:
    explicit SearchView(QWidget* parent = nullptr);

    // Returns false (and shows why) when the run is not a search or cannot be read.
    bool showSearch(const RunStore& store, std::int64_t searchRunId);
    void clear();
    std::int64_t searchRunId() const { return m_searchRunId; }
    const SearchResult& result() const { return m_result; }

    ChartView* trialsChart() const { return m_trials; }
    ChartView* importanceChart() const { return m_importance; }
    QPushButton* openWinnerButton() const { return m_openWinner; }
    QLabel* summaryLabel() const { return m_summary; }
    // Points drawn: feasible, infeasible (failed trials are listed, not drawn).
    int feasiblePoints() const { return m_feasiblePoints; }
    int infeasiblePoints() const { return m_infeasiblePoints; }
    bool feasibleRegionShown() const { return m_regionShown; }

signals:
    // The winner's experiment file (JSON text), for the editor.
    void openExperimentRequested(const QString& json);
    void runActivated(std::int64_t runId);

private:
    void drawTrials();
    void drawImportance();

    ChartView* m_trials;
    ChartView* m_importance;
    QPushButton* m_openWinner;
    QLabel* m_summary;
    std::int64_t m_searchRunId = 0;
    SearchResult m_result;
    SearchSpec m_spec;
    int m_feasiblePoints = 0, m_infeasiblePoints = 0;
    bool m_regionShown = false;
};

} // namespace lathe::ui

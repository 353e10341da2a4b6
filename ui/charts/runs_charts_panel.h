// RunsChartsPanel: charts across runs (a sweep, or runs picked for comparison) from their summary
// metrics. Every runs chart spec (chart_spec.h) for which at least two runs have its x metric and one of
// its y metrics, at two x values at least, becomes a chart: one point per run and y metric, the points of a metric joined in order
// of x (a sparsity ladder's theoretical and realized speedups against sparsity). Above them, when two or
// more runs have accuracy and p99 latency, their Pareto chart (pareto_chart.h).
#pragma once

#include <QString>
#include <QWidget>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

class QLabel;

namespace lathe::ui {

class ChartStack;
class ChartView;
class ParetoChart;

struct RunSummary {
    std::int64_t runId = 0;
    QString label;
    std::map<std::string, double> summary;
    std::string strategyChain; // "train > prune.magnitude > finetune"
};

class RunsChartsPanel : public QWidget {
    Q_OBJECT
  public:
    explicit RunsChartsPanel(QWidget* parent = nullptr);

    void setRuns(const std::vector<RunSummary>& runs);
    void clear();
    bool isEmpty() const;

    QStringList chartIds() const;
    ChartView* chart(const QString& id) const;
    // Hidden when fewer than two runs have accuracy and latency_p99_ms.
    ParetoChart* pareto() const { return m_pareto; }

signals:
    // A point of the Pareto chart was clicked.
    void runActivated(std::int64_t runId);

  private:
    ChartStack* m_charts;
    ParetoChart* m_pareto;
    QLabel* m_hint;
};

} // namespace lathe::ui

// RunsChartsPanel: charts across runs (a sweep, or runs picked for comparison) from their summary
// metrics. Every runs chart spec (chart_spec.h) for which at least two runs have its x metric and one of
// its y metrics becomes a chart: one point per run and y metric, the points of a metric joined in order
// of x (a sparsity ladder's theoretical and realized speedups against sparsity).
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

struct RunSummary {
    std::int64_t runId = 0;
    QString label;
    std::map<std::string, double> summary;
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

  private:
    ChartStack* m_charts;
    QLabel* m_hint;
};

} // namespace lathe::ui

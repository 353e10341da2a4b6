// RunsChartsPanel: charts across runs (a sweep, or runs picked for comparison) from their summary
// metrics. Every runs chart spec (chart_spec.h) for which at least two runs have its x metric and one of
// its y metrics, at two x values at least, becomes a chart: one point per run and y metric, the points of a metric joined in order
// of x (a sparsity ladder's theoretical and realized speedups against sparsity). Above them, when two or
// more runs have accuracy and p99 latency, their Pareto chart (pareto_chart.h); below it, when any run has
// roofline figures, the roofline chart (roofline_chart.h) with the roofs of the devices the store has peaks of.
#pragma once

#include "engine/store/run_store.h"

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
class RooflineChart;

struct RunSummary {
    std::int64_t runId = 0;
    QString label;
    std::map<std::string, double> summary;
    std::string strategyChain; // "train > prune.magnitude > finetune"
    QString device;            // the device's name as the run's environment records it
};

class RunsChartsPanel : public QWidget {
    Q_OBJECT
  public:
    explicit RunsChartsPanel(QWidget* parent = nullptr);

    // The roofs the roofline chart draws (RunStore::devicePeaks()); set before setRuns.
    void setDevicePeaks(std::vector<DevicePeak> peaks) { m_peaks = std::move(peaks); }
    void setRuns(const std::vector<RunSummary>& runs);
    void clear();
    bool isEmpty() const;

    QStringList chartIds() const;
    ChartView* chart(const QString& id) const;
    // Hidden when fewer than two runs have accuracy and latency_p99_ms.
    ParetoChart* pareto() const { return m_pareto; }
    // Hidden when no run has roofline figures.
    RooflineChart* roofline() const { return m_roofline; }

signals:
    // A point of the Pareto chart or a line of the roofline chart was clicked.
    void runActivated(std::int64_t runId);

  private:
    ChartStack* m_charts;
    ParetoChart* m_pareto;
    RooflineChart* m_roofline;
    QLabel* m_hint;
    std::vector<DevicePeak> m_peaks;
};

} // namespace lathe::ui

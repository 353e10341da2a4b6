// LayerChartsPanel: the per-layer stats of stored runs (a pruning's sparsity per layer, a sensitivity
// sweep's accuracy drop per layer and ratio, ...). Every layer chart spec (chart_spec.h) that takes one
// of their keys becomes a bar chart — the layers along x, one bar per run and key — or, from three runs
// on (a sweep), one heatmap per key: layers along x, runs down y, the value as colour (chart id
// "<spec id>:<key>"). Every stat is listed in a table, one row per layer, one column per run and key.
#pragma once

#include "engine/store/run_store.h"

#include <QString>
#include <QWidget>

#include <cstdint>
#include <vector>

class QTableWidget;

namespace lathe::ui {

class ChartStack;
class ChartView;
struct LayerChartSpec;

struct RunLayerStats {
    std::int64_t runId = 0;
    QString label; // "#12 mlp-sensitivity"
    std::vector<LayerStat> stats;
};

class LayerChartsPanel : public QWidget {
    Q_OBJECT
  public:
    explicit LayerChartsPanel(QWidget* parent = nullptr);

    // Replaces what is shown. Runs without stats are left out.
    void setRuns(const std::vector<RunLayerStats>& runs);
    void clear();
    // True when no run shown has a per-layer stat.
    bool isEmpty() const;

    QStringList chartIds() const;
    ChartView* chart(const QString& id) const;
    QTableWidget* table() const { return m_table; }
    // What the bar or heatmap cell under `pos` (plot pixels of chart `id`) shows: "layer · key: value" or
    // "layer · run · key: value"; empty when nothing is there. Also the chart's tooltip while hovered.
    QString barText(const QString& id, const QPointF& pos) const;

  private:
    struct BarSeries;
    void addHeatmaps(const LayerChartSpec& spec, const std::vector<const RunLayerStats*>& runs,
                     const std::vector<std::string>& layers, const std::vector<BarSeries>& series);
    void showHoverText(ChartView* view, const QString& id);

    ChartStack* m_charts;
    QTableWidget* m_table;
};

} // namespace lathe::ui

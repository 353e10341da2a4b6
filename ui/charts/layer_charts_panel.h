// LayerChartsPanel: the per-layer stats of stored runs (a pruning's sparsity per layer, a sensitivity
// sweep's accuracy drop per layer and ratio, ...). Every layer chart spec (chart_spec.h) that takes one
// of their keys becomes a bar chart — the layers along x, one bar per run and key — and every stat is
// listed in a table, one row per layer, one column per run and key.
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
    // What the bar under `pos` (plot coordinates of chart `id`) shows: "layer · key · run: value"; empty
    // when no bar is there. Also the chart's tooltip while the pointer hovers it.
    QString barText(const QString& id, const QPointF& pos) const;

  private:
    ChartStack* m_charts;
    QTableWidget* m_table;
};

} // namespace lathe::ui

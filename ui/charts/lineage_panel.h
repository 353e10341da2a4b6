// LineagePanel: what each step of one run did. The run's measurements in the order they were taken — the
// baseline (baseline_accuracy, baseline_model_bytes), every labelled measurement (a `measure` step's
// label, or a strategy's own before/after pair such as original/pruned), the final one — as bars of
// accuracy, median latency and model size, so a chain like prune -> finetune -> measure reads left to
// right.
#pragma once

#include "engine/store/run_store.h"

#include <QString>
#include <QWidget>

#include <vector>

namespace lathe::ui {

class ChartStack;
class ChartView;

class LineagePanel : public QWidget {
    Q_OBJECT
public:
    struct Stage {
        QString name;                                  // "baseline", "before", "pruned", "final"
        std::optional<double> accuracy, latencyMs, bytes; // latency at the batch size the run is judged by
    };

    explicit LineagePanel(QWidget* parent = nullptr);

    // The stages of `run` (its summary and the times of its labelled series decide their order). Fewer
    // than two stages: nothing to show (isEmpty()).
    void setRun(const RunStore& store, const RunRecord& run);
    void clear();
    bool isEmpty() const;
    const std::vector<Stage>& stages() const { return m_stages; }
    ChartView* chart(const QString& id) const; // "lineage_accuracy", "lineage_latency", "lineage_bytes"

    static std::vector<Stage> stagesOf(const RunStore& store, const RunRecord& run);

private:
    ChartStack* m_charts;
    std::vector<Stage> m_stages;
};

} // namespace lathe::ui

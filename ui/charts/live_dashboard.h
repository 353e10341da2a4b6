// LiveDashboard: the run charts, built from the chart-spec table (chart_spec.h). A chart appears when
// the first series it takes arrives; samples of any number of runs are routed by series name, each run
// in its own hue and each series of a run in its own dash and marker, so a sweep overlays readably.
// Fed by PlotPump (live) or from the store (run details).
#pragma once

#include "engine/core/metrics.h"
#include "ui/charts/chart_spec.h"

#include <QHash>
#include <QWidget>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

class QCPGraph;
class QGridLayout;
class QLabel;

namespace lathe::ui {

class ChartView;

class LiveDashboard : public QWidget {
    Q_OBJECT
public:
    explicit LiveDashboard(QWidget* parent = nullptr);
    ~LiveDashboard() override;

    // The chart of spec `id` ("latency", "throughput", ...); nullptr until a series for it arrived.
    ChartView* chart(const QString& id) const;
    // The charts shown, in display order.
    QList<ChartView*> charts() const;
    QStringList chartIds() const;
    // The graphs a (run, series) feeds, one per chart it is routed to.
    QList<QCPGraph*> graphsOf(std::int64_t runId, std::string_view series) const;

    void clear();
    // The legend name of a run ("#12 sparsity=0.5").
    void setRunLabel(std::int64_t runId, const QString& label);
    void appendSamples(const std::vector<MetricSample>& samples);
    // One queued replot per chart that received data since the last call. With a budget, charts are
    // taken in turn until their last replot times add up to `budgetMs` (at least one per call); the
    // others stay dirty for the next call, so a slow machine refreshes charts less often instead of
    // freezing the window. 0: every dirty chart.
    void replotDirty(double budgetMs = 0);
    void setDroppedCount(std::uint64_t dropped);
    std::uint64_t droppedCount() const { return m_dropped; }
    QLabel* droppedLabel() const { return m_droppedLabel; }
    // Samples appended (each counted once, whatever the number of charts it feeds).
    std::size_t pointCount() const { return m_points; }

private:
    struct Panel;
    struct Trace;
    struct SeriesKey {
        std::int64_t runId;
        std::string series;
        bool operator<(const SeriesKey& o) const { return runId != o.runId ? runId < o.runId : series < o.series; }
    };

    Panel& panelFor(const QString& specId);
    const std::vector<Trace*>& tracesFor(std::int64_t runId, std::string_view series);
    Trace* addTrace(Panel& panel, std::int64_t runId, const std::string& series);
    QString runLabel(std::int64_t runId) const;
    QString variantText(const Panel& panel, const std::string& series) const;
    void restyle(Panel& panel);
    void relayout();
    void updateCdfs();

    std::vector<std::unique_ptr<Panel>> m_panels; // display order
    std::size_t m_nextPanel = 0;                  // where the next budgeted replot round starts
    std::vector<std::unique_ptr<Trace>> m_traces;
    std::map<SeriesKey, std::vector<Trace*>> m_routes;
    std::vector<Trace*> m_pending; // traces with samples waiting for addData
    QHash<qint64, QString> m_runLabels;
    QGridLayout* m_grid;
    QLabel* m_placeholder;
    QLabel* m_droppedLabel;
    std::uint64_t m_dropped = 0;
    std::size_t m_points = 0;
};

} // namespace lathe::ui

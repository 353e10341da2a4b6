// LiveDashboard: the four run charts (latency over time, latency CDF, throughput and other metrics,
// training loss/accuracy). Samples from any number of runs are routed by series name; each run gets
// its own colour so the runs of a sweep overlay with a legend. Fed by PlotPump or a stored run.
#pragma once

#include "engine/core/metrics.h"

#include <QHash>
#include <QPointer>
#include <QWidget>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

class QCPGraph;
class QLabel;

namespace lathe::ui {

class ChartView;

class LiveDashboard : public QWidget {
    Q_OBJECT
public:
    enum class Chart { LatencyOverTime, LatencyCdf, Throughput, Training, Count };
    explicit LiveDashboard(QWidget* parent = nullptr);

    ChartView* chart(Chart which) const { return m_charts[static_cast<int>(which)]; }
    QList<ChartView*> charts() const;
    static Chart chartFor(std::string_view series);

    void clear();
    // The legend name of a run ("#12 sparsity=0.5").
    void setRunLabel(std::int64_t runId, const QString& label);
    void appendSamples(const std::vector<MetricSample>& samples);
    // One queued replot per chart that received data since the last call.
    void replotDirty();
    void setDroppedCount(std::uint64_t dropped);
    std::uint64_t droppedCount() const { return m_dropped; }
    QLabel* droppedLabel() const { return m_droppedLabel; }
    std::size_t pointCount() const { return m_points; }

private:
    struct SeriesKey {
        std::int64_t runId;
        std::string series;
        bool operator<(const SeriesKey& o) const { return runId != o.runId ? runId < o.runId : series < o.series; }
    };
    struct Cdf {
        std::vector<double> sorted;
        QCPGraph* graph = nullptr;
        std::size_t sortedCount = 0; // sorted[0, sortedCount) is in order
        bool dirty = false;
    };
    QCPGraph* graphFor(std::int64_t runId, const std::string& series);
    QColor colorFor(std::int64_t runId, const std::string& series);
    void updateCdfs();

    ChartView* m_charts[static_cast<int>(Chart::Count)] = {};
    bool m_dirty[static_cast<int>(Chart::Count)] = {};
    std::map<SeriesKey, QCPGraph*> m_graphs;
    std::map<SeriesKey, Cdf> m_cdfs;
    std::map<std::int64_t, int> m_runIndex;
    QHash<qint64, QString> m_runLabels;
    QLabel* m_droppedLabel;
    std::uint64_t m_dropped = 0;
    std::size_t m_points = 0;
};

} // namespace lathe::ui

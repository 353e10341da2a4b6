// ParetoChart: the accuracy / latency trade-off of several runs. One point per run at (p99 latency,
// accuracy), its area following the model's stored size, its colour its strategy family; the runs no other
// run beats on both accuracy and p99 latency are joined as the front and listed under the chart. Clicking
// a point asks for that run (runActivated).
#pragma once

#include <QString>
#include <QWidget>

#include <cstdint>
#include <string>
#include <vector>

class QLabel;

namespace lathe::ui {

class ChartView;

class ParetoChart : public QWidget {
    Q_OBJECT
public:
    struct Point {
        std::int64_t runId = 0;
        QString label;  // "#12 mlp-prune-patterns [...]"
        QString family; // "prune", "distill", "baseline"
        double accuracy = 0, latencyP99Ms = 0, modelBytes = 0;
    };

    explicit ParetoChart(QWidget* parent = nullptr);

    void setPoints(const std::vector<Point>& points);
    // The runs on the front, by ascending latency.
    const std::vector<std::int64_t>& front() const { return m_front; }
    ChartView* view() const { return m_view; }
    QLabel* frontLabel() const { return m_frontLabel; }
    // The point under `pos` (plot pixels): its run, or 0.
    std::int64_t runAt(const QPointF& pos) const;

    // The family a strategy chain belongs to ("train > prune.magnitude > finetune" -> "prune"): that of its
    // last step other than train, finetune and measure; "baseline" when there is none.
    static QString familyOf(const std::string& strategyChain);

signals:
    void runActivated(std::int64_t runId);

private:
    ChartView* m_view;
    QLabel* m_frontLabel;
    std::vector<Point> m_points;
    std::vector<std::int64_t> m_front;
};

} // namespace lathe::ui

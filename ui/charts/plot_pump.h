// PlotPump: the UI end of the sample ring. A ~30 Hz timer drains whatever the engine produced,
// appends it to the dashboard and asks for one replot per chart; the engine never signals per sample.
#pragma once

#include <QElapsedTimer>
#include <QObject>
#include <QTimer>

#include <cstdint>
#include <vector>

namespace lathe {
class SampleRing;
struct MetricSample;
}

namespace lathe::ui {

class LiveDashboard;

class PlotPump : public QObject {
    Q_OBJECT
public:
    static constexpr int kIntervalMs = 33;
    // Replot time a tick may queue (see LiveDashboard::replotDirty): two thirds of the interval,
    // the rest is left to input and painting.
    static constexpr double kReplotBudgetMs = 22;
    PlotPump(LiveDashboard* dashboard, QObject* parent = nullptr);

    void setRing(SampleRing* ring) { m_ring = ring; }
    SampleRing* ring() const { return m_ring; }
    void start();
    // Stops the timer and replots whatever a budgeted tick left dirty.
    void stop();
    bool isActive() const { return m_timer.isActive(); }
    // Drains and replots once (the timer's work; also for a last drain after a run ends).
    void tick();

    std::uint64_t ticks() const { return m_ticks; }
    std::uint64_t samplesDrained() const { return m_drained; }
    double lastTickMs() const { return m_lastTickMs; }
    double maxTickMs() const { return m_maxTickMs; }

signals:
    void samplesDrained(qint64 count);
    void droppedChanged(quint64 dropped);
    // After each tick, charts' replots asked for (they run when the event loop next turns).
    void ticked(quint64 tick);

private:
    LiveDashboard* m_dashboard;
    SampleRing* m_ring = nullptr;
    QTimer m_timer;
    std::vector<MetricSample> m_batch;
    std::uint64_t m_ticks = 0, m_drained = 0, m_lastDropped = 0;
    double m_lastTickMs = 0, m_maxTickMs = 0;
};

} // namespace lathe::ui

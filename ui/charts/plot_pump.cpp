// PlotPump: drain the ring on a timer, append, replot once per chart.
#include "ui/charts/plot_pump.h"

#include "engine/experiment/sample_ring.h"
#include "ui/charts/live_dashboard.h"

namespace lathe::ui {

namespace {
// A tick never takes more than this many samples, so one tick stays short even after a stall;
// the rest waits for the next tick (and the ring's overflow policy covers a producer far ahead).
constexpr std::size_t kMaxPerTick = 1 << 16;
} // namespace

PlotPump::PlotPump(LiveDashboard* dashboard, QObject* parent) : QObject(parent), m_dashboard(dashboard) {
    m_timer.setInterval(kIntervalMs);
    m_timer.setTimerType(Qt::PreciseTimer);
    connect(&m_timer, &QTimer::timeout, this, &PlotPump::tick);
}

void PlotPump::start() { m_timer.start(); }
void PlotPump::stop() {
    m_timer.stop();
    m_dashboard->replotDirty();
}

void PlotPump::tick() {
    if (!m_ring) {
        return;
    }
    QElapsedTimer clock;
    clock.start();
    m_batch.clear();
    const std::size_t n = m_ring->drain(m_batch, kMaxPerTick);
    ++m_ticks;
    if (n > 0) {
        m_drained += n;
        m_dashboard->appendSamples(m_batch);
        emit samplesDrained(static_cast<qint64>(n));
    }
    const std::uint64_t dropped = m_ring->dropped();
    if (dropped != m_lastDropped) {
        m_lastDropped = dropped;
        m_dashboard->setDroppedCount(dropped);
        emit droppedChanged(dropped);
    }
    m_dashboard->replotDirty(kReplotBudgetMs);
    m_lastTickMs = static_cast<double>(clock.nsecsElapsed()) / 1e6;
    m_maxTickMs = std::max(m_maxTickMs, m_lastTickMs);
    emit ticked(m_ticks);
}

} // namespace lathe::ui

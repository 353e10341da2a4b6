// The UI-stall harness: idle baseline, producer thread, watchdog, figures.
#include "tests/ui/stall_harness.h"

#include "engine/experiment/sample_ring.h"
#include "ui/charts/chart_view.h"
#include "ui/charts/live_dashboard.h"
#include "ui/charts/plot_pump.h"

#include <qcustomplot.h>

#include <QElapsedTimer>
#include <QEventLoop>
#include <QMap>
#include <QTimer>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <limits>
#include <thread>

#include <time.h>

namespace lathe::test {

namespace {
constexpr int kWatchdogMs = 5;

double threadCpuMs() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

// A real event loop: QTest::qWait sleeps 10 ms between event batches, which would read as stalls.
void spinEventLoop(int ms) {
    QEventLoop loop;
    QTimer::singleShot(ms, &loop, &QEventLoop::quit);
    loop.exec();
}

// How late a 5 ms timer fires on this thread while `spin` runs the event loop.
template <typename Spin>
StallStats watchStalls(Spin spin) {
    StallStats stats;
    QElapsedTimer sinceLast, sinceStart;
    sinceStart.start();
    double cpuLast = threadCpuMs();
    QTimer watchdog;
    watchdog.setTimerType(Qt::PreciseTimer);
    watchdog.setInterval(kWatchdogMs);
    QObject::connect(&watchdog, &QTimer::timeout, [&] {
        if (sinceLast.isValid()) {
            const double late = static_cast<double>(sinceLast.nsecsElapsed()) / 1e6 - kWatchdogMs;
            const double cpu = threadCpuMs();
            stats.ticks.push_back({static_cast<double>(sinceStart.nsecsElapsed()) / 1e6, std::max(0.0, late), cpu - cpuLast});
        }
        cpuLast = threadCpuMs();
        sinceLast.restart();
    });
    watchdog.start();
    spin();
    watchdog.stop();
    return stats.window(0, std::numeric_limits<double>::infinity());
}

double ratio(double busy, double idle) { return idle > 0.01 ? busy / idle : busy / 0.01; }
} // namespace

double StallStats::p50() const { return stallsMs[stallsMs.size() / 2]; }
double StallStats::p99() const { return stallsMs[std::min(stallsMs.size() - 1, stallsMs.size() * 99 / 100)]; }
double StallStats::max() const { return stallsMs.back(); }

const WatchdogTick& StallStats::longest() const {
    static const WatchdogTick kNone;
    auto it = std::max_element(ticks.begin(), ticks.end(),
                               [](const WatchdogTick& a, const WatchdogTick& b) { return a.lateMs < b.lateMs; });
    return it == ticks.end() ? kNone : *it;
}

StallStats StallStats::window(double fromMs, double toMs) const {
    StallStats out;
    for (const WatchdogTick& t : ticks) {
        if (t.atMs >= fromMs && t.atMs < toMs) {
            out.ticks.push_back(t);
            out.stallsMs.push_back(t.lateMs);
        }
    }
    std::sort(out.stallsMs.begin(), out.stallsMs.end());
    if (out.stallsMs.empty()) out.stallsMs.push_back(0);
    return out;
}

StallReport measureStalls(ui::LiveDashboard& dashboard, int ratePerS, int seconds, int idleMs) {
    StallReport report;
    SampleRing ring(1 << 16);
    ui::PlotPump pump(&dashboard);
    pump.setRing(&ring);

    // Idle baseline: the pump ticks over an empty ring, the watchdog measures the event loop.
    QElapsedTimer wall;
    wall.start();
    report.idle = watchStalls([&] {
        pump.start();
        spinEventLoop(idleMs);
        pump.stop();
    });
    report.idleTickHz = static_cast<double>(pump.ticks()) / (static_cast<double>(wall.nsecsElapsed()) / 1e9);
    const std::uint64_t ticksBefore = pump.ticks();

    std::atomic<bool> stop{false};
    std::atomic<std::int64_t> produced{0};
    std::thread producer([&] {
        const char* series[] = {"latency_ms/b64", "latency_ms/b1", "before/latency_ms/b4", "loss"};
        const auto start = std::chrono::steady_clock::now();
        std::int64_t i = 0;
        std::uint64_t rng = 0x9E3779B97F4A7C15ull;
        while (!stop.load(std::memory_order_relaxed)) {
            const double elapsedS = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            const auto due = static_cast<std::int64_t>(elapsedS * ratePerS);
            for (; i < due; ++i) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                const double noise = static_cast<double>(rng % 1000) / 1000.0;
                const std::int64_t run = 1 + i % 4;
                const int s = static_cast<int>((i / 4) % 4);
                const std::int64_t step = i / 16;
                double value = 0;
                switch (s) {
                case 0: value = 2.0 + 0.5 * run + noise; break;
                case 1: value = 0.05 + 0.01 * run + 0.02 * noise; break;
                case 2: value = 0.2 + 0.05 * run + 0.05 * noise; break;
                default: value = 2.3 / (1.0 + step * 0.001) + 0.05 * noise; break;
                }
                ring.push(makeSample(run, series[s], step, elapsedS * 1000.0, value));
            }
            produced.store(i, std::memory_order_relaxed);
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        produced.store(i, std::memory_order_relaxed);
    });

    // Replots between consecutive ticks, per chart. The first ticks after a chart appears also see
    // the resizes of the grid it joins, so counting starts a few ticks later.
    constexpr std::uint64_t kSettleTicks = 4;
    struct Seen {
        int lastCount = 0;
        std::uint64_t since = 0;
        int maxPerTick = 0;
    };
    QMap<ui::ChartView*, Seen> seen;
    std::uint64_t lastNewChartTick = 0;
    QObject::connect(&pump, &ui::PlotPump::ticked, &pump, [&](quint64 tick) {
        for (ui::ChartView* chart : dashboard.charts()) {
            auto it = seen.find(chart);
            if (it == seen.end()) {
                seen.insert(chart, {chart->replotCount(), tick, 0});
                lastNewChartTick = tick;
                continue;
            }
            if (tick == lastNewChartTick + kSettleTicks) report.chartsSettledMs = static_cast<double>(wall.nsecsElapsed()) / 1e6;
            if (tick > it->since + kSettleTicks) it->maxPerTick = std::max(it->maxPerTick, chart->replotCount() - it->lastCount);
            it->lastCount = chart->replotCount();
        }
    });
    wall.restart();
    report.busy = watchStalls([&] {
        pump.start();
        spinEventLoop(seconds * 1000);
        pump.stop();
    });
    report.seconds = static_cast<double>(wall.nsecsElapsed()) / 1e9;
    report.appearing = report.busy.window(0, report.chartsSettledMs);
    report.steady = report.busy.window(report.chartsSettledMs, std::numeric_limits<double>::infinity());
    report.ticks = pump.ticks() - ticksBefore;
    report.busyTickHz = static_cast<double>(report.ticks) / report.seconds;
    // Replots of the streaming phase only: the last drain below replots once more.
    for (ui::ChartView* chart : dashboard.charts()) {
        ChartRate rate;
        rate.id = chart->objectName();
        rate.replots = chart->replotCount();
        rate.graphs = chart->plot()->graphCount();
        rate.hz = rate.replots / report.seconds;
        rate.meanReplotMs = chart->plot()->replotTime(true);
        rate.maxPerTick = seen.value(chart).maxPerTick;
        report.charts.append(rate);
    }
    stop = true;
    producer.join();
    pump.tick(); // what was left in the ring

    report.produced = produced.load();
    report.ratePerS = static_cast<double>(report.produced) / report.seconds;
    report.drained = pump.samplesDrained();
    report.dropped = ring.dropped();
    report.dashboardDropped = dashboard.droppedCount();
    report.maxTickMs = pump.maxTickMs();
    report.points = dashboard.pointCount();
    return report;
}

void StallReport::print() const {
    qInfo("streamed %lld samples in %.2f s (%.0f samples/s), drained %llu, dropped %llu, points %zu",
          static_cast<long long>(produced), seconds, ratePerS, static_cast<unsigned long long>(drained),
          static_cast<unsigned long long>(dropped), points);
    const auto line = [](const char* what, const StallStats& s) {
        qInfo("UI stall, %-30s p50 %.2f ms, p99 %.2f ms, max %.2f ms at %.0f ms (UI thread busy %.1f ms of it), %zu watchdog ticks",
              what, s.p50(), s.p99(), s.max(), s.longest().atMs, s.longest().cpuMs, s.ticks.size());
    };
    line("idle event loop (same run):", idle);
    line("charts fed, whole:", busy);
    line("charts fed, while appearing:", appearing);
    line("charts fed, steady:", steady);
    qInfo("charts settled %.0f ms after streaming began", chartsSettledMs);
    qInfo("steady / idle: p50 x%.2f, p99 x%.2f (+%.2f ms), max x%.2f (+%.2f ms)", ratio(steady.p50(), idle.p50()),
          ratio(steady.p99(), idle.p99()), steady.p99() - idle.p99(), ratio(steady.max(), idle.max()),
          steady.max() - idle.max());
    qInfo("pump: %.1f ticks/s fed, %.1f ticks/s idle (x%.2f), slowest tick %.2f ms", busyTickHz, idleTickHz,
          ratio(busyTickHz, idleTickHz), maxTickMs);
    for (const ChartRate& c : charts) {
        qInfo("chart '%s': %.1f replots/s (%d in %llu ticks, at most %d between two ticks), mean replot %.1f ms, %d graphs",
              qPrintable(c.id), c.hz, c.replots, static_cast<unsigned long long>(ticks), c.maxPerTick, c.meanReplotMs, c.graphs);
    }
}

} // namespace lathe::test

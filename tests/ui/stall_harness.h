// The UI-stall harness shared by test_ui_stall (what holds on any machine) and test_ui_stall_bench
// (timing bounds against the same machine's idle event loop): a producer thread streams metric
// samples through the SampleRing into a LiveDashboard while a 5 ms watchdog timer measures how late
// the UI thread runs it.
#pragma once

#include <QList>
#include <QString>

#include <cstdint>
#include <vector>

namespace lathe::ui {
class LiveDashboard;
}

namespace lathe::test {

// One watchdog tick: how late it fired, when, and how much CPU time the UI thread used since the tick
// before (a stall the UI thread spends computing, rather than waiting for a core the machine gives to
// other processes).
struct WatchdogTick {
    double atMs = 0;   // from the start of the measurement
    double lateMs = 0;
    double cpuMs = 0;
};

struct StallStats {
    std::vector<double> stallsMs; // sorted, one per watchdog tick
    std::vector<WatchdogTick> ticks; // in time order
    double p50() const;
    double p99() const;
    double max() const;
    const WatchdogTick& longest() const; // the latest tick of the longest stall
    // The same statistics over the ticks in [fromMs, toMs).
    StallStats window(double fromMs, double toMs) const;
};

struct ChartRate {
    QString id;
    int replots = 0;
    int maxPerTick = 0; // most replots between two pump ticks, once the layout has settled
    int graphs = 0;
    double hz = 0;
    double meanReplotMs = 0;
};

struct StallReport {
    // Idle: the same pump and watchdog with nothing streaming (the machine's own noise floor).
    StallStats idle;
    double idleTickHz = 0;
    // Busy: charts fed at the target rate, split where the last chart has appeared and settled into the
    // layout: `appearing` holds the one-off cost of creating the charts (widgets, first layout, first paint),
    // `steady` the streaming that follows.
    StallStats busy;
    StallStats appearing, steady;
    double chartsSettledMs = 0;
    double busyTickHz = 0;
    std::int64_t produced = 0;
    double seconds = 0;
    double ratePerS = 0;
    std::uint64_t drained = 0;
    std::uint64_t dropped = 0;
    std::uint64_t dashboardDropped = 0;
    std::uint64_t ticks = 0; // pump ticks while streaming
    double maxTickMs = 0;
    std::size_t points = 0;
    QList<ChartRate> charts;
    // Prints every figure (qInfo), ratios to the idle baseline included.
    void print() const;
};

// Streams `ratePerS` samples/s for `seconds` s into `dashboard` (4 runs, latency at two batch sizes,
// a labelled measure step's latency and the training loss), after `idleMs` of idle baseline.
StallReport measureStalls(ui::LiveDashboard& dashboard, int ratePerS, int seconds, int idleMs);

} // namespace lathe::test

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

struct StallStats {
    std::vector<double> stallsMs; // sorted, one per watchdog tick
    double p50() const;
    double p99() const;
    double max() const;
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
    // Busy: charts fed at the target rate.
    StallStats busy;
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

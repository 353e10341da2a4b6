// UI stall benchmark (label slow): 20,000 samples/s streamed into the live charts for 5 s, beside an
// idle event loop measured in the same run on the same machine. Prints absolute figures and ratios
// and judges the charts by what they add to the idle baseline, so a busy machine does not fail it
// and a quiet one does not hide a regression:
//   once the charts exist: p99 stall fed <= p99 idle + 50 ms;  max stall fed <= max idle + 100 ms;
//   while they appear (widgets created, laid out and painted for the first time, a one-off of the first run
//   a window shows, like opening a tab): the UI thread's CPU time in the longest stall <= 500 ms. That stall is
//   one event: 45-70 ms of UI-thread CPU offscreen, 63-240 ms under Xvfb (the first paint creates the X11
//   backing store and rasterizes the glyphs); its wall time also stretches with whatever else the machine
//   runs, so it is judged by the work the UI thread does in it, with room for the X11 first paint, and
//   catches a chart creation that grows with the data (a stall of seconds);
//   pump ticks >= 80 % of the idle pump's tick rate (~30 Hz when quiet); every chart refreshes at
//   >= 1/3 of it (the pump's replot budget lets a slow machine refresh charts in turn).
#include "tests/ui/stall_harness.h"

#include "ui/charts/live_dashboard.h"

#include <QtTest>

using namespace lathe;
using namespace lathe::ui;

namespace {
// What the charts may add to the idle event loop's stalls. 50 ms is the budget one frame of a
// 20 Hz display may slip; the max gets twice that for the one-off costs (first layout, log tickers).
constexpr double kAddedP99Ms = 50;
constexpr double kAddedMaxMs = 100;
constexpr double kAppearingCpuMs = 500;
constexpr double kMinTickShare = 0.8;
constexpr double kMinReplotShare = 1.0 / 3.0;
constexpr int kRatePerS = 20000;
} // namespace

class TestUiStallBench : public QObject {
    Q_OBJECT
private slots:
    void stallAgainstIdleBaseline() {
        // The bounds are written for a release build: sanitizer builds (asan/tsan presets) run several
        // times slower (under ASan on two shared cores: max stall 82-95 ms, p99 18-23 ms).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
        QSKIP("timing bounds are not judged in a sanitizer build");
#endif
        LiveDashboard dashboard;
        dashboard.resize(1400, 900);
        dashboard.show();
        QVERIFY(QTest::qWaitForWindowExposed(&dashboard));

        const test::StallReport r = test::measureStalls(dashboard, kRatePerS, 5, 2000);
        r.print();

        QCOMPARE(r.drained + r.dropped, static_cast<std::uint64_t>(r.produced));
        QVERIFY2(r.ratePerS > 0.9 * kRatePerS, qPrintable(QStringLiteral("the producer reached %1 samples/s").arg(r.ratePerS)));
        QVERIFY2(r.chartsSettledMs > 0 && r.chartsSettledMs < 1000,
                 qPrintable(QStringLiteral("charts settled %1 ms after streaming began").arg(r.chartsSettledMs)));
        QVERIFY2(r.steady.p99() <= r.idle.p99() + kAddedP99Ms,
                 qPrintable(QStringLiteral("p99 stall %1 ms fed vs %2 ms idle").arg(r.steady.p99()).arg(r.idle.p99())));
        QVERIFY2(r.steady.max() <= r.idle.max() + kAddedMaxMs,
                 qPrintable(QStringLiteral("max stall %1 ms fed vs %2 ms idle").arg(r.steady.max()).arg(r.idle.max())));
        QVERIFY2(r.appearing.longest().cpuMs <= kAppearingCpuMs,
                 qPrintable(QStringLiteral("the charts' appearance kept the UI thread busy %1 ms (a %2 ms stall)")
                                .arg(r.appearing.longest().cpuMs).arg(r.appearing.max())));
        QVERIFY2(r.busyTickHz >= kMinTickShare * r.idleTickHz,
                 qPrintable(QStringLiteral("pump %1 ticks/s fed vs %2 idle").arg(r.busyTickHz).arg(r.idleTickHz)));
        for (const test::ChartRate& c : r.charts) {
            QVERIFY2(c.hz >= kMinReplotShare * r.idleTickHz,
                     qPrintable(QStringLiteral("%1 refreshed at %2 Hz, idle pump %3 Hz").arg(c.id).arg(c.hz).arg(r.idleTickHz)));
            QVERIFY2(c.maxPerTick <= 1, qPrintable(c.id));
        }
    }
};

QTEST_MAIN(TestUiStallBench)
#include "test_ui_stall_bench.moc"

// UI stall while streaming (issue 4), the part that holds on any machine: a producer thread streams
// 20,000 samples/s into the live charts through the SampleRing for 2 s. The figures (p50/p99/max
// stall beside an idle event loop's, replot rates) are always printed; the checks are that every
// sample arrived or was counted as dropped, the dashboard shows the ring's drop count, and replots
// are coalesced to at most one per chart per pump tick. The timing bounds are in test_ui_stall_bench
// (label slow), judged against the same machine's idle event loop.
#include "tests/ui/stall_harness.h"

#include "ui/charts/live_dashboard.h"

#include <QtTest>

using namespace lathe;
using namespace lathe::ui;

class TestUiStall : public QObject {
    Q_OBJECT
private slots:
    void streamsAndCoalescesReplots() {
        LiveDashboard dashboard;
        dashboard.resize(1400, 900);
        dashboard.show();
        QVERIFY(QTest::qWaitForWindowExposed(&dashboard));

        const test::StallReport r = test::measureStalls(dashboard, 20000, 2, 500);
        r.print();

        QVERIFY(r.produced > 0);
        QVERIFY(r.busy.stallsMs.size() > 10);
        // Nothing lost silently: what the pump did not drain, the ring counted as dropped, and the
        // dashboard says so.
        QCOMPARE(r.drained + r.dropped, static_cast<std::uint64_t>(r.produced));
        QCOMPARE(r.dashboardDropped, r.dropped);
        QCOMPARE(r.points, static_cast<std::size_t>(r.drained));
        QVERIFY(r.ticks > 0);
        // The four series reach their charts: latency (two batch sizes and the "before" step), its
        // CDF and the training loss; nothing lands in "other".
        QStringList ids;
        for (const test::ChartRate& c : r.charts) ids << c.id;
        QCOMPARE(ids, (QStringList{"latency", "latency_cdf", "training_loss"}));
        for (const test::ChartRate& c : r.charts) {
            QVERIFY2(c.replots > 0, qPrintable(c.id + " never replotted"));
            // Coalesced: never more than one replot per chart between two pump ticks.
            QVERIFY2(c.maxPerTick <= 1, qPrintable(QStringLiteral("%1: %2 replots in one tick").arg(c.id).arg(c.maxPerTick)));
            QVERIFY2(c.replots <= static_cast<int>(r.ticks) + 4, qPrintable(c.id));
        }
    }
};

QTEST_MAIN(TestUiStall)
#include "test_ui_stall.moc"

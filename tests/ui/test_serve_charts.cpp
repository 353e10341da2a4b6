// The serve family's charts through real widgets (offscreen): a real serve.batching run on the CPU (an MLP
// with fresh weights serving synthetic images under a bursty stream) feeds the dashboard its queue depth,
// batch sizes, queue times, batch histogram and the live latency CDF; a serve.capacity sweep of three
// policies (simulate mode, for speed) feeds the latency-against-load chart with its SLO line and knees.
// With LATHE_SCREENSHOT_DIR set, both dashboards are saved there as PNG.
#include "tests/strategies/strategy_fixture.h"
#include "ui/charts/chart_view.h"
#include "ui/charts/live_dashboard.h"

#include <qcustomplot.h>

#include <QtTest>

using namespace lathe;
using namespace lathe::ui;

namespace {

ParamValues serveDefaults(const char* strategy) { return defaultValues(*StrategyRegistry::instance().find(strategy)); }

void save(LiveDashboard& dashboard, const char* file) {
    if (!qEnvironmentVariableIsSet("LATHE_SCREENSHOT_DIR")) return;
    for (ChartView* chart : dashboard.charts()) chart->plot()->replot(QCustomPlot::rpImmediateRefresh);
    const QString path = qEnvironmentVariable("LATHE_SCREENSHOT_DIR") + QLatin1Char('/') + QLatin1String(file);
    QVERIFY2(dashboard.grab().save(path), qPrintable(path));
}

} // namespace

class TestServeCharts : public QObject {
    Q_OBJECT

private slots:
    void streamingRunFillsTheServingCharts() {
        test::ContextFixture fx("mlp-784-256-128-10");
        fx.ctx.runStartMs = steadyClockMs(); // the time axis counts from here
        ParamValues v = serveDefaults("serve.batching");
        v.set("arrival", std::string("gamma"));
        v.set("cv", 3.0);
        v.set("rate_per_s", 1500.0);
        v.set("requests", std::int64_t(1500));
        v.set("warmup_requests", std::int64_t(100));
        v.set("max_batch", std::int64_t(16));
        v.set("max_queue_delay_ms", 1.0);
        StrategyRegistry::instance().create("serve.batching", v)->apply(fx.ctx);
        QCOMPARE(fx.summary.at("served"), 1400.0);

        LiveDashboard dashboard;
        dashboard.resize(1400, 1300);
        dashboard.setRunLabel(0, QStringLiteral("serve.batching dynamic (real)"));
        dashboard.appendSamples(fx.sink.samples);
        dashboard.replotDirty();
        for (const char* id : {"serve_queue_depth", "serve_batch_size", "serve_queue_time", "serve_batch_hist",
                               "latency_cdf", "latency"})
            QVERIFY2(dashboard.chart(QString::fromLatin1(id)), id);
        QVERIFY(!dashboard.chart(QStringLiteral("other"))); // every serving series has its chart
        QCOMPARE(dashboard.graphsOf(0, "serve/latency_ms").size(), std::size_t(2)); // over time and its CDF
        // The CDF (drawn from a bounded number of points) climbs to 1; the batch sizes never exceed max_batch.
        const QCPGraph* cdf = dashboard.chart(QStringLiteral("latency_cdf"))->plot()->graph(0);
        QVERIFY(cdf->dataCount() > 10);
        QCOMPARE((cdf->data()->constEnd() - 1)->value, 1.0);
        const QCPGraph* sizes = dashboard.graphsOf(0, "serve/batch_size").front();
        for (auto it = sizes->data()->constBegin(); it != sizes->data()->constEnd(); ++it)
            QVERIFY(it->value >= 1 && it->value <= 16);
        save(dashboard, "serve-batching.png");
    }

    void capacitySweepChartsTheKnees() {
        test::ContextFixture fx("mlp-784-256-128-10");
        fx.ctx.runStartMs = steadyClockMs(); // the time axis counts from here
        ParamValues v = serveDefaults("serve.capacity");
        v.set("mode", std::string("simulate"));
        v.set("policies", std::string("none,dynamic,adaptive"));
        v.set("rates", std::vector<std::int64_t>{2000, 5000, 10000, 20000, 40000, 80000});
        v.set("requests", std::int64_t(3000));
        v.set("fit_repeats", std::int64_t(10));
        v.set("slo_ms", 2.0);
        v.set("max_batch", std::int64_t(32));
        v.set("max_queue_delay_ms", 0.5);
        StrategyRegistry::instance().create("serve.capacity", v)->apply(fx.ctx);
        QCOMPARE(fx.summary.at("simulated"), 1.0);
        for (const char* p : {"none", "dynamic", "adaptive"})
            QVERIFY2(fx.summary.count(std::string("knee_rate_per_s@") + p), p);

        LiveDashboard dashboard;
        dashboard.resize(1400, 520);
        dashboard.setRunLabel(0, QStringLiteral("serve.capacity (simulated)"));
        dashboard.appendSamples(fx.sink.samples);
        dashboard.replotDirty();
        ChartView* chart = dashboard.chart(QStringLiteral("serve_capacity"));
        QVERIFY(chart);
        QVERIFY(dashboard.chart(QStringLiteral("serve_goodput")));
        for (const char* p : {"none", "dynamic", "adaptive"})
            QCOMPARE(dashboard.graphsOf(0, std::string(p) + "/serve_p99_ms").front()->dataCount(), 6);
        QCOMPARE(dashboard.graphsOf(0, "slo_ms").front()->dataCount(), 6);
        // Each policy with a knee has it as one point, at the knee's rate.
        for (const char* p : {"none", "dynamic", "adaptive"}) {
            const double knee = fx.summary.at(std::string("knee_rate_per_s@") + p);
            const auto graphs = dashboard.graphsOf(0, std::string(p) + "/knee_ms");
            if (knee == 0) {
                QVERIFY(graphs.empty());
                continue;
            }
            QCOMPARE(graphs.front()->dataCount(), 1);
            QCOMPARE(graphs.front()->data()->constBegin()->key, knee);
        }
        save(dashboard, "serve-capacity.png");
    }
};

LATHE_TEST_MAIN(TestServeCharts)
#include "test_serve_charts.moc"

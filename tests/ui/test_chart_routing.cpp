// Charts from the spec table: series names parse into label / base / batch, every series the engine
// emits today lands on the right chart ("before/latency_ms/b4" once went to the throughput chart),
// unknown series go to "other", families can add charts; and a dashboard fed a 3-run sweep draws
// each series in its own pen, on log axes where values span decades, with markers for single points
// and a legend outside the plot.
#include "ui/charts/chart_spec.h"
#include "ui/charts/chart_style.h"
#include "ui/charts/chart_view.h"
#include "ui/charts/live_dashboard.h"

#include "engine/core/errors.h"
#include "tests/support/test_support.h"

#include <qcustomplot.h>

#include <QMenu>
#include <QtTest>

#include <memory>

#include <cmath>
#include <set>
#include <tuple>

using namespace lathe;
using namespace lathe::ui;

namespace {
QString joined(const std::vector<QString>& ids) {
    QStringList l(ids.begin(), ids.end());
    return l.join(QLatin1Char(','));
}

// Redmean colour distance (0..~765): below ~100 two hues read as "the same colour" at line width 1.
double colorDistance(const QColor& a, const QColor& b) {
    const double rm = (a.red() + b.red()) / 2.0;
    const double dr = a.red() - b.red(), dg = a.green() - b.green(), db = a.blue() - b.blue();
    return std::sqrt((2 + rm / 256) * dr * dr + 4 * dg * dg + (2 + (255 - rm) / 256) * db * db);
}

// One run of a sweep as the engine streams it: training (per step and per epoch), a measure step
// labelled "before" at batch 4, and the final measurement at batch 1 and 64.
std::vector<MetricSample> runSamples(std::int64_t run, std::uint64_t seed) {
    std::vector<MetricSample> out;
    std::uint64_t rng = seed;
    auto noise = [&rng] {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        return static_cast<double>(rng >> 40) / static_cast<double>(1ull << 24);
    };
    double t = 0;
    for (int step = 1; step <= 200; ++step) out.push_back(makeSample(run, "loss", step, t += 5, 2.3 / (1 + step * 0.02) + 0.1 * noise()));
    for (int epoch = 1; epoch <= 2; ++epoch) {
        out.push_back(makeSample(run, "train_loss", epoch, t, 0.6 / epoch));
        out.push_back(makeSample(run, "train_accuracy", epoch, t, 0.75 + 0.05 * epoch));
        out.push_back(makeSample(run, "val_accuracy", epoch, t, 0.74 + 0.05 * epoch));
    }
    for (int i = 0; i < 50; ++i) out.push_back(makeSample(run, "before/latency_ms/b4", i, t += 1, 0.2 + 0.05 * noise()));
    out.push_back(makeSample(run, "before/throughput_per_s", 4, t, 20000));
    for (std::int64_t b : {1, 64}) {
        const std::string series = "latency_ms/b" + std::to_string(b);
        for (int i = 0; i < 100; ++i) out.push_back(makeSample(run, series, i, t += 1, 0.05 * static_cast<double>(b) * (1 + 0.2 * noise())));
        out.push_back(makeSample(run, "throughput_per_s", b, t, 1000.0 * static_cast<double>(b) / (0.05 * static_cast<double>(b))));
    }
    return out;
}
} // namespace

class TestChartRouting : public QObject {
    Q_OBJECT
private slots:
    void cleanup() { ChartSpecRegistry::resetToBuiltins(); }

    void parsesSeriesNames_data() {
        QTest::addColumn<QString>("series");
        QTest::addColumn<QString>("label");
        QTest::addColumn<QString>("base");
        QTest::addColumn<qint64>("batch"); // -1: none
        QTest::newRow("plain") << "loss" << "" << "loss" << qint64(-1);
        QTest::newRow("batch") << "latency_ms/b64" << "" << "latency_ms" << qint64(64);
        QTest::newRow("label+batch") << "before/latency_ms/b4" << "before" << "latency_ms" << qint64(4);
        QTest::newRow("label") << "after/throughput_per_s" << "after" << "throughput_per_s" << qint64(-1);
        QTest::newRow("nested label") << "a/b/latency_ms/b1" << "a/b" << "latency_ms" << qint64(1);
        QTest::newRow("b without digits") << "after/bias" << "after" << "bias" << qint64(-1);
        QTest::newRow("base starting with b") << "b16" << "" << "b16" << qint64(-1);
        QTest::newRow("future family") << "serve_latency_ms/b32" << "" << "serve_latency_ms" << qint64(32);
    }
    void parsesSeriesNames() {
        QFETCH(QString, series);
        QFETCH(QString, label);
        QFETCH(QString, base);
        QFETCH(qint64, batch);
        const SeriesName n = parseSeriesName(series.toStdString());
        QCOMPARE(QString::fromStdString(n.label), label);
        QCOMPARE(QString::fromStdString(n.base), base);
        QCOMPARE(n.batch.has_value() ? qint64(*n.batch) : qint64(-1), batch);
    }

    void routesSeries_data() {
        QTest::addColumn<QString>("series");
        QTest::addColumn<QString>("charts");
        QTest::newRow("latency") << "latency_ms/b64" << "latency,latency_cdf";
        QTest::newRow("labelled latency") << "before/latency_ms/b4" << "latency,latency_cdf";
        QTest::newRow("throughput") << "throughput_per_s" << "throughput";
        QTest::newRow("labelled throughput") << "after/throughput_per_s" << "throughput";
        QTest::newRow("throughput with batch") << "throughput_per_s/b64" << "throughput";
        QTest::newRow("loss per step") << "loss" << "training_loss";
        QTest::newRow("loss per epoch") << "train_loss" << "epoch_loss";
        QTest::newRow("scratch loss") << "loss_scratch" << "training_loss";
        QTest::newRow("scratch val accuracy") << "val_accuracy_scratch" << "accuracy";
        QTest::newRow("distillation soft part") << "loss_soft" << "distill_loss_parts";
        QTest::newRow("distillation hard part") << "loss_hard" << "distill_loss_parts";
        QTest::newRow("gradual pruning sparsity") << "sparsity" << "sparsity";
        QTest::newRow("train accuracy") << "train_accuracy" << "accuracy";
        QTest::newRow("val accuracy") << "val_accuracy" << "accuracy";
        QTest::newRow("labelled accuracy") << "after/accuracy" << "accuracy";
        QTest::newRow("unknown") << "spectral_gap" << "other";
        QTest::newRow("not latency") << "serve_latency_ms" << "other";
        QTest::newRow("not loss") << "kd_soft_loss" << "other";
        QTest::newRow("summary-like key") << "latency_p50_ms" << "other";
    }
    void routesSeries() {
        QFETCH(QString, series);
        QFETCH(QString, charts);
        QCOMPARE(joined(ChartSpecRegistry::route(series.toStdString())), charts);
    }

    void familiesAddCharts() {
        ChartSpec spec;
        spec.id = QStringLiteral("rank");
        spec.title = QStringLiteral("Effective rank per layer");
        spec.xAxis = {QStringLiteral("step"), {}};
        spec.yAxis = {QStringLiteral("rank"), {}};
        spec.draw = DrawStyle::Markers;
        spec.matches = matchBase({"effective_rank"});
        spec.order = 350;
        QCOMPARE(joined(ChartSpecRegistry::route("effective_rank")), QStringLiteral("other"));
        ChartSpecRegistry::add(spec);
        QCOMPARE(joined(ChartSpecRegistry::route("effective_rank")), QStringLiteral("rank"));
        QCOMPARE(joined(ChartSpecRegistry::route("after/effective_rank")), QStringLiteral("rank"));
        QVERIFY(test::errorOf<ConfigError>([&] { ChartSpecRegistry::add(spec); }).find("twice") != std::string::npos);
        ChartSpec noMatcher;
        noMatcher.id = QStringLiteral("x");
        QVERIFY(test::errorOf<ConfigError>([&] { ChartSpecRegistry::add(noMatcher); }).find("matcher") != std::string::npos);
        // Display order follows `order`; "other" stays last.
        QStringList ids;
        for (const ChartSpec& s : ChartSpecRegistry::specs()) ids << s.id;
        QCOMPARE(ids.indexOf(QStringLiteral("rank")), ids.indexOf(QStringLiteral("throughput")) + 1);
        QCOMPARE(ids.last(), QStringLiteral("other"));

        // The dashboard shows it without any change of its own.
        LiveDashboard dashboard;
        dashboard.appendSamples({makeSample(1, "effective_rank", 0, 0, 50), makeSample(1, "effective_rank", 1, 1, 40)});
        dashboard.replotDirty();
        QCOMPARE(dashboard.chartIds(), QStringList{QStringLiteral("rank")});
        QCOMPARE(dashboard.chart(QStringLiteral("rank"))->plot()->graph(0)->lineStyle(), QCPGraph::lsNone);

        // A chart over time: x is the sample's tMs in seconds.
        ChartSpec queue;
        queue.id = QStringLiteral("queue");
        queue.title = QStringLiteral("Cache blocks in use");
        queue.x = XSource::TimeS;
        queue.xAxis = {QStringLiteral("time"), QStringLiteral("s")};
        queue.yAxis = {QStringLiteral("blocks"), {}};
        queue.matches = matchBase({"cache_blocks"});
        ChartSpecRegistry::add(queue);
        dashboard.appendSamples({makeSample(1, "cache_blocks", 7, 2500, 3)});
        const QCPGraph* depth = dashboard.graphsOf(1, "cache_blocks").front();
        QCOMPARE(depth->parentPlot(), dashboard.chart(QStringLiteral("queue"))->plot());
        QCOMPARE(depth->data()->constBegin()->key, 2.5);
        QCOMPARE(dashboard.chart(QStringLiteral("queue"))->plot()->xAxis->label(), QStringLiteral("time (s)"));
    }

    void stylesKeepSeriesApart() {
        // Several runs: hue per run, and every (run, series) pair has its own look.
        std::set<std::tuple<QRgb, int, int>> looks;
        for (int run = 0; run < 4; ++run) {
            for (int v = 0; v < 5; ++v) {
                const SeriesLook l = seriesLook(run, v, 4);
                looks.insert({l.color.rgb(), int(l.dash), int(l.marker)});
                QCOMPARE(l.color, seriesLook(run, 0, 4).color);
            }
        }
        QCOMPARE(looks.size(), std::size_t(20));
        // The first runs' hues are far apart (no two blues next to each other).
        for (int a = 0; a < 6; ++a) {
            for (int b = a + 1; b < 6; ++b) {
                QVERIFY2(colorDistance(paletteColor(a), paletteColor(b)) > 100,
                         qPrintable(QStringLiteral("palette %1 vs %2").arg(a).arg(b)));
            }
        }
        // One run: its series take distinct hues.
        QVERIFY(seriesLook(0, 0, 1).color != seriesLook(0, 1, 1).color);
    }

    void dashboardDrawsASweep() {
        LiveDashboard dashboard;
        dashboard.resize(1400, 1000);
        dashboard.show();
        QVERIFY(QTest::qWaitForWindowExposed(&dashboard));
        for (std::int64_t run = 1; run <= 3; ++run) {
            dashboard.setRunLabel(run, QStringLiteral("#%1 lr=1e-%2").arg(run).arg(run + 1));
            dashboard.appendSamples(runSamples(run, 42 + static_cast<std::uint64_t>(run)));
            dashboard.replotDirty();
        }
        dashboard.appendSamples({makeSample(2, "spectral_gap", 0, 0, 3), makeSample(2, "spectral_gap", 1, 1, 5)});
        dashboard.replotDirty();
        QCoreApplication::processEvents();

        QCOMPARE(dashboard.chartIds(), (QStringList{"latency", "latency_cdf", "throughput", "training_loss", "accuracy", "epoch_loss", "other"}));

        // Routing: the labelled measure step's latency sits on the latency charts, not throughput.
        const QList<QCPGraph*> before = dashboard.graphsOf(2, "before/latency_ms/b4");
        QCOMPARE(before.size(), 2);
        QCOMPARE(before[0]->parentPlot(), dashboard.chart("latency")->plot());
        QCOMPARE(before[1]->parentPlot(), dashboard.chart("latency_cdf")->plot());
        QCOMPARE(dashboard.graphsOf(2, "before/throughput_per_s").front()->parentPlot(), dashboard.chart("throughput")->plot());
        QCOMPARE(dashboard.graphsOf(2, "spectral_gap").front()->parentPlot(), dashboard.chart("other")->plot());
        QCOMPARE(dashboard.graphsOf(1, "train_loss").front()->parentPlot(), dashboard.chart("epoch_loss")->plot());
        QCOMPARE(dashboard.graphsOf(1, "val_accuracy").front()->parentPlot(), dashboard.chart("accuracy")->plot());
        QCOMPARE(dashboard.pointCount(), 3 * runSamples(1, 1).size() + 2);

        // Every graph of a chart has its own pen (colour, dash) or marker.
        for (ChartView* chart : dashboard.charts()) {
            QCustomPlot* plot = chart->plot();
            std::set<std::tuple<QRgb, int, int>> looks;
            for (int i = 0; i < plot->graphCount(); ++i) {
                const QCPGraph* g = plot->graph(i);
                looks.insert({g->pen().color().rgb(), int(g->pen().style()), int(g->scatterStyle().shape())});
            }
            QVERIFY2(int(looks.size()) == plot->graphCount(), qPrintable(chart->objectName()));
        }
        // Runs differ by hue: the three runs' latency at batch 1.
        const QColor c1 = dashboard.graphsOf(1, "latency_ms/b1").front()->pen().color();
        const QColor c2 = dashboard.graphsOf(2, "latency_ms/b1").front()->pen().color();
        const QColor c3 = dashboard.graphsOf(3, "latency_ms/b1").front()->pen().color();
        QVERIFY(colorDistance(c1, c2) > 100 && colorDistance(c1, c3) > 100 && colorDistance(c2, c3) > 100);

        // Log axes where values span decades; throughput against batch size on a log2 axis.
        auto isLog = [](QCPAxis* a) { return a->scaleType() == QCPAxis::stLogarithmic; };
        QCustomPlot* throughput = dashboard.chart("throughput")->plot();
        QVERIFY(isLog(dashboard.chart("latency")->plot()->yAxis));
        QVERIFY(isLog(dashboard.chart("latency_cdf")->plot()->xAxis));
        QVERIFY(isLog(throughput->xAxis));
        QVERIFY(isLog(throughput->yAxis));
        QVERIFY(!isLog(dashboard.chart("training_loss")->plot()->yAxis));
        auto* batchTicker = dynamic_cast<QCPAxisTickerLog*>(throughput->xAxis->ticker().data());
        QVERIFY(batchTicker);
        QCOMPARE(batchTicker->logBase(), 2.0);
        QCOMPARE(throughput->xAxis->label(), QStringLiteral("batch size"));
        QVERIFY(throughput->xAxis->range().contains(1) && throughput->xAxis->range().contains(64));
        // The toggles of the context menu.
        ChartView* loss = dashboard.chart("training_loss");
        auto actionOf = [](QMenu* menu, const QString& text) {
            for (QAction* a : menu->actions()) {
                if (a->text() == text) return a;
            }
            return static_cast<QAction*>(nullptr);
        };
        std::unique_ptr<QMenu> menu(loss->createContextMenu(nullptr));
        QAction* logY = actionOf(menu.get(), QStringLiteral("Logarithmic y axis"));
        QVERIFY(logY && logY->isCheckable() && !logY->isChecked());
        logY->trigger();
        QVERIFY(isLog(loss->plot()->yAxis));
        logY->trigger();
        QVERIFY(!isLog(loss->plot()->yAxis));
        menu.reset(dashboard.chart("latency")->createContextMenu(nullptr));
        QVERIFY(actionOf(menu.get(), QStringLiteral("Logarithmic y axis"))->isChecked());
        QVERIFY(!actionOf(menu.get(), QStringLiteral("Logarithmic x axis"))->isChecked());
        QAction* legend = actionOf(menu.get(), QStringLiteral("Show legend"));
        QVERIFY(legend->isChecked());
        legend->trigger();
        QVERIFY(!dashboard.chart("latency")->legendShown());
        legend->trigger();
        QVERIFY(dashboard.chart("latency")->legendShown());

        // Single points show: markers on per-epoch and per-batch-size graphs, and a lone
        // throughput point ("before", batch 4) is a marker.
        for (const char* s : {"val_accuracy", "train_loss", "throughput_per_s", "before/throughput_per_s"}) {
            const QCPGraph* g = dashboard.graphsOf(1, s).front();
            QVERIFY2(!g->scatterStyle().isNone(), s);
            QCOMPARE(g->scatterSkip(), 0);
        }
        QCOMPARE(dashboard.graphsOf(1, "before/throughput_per_s").front()->dataCount(), 1);
        QCOMPARE(dashboard.graphsOf(1, "latency_ms/b1")[1]->lineStyle(), QCPGraph::lsStepLeft);

        // Legends sit below the plot, never over the data; a sweep's legend lists runs and series
        // styles (3 runs + batch 4, batch 1, batch 64 measured "before" or not = 6 entries).
        for (ChartView* chart : dashboard.charts()) chart->plot()->replot(QCustomPlot::rpImmediateRefresh);
        for (ChartView* chart : dashboard.charts()) {
            QCustomPlot* plot = chart->plot();
            QVERIFY2(plot->legend->visible() && plot->legend->itemCount() > 0, qPrintable(chart->objectName()));
            QVERIFY2(!plot->legend->outerRect().intersects(plot->axisRect()->rect()), qPrintable(chart->objectName()));
            QVERIFY(plot->legend->outerRect().top() >= plot->axisRect()->rect().bottom());
        }
        QCOMPARE(dashboard.chart("latency")->legendItemCount(), 6);
        QCOMPARE(dashboard.chart("training_loss")->legendItemCount(), 3);
        if (qEnvironmentVariableIsSet("LATHE_SCREENSHOT_DIR")) {
            const QString path = qEnvironmentVariable("LATHE_SCREENSHOT_DIR") + QStringLiteral("/dashboard-synthetic.png");
            QVERIFY(dashboard.grab().save(path));
        }

        // A long legend is capped at kMaxLegendRows rows with a "+N more" entry.
        ChartView* other = dashboard.chart("other");
        std::vector<MetricSample> many;
        for (int s = 0; s < 60; ++s) many.push_back(makeSample(2, "unknown_metric_" + std::to_string(s), 0, 0, s));
        dashboard.appendSamples(many);
        dashboard.replotDirty();
        QVERIFY(other->legendItemCount() < 61);
        QVERIFY(other->plot()->legend->rowCount() <= ChartView::kMaxLegendRows);

        dashboard.clear();
        QVERIFY(dashboard.charts().isEmpty());
        QCOMPARE(dashboard.pointCount(), std::size_t(0));
    }
};

QTEST_MAIN(TestChartRouting)
#include "test_chart_routing.moc"

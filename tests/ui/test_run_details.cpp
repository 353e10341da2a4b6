// RunDetails over a temporary run store: per-layer stats become the family's bar charts (one bar per
// layer and key, the stored values, a hover text naming layer, key and value) and a table; a sparsity
// ladder's summaries become charts across runs (one point per run, joined in order of x); a run without
// layer stats leaves the Layers tab disabled; the spec registry refuses twins. Saves a screenshot of
// each tab when LATHE_SCREENSHOT_DIR is set.
#include "engine/store/run_store.h"
#include "ui/charts/chart_spec.h"
#include "ui/charts/chart_view.h"
#include "ui/charts/layer_charts_panel.h"
#include "ui/charts/runs_charts_panel.h"
#include "ui/runs/run_details.h"

#include "engine/core/errors.h"
#include "tests/support/test_support.h"

#include <qcustomplot.h>

#include <QTabWidget>
#include <QTableWidget>
#include <QtTest>

using namespace lathe;
using namespace lathe::ui;

namespace {
std::int64_t addDoneRun(RunStore& store, const std::string& name, const std::map<std::string, double>& summary) {
    NewRun r;
    r.name = name;
    r.model = "mlp-784-256-128-10";
    r.dataset = "fashion-mnist";
    r.device = "cpu";
    r.strategyChain = "train > prune.magnitude > finetune";
    r.configJson = R"({"name":")" + name + R"("})";
    const std::int64_t id = store.createRun(r);
    store.startRun(id);
    store.finishRun(id, run_status::kDone);
    store.setSummary(id, summary);
    return id;
}

QCPBars* barsNamed(ChartView* view, const QString& name) {
    for (int i = 0; i < view->plot()->plottableCount(); ++i) {
        auto* bars = qobject_cast<QCPBars*>(view->plot()->plottable(i));
        if (bars && bars->name() == name) return bars;
    }
    return nullptr;
}

QCPGraph* graphNamed(ChartView* view, const QString& name) {
    for (int i = 0; i < view->plot()->graphCount(); ++i) {
        if (view->plot()->graph(i)->name() == name) return view->plot()->graph(i);
    }
    return nullptr;
}

void saveScreenshot(QWidget& w, const QString& file) {
    const QString dir = qEnvironmentVariable("LATHE_SCREENSHOT_DIR");
    if (dir.isEmpty()) return;
    for (QCustomPlot* plot : w.findChildren<QCustomPlot*>())
        plot->replot(QCustomPlot::rpImmediateRefresh);
    QVERIFY(w.grab().save(dir + QLatin1Char('/') + file));
}
} // namespace

class TestRunDetails : public QObject {
    Q_OBJECT
    QString m_path;
    std::unique_ptr<RunStore> m_store;

  private slots:
    void init() {
        static int n = 0;
        m_path = QString::fromStdString(test::tempDir()) + QStringLiteral("/details%1.sqlite").arg(++n);
        m_store = std::make_unique<RunStore>(m_path.toStdString());
    }
    void cleanup() {
        m_store.reset();
        ChartSpecRegistry::resetToBuiltins();
    }

    void layerStatsBecomeBarCharts() {
        const auto id = addDoneRun(*m_store, "mlp-prune-sensitivity", {{"accuracy", 0.87}});
        const std::vector<std::string> layers{"layers.0.weight", "layers.2.weight", "layers.4.weight"};
        const double drops[3][2] = {{0.001, 0.02}, {0.004, 0.05}, {0.03, 0.137}};
        std::vector<LayerStat> stats;
        for (std::size_t l = 0; l < layers.size(); ++l) {
            stats.push_back({layers[l], "accuracy_drop@50", drops[l][0]});
            stats.push_back({layers[l], "accuracy_drop@90", drops[l][1]});
            stats.push_back({layers[l], "sensitivity", (drops[l][0] + drops[l][1]) / 2});
            stats.push_back({layers[l], "sparsity", 0.25 * double(l + 1)});
        }
        stats.push_back({"layers.0.weight", "unknown_stat", 3.0}); // table only
        m_store->addLayerStats(id, stats);

        RunDetails details;
        details.resize(1100, 800);
        QCOMPARE(details.showRuns(*m_store, {id}), 1);
        QTabWidget* tabs = details.chartTabs();
        QVERIFY(tabs->isTabEnabled(tabs->indexOf(details.layerCharts())));
        LayerChartsPanel* panel = details.layerCharts();
        QCOMPARE(panel->chartIds(), (QStringList{"layer_sparsity", "layer_sensitivity"}));

        ChartView* sensitivity = panel->chart(QStringLiteral("layer_sensitivity"));
        QVERIFY(sensitivity);
        QCOMPARE(sensitivity->plot()->plottableCount(), 3); // two ratios and the mean
        QCPBars* at90 = barsNamed(sensitivity, QStringLiteral("accuracy_drop@90"));
        QVERIFY(at90);
        QCOMPARE(at90->data()->size(), 3);
        for (int l = 0; l < 3; ++l) {
            QCOMPARE(at90->data()->at(l)->key, double(l + 1));
            QCOMPARE(at90->data()->at(l)->value, drops[l][1]);
        }
        auto* ticker = dynamic_cast<QCPAxisTickerText*>(sensitivity->plot()->xAxis->ticker().data());
        QVERIFY(ticker);
        QCOMPARE(ticker->ticks().value(1), QStringLiteral("layers.0"));
        QCOMPARE(ticker->ticks().value(3), QStringLiteral("layers.4"));
        QVERIFY(sensitivity->plot()->yAxis->range().lower <= 0); // bars stand on zero

        // Hovering the middle of the tallest bar names it.
        details.show();
        tabs->setCurrentWidget(panel);
        QVERIFY(QTest::qWaitForWindowExposed(&details));
        sensitivity->plot()->replot();
        // Across the third layer's group, halfway up its tallest bar, one stretch names that bar.
        const double py = at90->valueAxis()->coordToPixel(drops[2][1] / 2);
        QString text;
        for (double px = at90->keyAxis()->coordToPixel(2.5); px < at90->keyAxis()->coordToPixel(3.5); px += 1) {
            const QString t = panel->barText(QStringLiteral("layer_sensitivity"), QPointF(px, py));
            if (t.contains(QLatin1String("accuracy_drop@90"))) text = t;
        }
        QVERIFY2(text.contains(QLatin1String("layers.4")) && text.contains(QLatin1String("0.137")), qPrintable(text));
        QVERIFY(panel->barText(QStringLiteral("layer_sensitivity"), QPointF(1, 1)).isEmpty());

        // Every stat in the table, the unknown one included.
        QTableWidget* table = panel->table();
        QCOMPARE(table->rowCount(), 3);
        QCOMPARE(table->columnCount(), 5);
        QCOMPARE(table->verticalHeaderItem(2)->text(), QStringLiteral("layers.4"));
        QCOMPARE(table->horizontalHeaderItem(4)->text(), QStringLiteral("unknown_stat"));
        QCOMPARE(table->item(0, 4)->text(), QStringLiteral("3"));
        QVERIFY(!table->item(1, 4));
        QCOMPARE(table->item(2, 3)->text().toDouble(), 0.75);
        saveScreenshot(details, QStringLiteral("run-details-layers.png"));
    }

    void runsWithoutLayerStatsDisableTheTab() {
        const auto id = addDoneRun(*m_store, "plain", {{"accuracy", 0.87}});
        RunDetails details;
        details.showRuns(*m_store, {id});
        QVERIFY(details.layerCharts()->isEmpty());
        QVERIFY(!details.chartTabs()->isTabEnabled(details.chartTabs()->indexOf(details.layerCharts())));
        QVERIFY(details.runsCharts()->isEmpty()); // one run: nothing to chart across
    }

    void sparsityLadderChartsAcrossRuns() {
        // Stored out of order: the chart joins the points in order of sparsity.
        const double ladder[4][5] = {{0.9, 10.0, 0.91, 0.95, 0.8799},
                                     {0.5, 2.0, 1.03, 1.01, 0.8850},
                                     {0.95, 20.0, 1.22, 1.10, 0.8702},
                                     {0.7, 3.3, 0.97, 0.99, 0.8830}};
        QList<qint64> ids;
        for (const auto& r : ladder) {
            ids << addDoneRun(*m_store, "mlp-sparsity-ladder",
                              {{"sparsity", r[0]},
                               {"speedup_theoretical", r[1]},
                               {"speedup_realized", r[2]},
                               {"speedup_realized@b1", r[3]},
                               {"accuracy", r[4]},
                               {"latency_p50_ms", 0.7}});
        }
        RunDetails details;
        details.resize(1100, 800);
        QCOMPARE(details.showRuns(*m_store, ids), 4);
        RunsChartsPanel* across = details.runsCharts();
        QCOMPARE(across->chartIds(), (QStringList{"speedup_vs_sparsity", "accuracy_vs_sparsity"}));
        ChartView* speedup = across->chart(QStringLiteral("speedup_vs_sparsity"));
        QCOMPARE(speedup->plot()->graphCount(), 3);
        QVERIFY(speedup->isLogScale(speedup->plot()->yAxis));
        QCPGraph* realized = graphNamed(speedup, QStringLiteral("speedup_realized"));
        QVERIFY(realized);
        QCOMPARE(realized->data()->size(), 4);
        const double xs[4] = {0.5, 0.7, 0.9, 0.95}, ys[4] = {1.03, 0.97, 0.91, 1.22};
        for (int i = 0; i < 4; ++i) {
            QCOMPARE(realized->data()->at(i)->key, xs[i]);
            QCOMPARE(realized->data()->at(i)->value, ys[i]);
        }
        QVERIFY(graphNamed(speedup, QStringLiteral("speedup_theoretical")));
        QVERIFY(graphNamed(speedup, QStringLiteral("speedup_realized@b1")));
        QCOMPARE(speedup->legendItemCount(), 3);
        // 0.8 to 23 on the log axis: labelled 1, 2, 5, 10, 20, not only 5 to 20.
        speedup->plot()->replot();
        const QVector<double> ticks = speedup->plot()->yAxis->tickVector();
        QVERIFY2(ticks.contains(1.0) && ticks.contains(2.0) && ticks.contains(10.0),
                 qPrintable(QString::number(ticks.size())));
        details.show();
        details.chartTabs()->setCurrentWidget(across);
        QVERIFY(QTest::qWaitForWindowExposed(&details));
        saveScreenshot(details, QStringLiteral("run-details-across-runs.png"));
    }

    void registryRefusesTwinsAndMatchesVariants() {
        const KeyMatcher m = matchKeys({"speedup_realized"});
        QVERIFY(m("speedup_realized"));
        QVERIFY(m("speedup_realized@b256"));
        QVERIFY(!m("speedup_realized_x"));
        QVERIFY(!m("speedup"));
        QVERIFY_THROWS_EXCEPTION(ConfigError,
                                 ChartSpecRegistry::add(LayerChartSpec{.id = QStringLiteral("layer_sparsity"),
                                                                       .matches = matchKeys({"x"})}));
        QVERIFY_THROWS_EXCEPTION(ConfigError,
                                 ChartSpecRegistry::add(RunsChartSpec{.id = QStringLiteral("accuracy_vs_params"),
                                                                      .xKey = "params",
                                                                      .yKeys = matchKeys({"accuracy"})}));
        QVERIFY_THROWS_EXCEPTION(ConfigError,
                                 ChartSpecRegistry::add(LayerChartSpec{.id = QStringLiteral("no_matcher")}));
        ChartSpecRegistry::add(
            LayerChartSpec{.id = QStringLiteral("test_layer_chart"), .matches = matchKeys({"x"}), .order = 1});
        QCOMPARE(ChartSpecRegistry::layerSpecs().front().id, QStringLiteral("test_layer_chart"));
        ChartSpecRegistry::resetToBuiltins();
        for (const LayerChartSpec& s : ChartSpecRegistry::layerSpecs())
            QVERIFY(s.id != QLatin1String("test_layer_chart"));
        QVERIFY(!ChartSpecRegistry::layerSpecs().empty()); // the families' charts are back
    }
};

QTEST_MAIN(TestRunDetails)
#include "test_run_details.moc"

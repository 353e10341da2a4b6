// RunDetails over a temporary run store: per-layer stats become the family's bar charts (one bar per
// layer and key, the stored values, a hover text naming layer, key and value) and a table; a sparsity
// ladder's summaries become charts across runs (one point per run, joined in order of x); a run without
// layer stats leaves the Layers tab disabled; the spec registry refuses twins. Saves a screenshot of
// each tab when LATHE_SCREENSHOT_DIR is set.
#include "engine/experiment/runner.h"
#include "engine/experiment/spec.h"
#include "engine/store/run_store.h"
#include "ui/charts/chart_spec.h"
#include "ui/charts/chart_view.h"
#include "ui/charts/layer_charts_panel.h"
#include "ui/charts/lineage_panel.h"
#include "ui/charts/pareto_chart.h"
#include "ui/charts/roofline_chart.h"
#include "ui/charts/runs_charts_panel.h"
#include "ui/runs/compare_view.h"
#include "ui/runs/run_details.h"

#include "engine/core/errors.h"
#include "tests/support/test_support.h"

#include <qcustomplot.h>

#include <nlohmann/json.hpp>

#include <QLabel>
#include <QSignalSpy>
#include <QTabWidget>
#include <QTableWidget>
#include <QtTest>

using namespace lathe;
using namespace lathe::ui;

namespace {
std::int64_t addDoneRun(RunStore& store, const std::string& name, const std::map<std::string, double>& summary,
                        const std::string& chain = "train > prune.magnitude > finetune",
                        const std::string& environmentJson = "{}") {
    NewRun r;
    r.name = name;
    r.model = "mlp-784-256-128-10";
    r.dataset = "fashion-mnist";
    r.device = "cpu";
    r.strategyChain = chain;
    r.configJson = R"({"name":")" + name + R"("})";
    r.environmentJson = environmentJson;
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

    void threeRunsOrMoreGetHeatmaps() {
        QList<qint64> ids;
        const double ladder[3] = {0.5, 0.7, 0.9};
        for (double sp : ladder) {
            const auto id = addDoneRun(*m_store, "ladder", {{"sparsity", sp}});
            m_store->addLayerStats(id, std::vector<LayerStat>{{"layers.0.weight", "sparsity", sp},
                                                              {"layers.2.weight", "sparsity", sp / 2},
                                                              {"layers.4.weight", "sparsity", 0.0}});
            ids << id;
        }
        RunDetails details;
        details.resize(1100, 800);
        details.showRuns(*m_store, ids);
        LayerChartsPanel* panel = details.layerCharts();
        QCOMPARE(panel->chartIds(), (QStringList{"layer_sparsity:sparsity"}));
        ChartView* view = panel->chart(QStringLiteral("layer_sparsity:sparsity"));
        auto* map = qobject_cast<QCPColorMap*>(view->plot()->plottable(0));
        QVERIFY(map);
        QCOMPARE(map->data()->keySize(), 3);   // layers
        QCOMPARE(map->data()->valueSize(), 3); // runs
        QCOMPARE(map->data()->cell(0, 2), 0.9);
        QCOMPARE(map->data()->cell(1, 1), 0.35);
        QCOMPARE(map->dataRange(), QCPRange(0.0, 0.9)); // the colours span the values
        details.show();
        details.chartTabs()->setCurrentWidget(panel);
        QVERIFY(QTest::qWaitForWindowExposed(&details));
        view->plot()->replot();
        const QPointF at(view->plot()->xAxis->coordToPixel(1), view->plot()->yAxis->coordToPixel(3));
        const QString text = panel->barText(QStringLiteral("layer_sparsity:sparsity"), at);
        QVERIFY2(text.startsWith(QStringLiteral("layers.0 · #3")) && text.endsWith(QLatin1String("sparsity: 0.9")), qPrintable(text));
        saveScreenshot(details, QStringLiteral("run-details-heatmap.png"));
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
        // accuracy_vs_params is not drawn: every run has the same parameter count.
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

    void quantizationRunsChartTheirLayersAndTheLadder() {
        if (!test::haveFashionMnist()) QSKIP(test::missingFashionMnistReason().c_str());
        // A precision ladder and a sensitivity sweep run for real (fresh weights, 300 test images), stored, then
        // shown: the ladder's runs as accuracy and latency against model size, the sweep's per-layer figures as
        // the quantize family's bar charts.
        const nlohmann::json doc = {
            {"name", "ladder"},
            {"model", {{"zoo", "mlp-784-64-10"}}},
            {"dataset", {{"name", "fashion-mnist"}, {"split", "test"}, {"limit", 300}}},
            {"device", "cpu"},
            {"steps", {{{"strategy", "measure"}, {"params", {{"label", "fp32"}}}}}},
            {"measure", {{"batch_sizes", {64}}, {"warmup", 0}, {"repeats", 3}}},
            {"sweep",
             {{"steps[0]",
               {{{"strategy", "measure"}, {"params", {{"label", "fp32"}}}},
                {{"strategy", "quantize.int8"}, {"params", {{"calibration_samples", 64}}}},
                {{"strategy", "quantize.int4"}, {"params", {{"group", 64}}}},
                {{"strategy", "quantize.sensitivity"}, {"params", {{"format", "int4"}, {"calibration_samples", 64}}}}}}}}};
        QVERIFY(validateExperiment(doc).empty());
        Runner runner(*m_store, RunnerOptions{"", test::tempDir() + "/ladder-cache"});
        std::atomic<bool> cancel{false};
        const auto outcomes = runner.run(parseExperiment(doc, "inline"), doc, RunnerEvents{}, cancel);
        QCOMPARE(outcomes.size(), std::size_t(4));
        QList<qint64> ids;
        for (const auto& o : outcomes) {
            QCOMPARE(QString::fromStdString(o.status), QString::fromStdString(run_status::kDone));
            ids << o.runId;
        }

        RunDetails details;
        details.resize(1100, 800);
        QCOMPARE(details.showRuns(*m_store, ids.mid(0, 3)), 3);
        RunsChartsPanel* across = details.runsCharts();
        QVERIFY2(across->chartIds().contains(QStringLiteral("accuracy_vs_model_bytes")),
                 qPrintable(across->chartIds().join(QLatin1Char(','))));
        ChartView* ladder = across->chart(QStringLiteral("accuracy_vs_model_bytes"));
        QCPGraph* accuracy = graphNamed(ladder, QStringLiteral("accuracy"));
        QVERIFY(accuracy);
        QCOMPARE(accuracy->data()->size(), 3); // FP32, INT8, INT4: three sizes
        QVERIFY(accuracy->data()->at(0)->key < accuracy->data()->at(1)->key); // in order of bytes: int4 first
        details.show();
        details.chartTabs()->setCurrentWidget(across);
        QVERIFY(QTest::qWaitForWindowExposed(&details));
        saveScreenshot(details, QStringLiteral("quantize-ladder.png"));

        QCOMPARE(details.showRuns(*m_store, {ids[3]}), 1);
        LayerChartsPanel* layers = details.layerCharts();
        QVERIFY2(layers->chartIds().contains(QStringLiteral("layer_quant_sensitivity")) &&
                     layers->chartIds().contains(QStringLiteral("layer_quant_sqnr")),
                 qPrintable(layers->chartIds().join(QLatin1Char(','))));
        ChartView* sqnr = layers->chart(QStringLiteral("layer_quant_sqnr"));
        QCPBars* bars = barsNamed(sqnr, QStringLiteral("quant_sqnr_db"));
        QVERIFY(bars);
        QCOMPARE(bars->data()->size(), 2); // the two Linear layers
        QVERIFY(bars->data()->at(0)->value > 0);
        details.chartTabs()->setCurrentWidget(layers);
        saveScreenshot(details, QStringLiteral("quantize-sensitivity.png"));
    }

    void compareViewDeltasSignificanceAndCopies() {
        // Base, a faster and less accurate run, and one with the base's very latencies (reversed).
        auto withLatency = [&](const std::string& name, double scale, bool reversed, double accuracy) {
            const auto id = addDoneRun(*m_store, name,
                                       {{"accuracy", accuracy}, {"latency_p50_ms", scale}, {"model_bytes", 940584}});
            std::vector<MetricSample> samples;
            for (int i = 0; i < 60; ++i) {
                const int k = reversed ? 59 - i : i;
                samples.push_back(makeSample(id, "latency_ms/b1", i, i, scale * (1.0 + 0.05 * std::sin(k * 1.7))));
            }
            m_store->appendSamples(samples);
            return id;
        };
        const auto base = withLatency("dense", 1.0, false, 0.88);
        const auto fast = withLatency("<script>alert(1)</script> | 2:4, fine-tuned", 0.8, false, 0.86);
        const auto same = withLatency("same", 1.0, true, 0.88);
        RunDetails details;
        details.resize(1100, 700);
        QCOMPARE(details.showRuns(*m_store, {base, fast, same}), 3);
        CompareView* view = details.compareView();
        QCOMPARE(details.chartTabs()->currentWidget(), view);
        QCOMPARE(view->baselineRunId(), base);
        using V = CompareView::Verdict;
        QCOMPARE(view->verdict("accuracy", fast), V::Worse);
        QCOMPARE(view->verdict("latency_p50_ms", fast), V::Better);
        QCOMPARE(view->verdict("model_bytes", fast), V::None);
        QCOMPARE(view->verdict("accuracy", base), V::None);
        QCOMPARE(view->verdict("latency@b1", fast), V::Better);
        QCOMPARE(view->verdict("latency@b1", same), V::NotSignificant);
        // Against the fast run, the others are slower and more accurate.
        view->setBaseline(fast);
        QCOMPARE(view->verdict("accuracy", base), V::Better);
        QCOMPARE(view->verdict("latency@b1", base), V::Worse);
        QCOMPARE(view->verdict("latency@b1", fast), V::None);

        QTableWidget* table = view->table();
        const int rows = table->rowCount();
        QCOMPARE(table->columnCount(), 3);
        view->setHideIdentical(true); // model_bytes is the same everywhere
        QCOMPARE(table->rowCount(), rows - 1);
        view->setTransposed(true);
        QCOMPARE(table->rowCount(), 3);
        QCOMPARE(table->columnCount(), rows - 1);
        QVERIFY(table->verticalHeaderItem(1)->text().startsWith(QStringLiteral("#%1").arg(qlonglong(fast))));

        // Hostile names stay text.
        const QString md = view->toMarkdown();
        QVERIFY2(md.contains(QLatin1String("&lt;script&gt;alert(1)&lt;/script&gt; \\| 2:4")), qPrintable(md));
        QVERIFY(!md.contains(QLatin1String("<script>")));
        const QStringList mdLines = md.split(QLatin1Char('\n'), Qt::SkipEmptyParts);
        for (const QString& line : mdLines.mid(2)) // as many cells on every line as in the header
            QCOMPARE(line.count(QLatin1String(" | ")), mdLines.first().count(QLatin1String(" | ")));
        const QString csv = view->toCsv();
        QVERIFY2(csv.contains(QStringLiteral("\"#%1 <script>alert(1)</script> | 2:4, fine-tuned\"").arg(qlonglong(fast))), qPrintable(csv));
        QCOMPARE(csv.split(QLatin1Char('\n'), Qt::SkipEmptyParts).size(), 4); // header + 3 runs
        int labelsWithTheName = 0; // the title and the note name the runs: as plain text, not rich text
        for (QLabel* label : details.findChildren<QLabel*>()) {
            if (!label->text().contains(QLatin1String("<script>"))) continue;
            ++labelsWithTheName;
            QCOMPARE(label->textFormat(), Qt::PlainText);
        }
        QVERIFY(labelsWithTheName >= 1);
        details.show();
        view->setTransposed(false);
        view->setHideIdentical(false);
        view->setBaseline(base);
        QVERIFY(QTest::qWaitForWindowExposed(&details));
        saveScreenshot(details, QStringLiteral("run-details-compare.png"));
    }

    void paretoChartDrawsTheFrontAndOpensRuns() {
        QCOMPARE(ParetoChart::familyOf("train > prune.magnitude > finetune"), QStringLiteral("prune"));
        QCOMPARE(ParetoChart::familyOf("train > distill.logits > measure"), QStringLiteral("distill"));
        QCOMPARE(ParetoChart::familyOf("train > finetune"), QStringLiteral("baseline"));
        QCOMPARE(ParetoChart::familyOf(""), QStringLiteral("baseline"));
        const auto dense = addDoneRun(*m_store, "dense", {{"accuracy", 0.887}, {"latency_p99_ms", 1.5}, {"model_bytes", 940584}},
                                      "train > finetune");
        const auto unstructured = addDoneRun(*m_store, "unstructured",
                                             {{"accuracy", 0.885}, {"latency_p99_ms", 1.6}, {"model_bytes", 940584}});
        const auto structured = addDoneRun(*m_store, "structured",
                                           {{"accuracy", 0.885}, {"latency_p99_ms", 0.8}, {"model_bytes", 471068}},
                                           "train > prune.structured > finetune");
        const auto student = addDoneRun(*m_store, "student", {{"accuracy", 0.85}, {"latency_p99_ms", 0.3}, {"model_bytes", 200000}},
                                        "train > distill.logits");
        const auto noLatency = addDoneRun(*m_store, "no latency", {{"accuracy", 0.9}});
        RunDetails details;
        details.resize(1100, 900);
        QSignalSpy activated(&details, &RunDetails::runActivated);
        QCOMPARE(details.showRuns(*m_store, {dense, unstructured, structured, student, noLatency}), 5);
        ParetoChart* pareto = details.runsCharts()->pareto();
        QVERIFY(!pareto->isHidden());
        // Fastest first: the student, the structured model, the dense one; the unstructured is beaten by the
        // structured one (as accurate, faster); the run with no latency is not drawn.
        QCOMPARE(pareto->front(), (std::vector<std::int64_t>{student, structured, dense}));
        QCOMPARE(pareto->view()->plot()->graphCount(), 1 + 4);
        QVERIFY(pareto->frontLabel()->text().contains(QLatin1String("structured")));
        QCOMPARE(pareto->view()->legendItemCount(), 3 + 1); // baseline, prune, distill, the front
        QVERIFY(pareto->view()->isLogScale(pareto->view()->plot()->xAxis)); // 0.3 to 1.6 ms: >= 5x

        details.show();
        details.chartTabs()->setCurrentWidget(details.runsCharts());
        QVERIFY(QTest::qWaitForWindowExposed(&details));
        QCustomPlot* plot = pareto->view()->plot();
        plot->replot();
        const QPoint at(int(plot->xAxis->coordToPixel(0.8)), int(plot->yAxis->coordToPixel(0.885)));
        QCOMPARE(pareto->runAt(at), structured);
        QTest::mouseClick(plot, Qt::LeftButton, {}, at);
        QCOMPARE(activated.size(), 1);
        QCOMPARE(activated.first().first().toLongLong(), structured);
        saveScreenshot(details, QStringLiteral("run-details-pareto.png"));
    }

    // Runs sit under their own device's roofs (from the stored peaks); a device without peaks is named in
    // the note; clicking a run's line opens it; runs measured without roofline figures hide the chart.
    void rooflinePlacesRunsUnderTheirDevicesRoofs() {
        auto onDevice = [&](const std::string& name, const std::string& device, const std::string& chain,
                            const std::map<std::string, double>& summary) {
            return addDoneRun(*m_store, name, summary, chain, nlohmann::json{{"device", {{"name", device}}}}.dump());
        };
        const DevicePeak peaks[] = {{"cpu A", "cpu", "gemm_f32_gflops", 100.0, 1.0, "{}"},
                                    {"cpu A", "cpu", "copy_gbps", 10.0, 1.0, "{}"},
                                    {"cpu A", "cpu", "cache_copy_gbps", 50.0, 1.0, "{}"},
                                    {"unused C", "cpu", "copy_gbps", 1.0, 1.0, "{}"}};
        m_store->setDevicePeaks(peaks);
        const auto fp32 = onDevice("fp32", "cpu A", "train > finetune",
                                   {{"arithmetic_intensity@b1", 0.5}, {"achieved_tflops@b1", 0.004},
                                    {"arithmetic_intensity@b64", 26.0}, {"achieved_tflops@b64", 0.06}});
        const auto int8 = onDevice("int8", "cpu A", "train > quantize.int8",
                                   {{"arithmetic_intensity@b1", 2.0}, {"achieved_tflops@b1", 0.012},
                                    {"arithmetic_intensity@b64", 60.0}, {"achieved_tflops@b64", 0.08}});
        const auto gpu = onDevice("on the gpu", "gpu B", "train > finetune",
                                  {{"arithmetic_intensity@b256", 70.0}, {"achieved_tflops@b256", 2.0}});
        const auto old = onDevice("before roofline figures", "cpu A", "train", {{"accuracy", 0.8}});
        RunDetails details;
        details.resize(1100, 900);
        QSignalSpy activated(&details, &RunDetails::runActivated);
        QCOMPARE(details.showRuns(*m_store, {fp32, int8, gpu, old}), 4);
        RooflineChart* roofline = details.runsCharts()->roofline();
        QVERIFY(!roofline->isHidden());
        QCOMPARE(roofline->pointCount(), 5);
        QCOMPARE(roofline->roofDevices(), QStringList{QStringLiteral("cpu A")});
        QCOMPARE(roofline->devicesWithoutPeaks(), QStringList{QStringLiteral("gpu B")});
        QVERIFY(roofline->noteLabel()->text().contains(QLatin1String("lathe-cli bench peaks")));
        QVERIFY(roofline->noteLabel()->text().contains(QLatin1String("ridge at 10 FLOP/B")));
        ChartView* view = roofline->view();
        QVERIFY(view->isLogScale(view->plot()->xAxis) && view->isLogScale(view->plot()->yAxis));
        // The memory roof bends at the ridge (10 FLOP/B, 100 GFLOP/s); the in-cache roof rises 5x higher.
        QCPGraph* memory = graphNamed(view, QStringLiteral("roof of cpu A"));
        QVERIFY(memory);
        bool ridge = false;
        for (auto it = memory->data()->begin(); it != memory->data()->end(); ++it) {
            if (std::abs(it->key - 10.0) < 1e-9) ridge = std::abs(it->value - 100.0) < 1e-9;
            QVERIFY(it->value <= 100.0 + 1e-9 && std::abs(it->value - std::min(100.0, 10.0 * it->key)) < 1e-6);
        }
        QVERIFY(ridge);
        QVERIFY(graphNamed(view, QStringLiteral("in-cache roof of cpu A")));
        // A run's line holds its batch sizes in order: intensity, then GFLOP/s.
        QCPGraph* line = graphNamed(view, QStringLiteral("#%1 int8").arg(int8));
        QVERIFY(line);
        QCOMPARE(line->data()->size(), 2);
        QCOMPARE(line->data()->at(1)->key, 60.0);
        QCOMPARE(line->data()->at(1)->value, 80.0);

        details.show();
        details.chartTabs()->setCurrentWidget(details.runsCharts());
        QVERIFY(QTest::qWaitForWindowExposed(&details));
        details.runsCharts()->roofline()->view()->ensurePolished();
        QCustomPlot* plot = view->plot();
        plot->replot();
        QTest::mouseClick(plot, Qt::LeftButton, {},
                          QPoint(int(plot->xAxis->coordToPixel(60.0)), int(plot->yAxis->coordToPixel(80.0))));
        QCOMPARE(activated.size(), 1);
        QCOMPARE(activated.first().first().toLongLong(), int8);
        saveScreenshot(details, QStringLiteral("run-details-roofline.png"));

        QCOMPARE(details.showRuns(*m_store, {old}), 1);
        QVERIFY(details.runsCharts()->roofline()->isHidden());
    }

    void lineageOrdersTheMeasurementsAsTaken() {
        // prune.structured's own pair (original, pruned) measured before a `measure` step labelled "tuned";
        // alphabetical order would put "tuned" before... nothing, so "pruned" is stored last on purpose.
        const auto id = addDoneRun(*m_store, "chain",
                                   {{"baseline_accuracy", 0.873}, {"baseline_model_bytes", 940584},
                                    {"original.accuracy", 0.873}, {"original.latency_p50_ms", 0.70}, {"original.model_bytes", 940584},
                                    {"tuned.accuracy", 0.884}, {"tuned.latency_p50_ms", 0.38}, {"tuned.model_bytes", 471068},
                                    {"pruned.accuracy", 0.861}, {"pruned.latency_p50_ms", 0.37}, {"pruned.model_bytes", 471068},
                                    {"accuracy", 0.884}, {"latency_p50_ms", 0.37}, {"model_bytes", 471068}, {"batch_size", 256},
                                    {"pruned.latency_p50_ms@b1", 0.01}});
        m_store->appendSamples(std::vector<MetricSample>{makeSample(id, "tuned/latency_ms/b256", 0, 300.0, 0.38),
                                                        makeSample(id, "original/latency_ms/b256", 0, 100.0, 0.70),
                                                        makeSample(id, "pruned/latency_ms/b256", 0, 200.0, 0.37)});
        RunDetails details;
        details.resize(1000, 800);
        details.showRuns(*m_store, {id});
        LineagePanel* lineage = details.lineage();
        QVERIFY(details.chartTabs()->isTabEnabled(details.chartTabs()->indexOf(lineage)));
        QStringList names;
        for (const auto& s : lineage->stages()) names << s.name;
        QCOMPARE(names, (QStringList{"baseline", "original", "pruned", "tuned", "final"}));
        QCOMPARE(*lineage->stages()[2].accuracy, 0.861);
        QVERIFY(!lineage->stages()[0].latencyMs); // the baseline was not timed
        ChartView* latency = lineage->chart(QStringLiteral("lineage_latency"));
        QVERIFY(latency && latency->title().contains(QLatin1String("batch 256")));
        auto* bars = qobject_cast<QCPBars*>(latency->plot()->plottable(0));
        QCOMPARE(bars->data()->size(), 4);
        QCOMPARE(bars->data()->at(0)->key, 2.0); // "original", after the untimed baseline
        QVERIFY(lineage->chart(QStringLiteral("lineage_accuracy")) && lineage->chart(QStringLiteral("lineage_bytes")));
        details.show();
        details.chartTabs()->setCurrentWidget(lineage);
        QVERIFY(QTest::qWaitForWindowExposed(&details));
        saveScreenshot(details, QStringLiteral("run-details-steps.png"));
        // Several runs: no lineage.
        const auto other = addDoneRun(*m_store, "other", {{"accuracy", 0.8}});
        details.showRuns(*m_store, {id, other});
        QVERIFY(lineage->isEmpty());
        QVERIFY(!details.chartTabs()->isTabEnabled(details.chartTabs()->indexOf(lineage)));
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

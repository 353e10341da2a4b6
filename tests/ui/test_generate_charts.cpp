// serve.generate's live charts through real widgets (offscreen, issue 15): a short real run of a small decoder
// feeds the dashboard the running batch, the KV blocks in use and the queue depth; with LATHE_SCREENSHOT_DIR set
// the dashboard is saved there as PNG.
#include "engine/data/text_corpus.h"
#include "engine/nn/transformer.h"
#include "tests/strategies/strategy_fixture.h"
#include "ui/charts/chart_view.h"
#include "ui/charts/live_dashboard.h"

#include <qcustomplot.h>

#include <QtTest>

using namespace lathe;
using namespace lathe::ui;

class TestGenerateCharts : public QObject {
    Q_OBJECT

private slots:
    void generationRunFillsItsCharts() {
        test::ContextFixture fx("gpt-char-tiny");
        fx.ctx.runStartMs = steadyClockMs();
        TextCorpus c;
        c.name = "t";
        c.sourceFiles = {"t"};
        for (int i = 0; i < 40; ++i) c.records.push_back({"Once there was a cat. It sat. " + std::to_string(i), 0});
        fx.data.test = byteWindows(c, 128);
        ParamValues v = defaultValues(*StrategyRegistry::instance().find("serve.generate"));
        v.set("requests", std::int64_t(10));
        v.set("rate_per_s", 200.0);
        v.set("output_tokens_max", std::int64_t(12));
        v.set("max_batch", std::int64_t(4));
        StrategyRegistry::instance().create("serve.generate", v)->apply(fx.ctx);
        QCOMPARE(fx.summary.at("served"), 10.0);

        LiveDashboard dashboard;
        dashboard.resize(1400, 900);
        dashboard.setRunLabel(0, QStringLiteral("serve.generate continuous"));
        dashboard.appendSamples(fx.sink.samples);
        dashboard.replotDirty();
        for (const char* id : {"generate_running_batch", "generate_kv_blocks", "serve_queue_depth"})
            QVERIFY2(dashboard.chart(QString::fromLatin1(id)), id);
        QVERIFY(!dashboard.chart(QStringLiteral("other"))); // every series of the run has its chart
        const QCPGraph* running = dashboard.graphsOf(0, "generate/running_batch").front();
        QVERIFY(running->dataCount() > 0);
        for (auto it = running->data()->constBegin(); it != running->data()->constEnd(); ++it)
            QVERIFY(it->value >= 0 && it->value <= 4);
        if (qEnvironmentVariableIsSet("LATHE_SCREENSHOT_DIR")) {
            for (ChartView* chart : dashboard.charts()) chart->plot()->replot(QCustomPlot::rpImmediateRefresh);
            QVERIFY(dashboard.grab().save(qEnvironmentVariable("LATHE_SCREENSHOT_DIR") + "/serve-generate.png"));
        }
    }
};

LATHE_TEST_MAIN(TestGenerateCharts)
#include "test_generate_charts.moc"

// The prune family's head-pruning charts in the run details (issue 15): a prune.heads sweep's perplexity against
// the fraction of heads removed across runs (joined in order of x), and one run's heads per layer and head scores
// as bar charts.
#include "engine/store/run_store.h"
#include "ui/charts/chart_view.h"
#include "ui/charts/layer_charts_panel.h"
#include "ui/charts/runs_charts_panel.h"
#include "ui/runs/run_details.h"

#include "tests/support/test_support.h"

#include <qcustomplot.h>

#include <QtTest>

using namespace lathe;
using namespace lathe::ui;

namespace {

std::int64_t addHeadRun(RunStore& store, const std::map<std::string, double>& summary) {
    NewRun r;
    r.name = "gpt-char-head-pruning";
    r.model = "gpt-char-tiny";
    r.dataset = "fortunes";
    r.device = "cpu";
    r.strategyChain = "train > prune.heads";
    r.configJson = R"({"name":"gpt-char-head-pruning"})";
    r.environmentJson = "{}";
    const std::int64_t id = store.createRun(r);
    store.startRun(id);
    store.finishRun(id, run_status::kDone);
    store.setSummary(id, summary);
    return id;
}

} // namespace

class TestHeadPruningCharts : public QObject {
    Q_OBJECT

private slots:
    void perplexityAgainstHeadsRemoved() {
        RunStore store(test::tempDir() + "/heads-across.sqlite");
        const double runs[3][2] = {{0.75, 41.2}, {0.25, 22.9}, {0.5, 37.5}}; // stored out of order
        QList<qint64> ids;
        for (const auto& r : runs)
            ids << addHeadRun(store, {{"heads_pruned_fraction", r[0]}, {"perplexity", r[1]}, {"params", 9e5 - r[0]}});
        RunDetails details;
        details.resize(1100, 800);
        QCOMPARE(details.showRuns(store, ids), 3);
        RunsChartsPanel* across = details.runsCharts();
        QVERIFY(across->chartIds().contains(QStringLiteral("perplexity_vs_heads_pruned")));
        ChartView* chart = across->chart(QStringLiteral("perplexity_vs_heads_pruned"));
        QCOMPARE(chart->plot()->graphCount(), 1);
        QCPGraph* g = chart->plot()->graph(0);
        QCOMPARE(g->data()->size(), 3);
        const double xs[3] = {0.25, 0.5, 0.75}, ys[3] = {22.9, 37.5, 41.2};
        for (int i = 0; i < 3; ++i) {
            QCOMPARE(g->data()->at(i)->key, xs[i]);
            QCOMPARE(g->data()->at(i)->value, ys[i]);
        }
    }

    void headsPerLayer() {
        RunStore store(test::tempDir() + "/heads-layers.sqlite");
        const auto id = addHeadRun(store, {{"heads_pruned_fraction", 0.25}, {"perplexity", 22.9}});
        const std::vector<LayerStat> stats = {{"layers.2.layers.0.layers.2", "heads_before", 4},
                                              {"layers.2.layers.0.layers.2", "heads_after", 3},
                                              {"layers.3.layers.0.layers.2", "heads_before", 4},
                                              {"layers.3.layers.0.layers.2", "heads_after", 2},
                                              {"layers.2.layers.0.layers.2", "head_score@h0", 0.03},
                                              {"layers.3.layers.0.layers.2", "head_score@h0", 0.01}};
        store.addLayerStats(id, stats);
        RunDetails details;
        details.resize(1100, 800);
        QCOMPARE(details.showRuns(store, {id}), 1);
        LayerChartsPanel* panel = details.layerCharts();
        QCOMPARE(panel->chartIds(), (QStringList{"layer_heads", "layer_head_scores"}));
        ChartView* heads = panel->chart(QStringLiteral("layer_heads"));
        QCOMPARE(heads->plot()->plottableCount(), 2);
        QCPBars* after = nullptr;
        for (int i = 0; i < heads->plot()->plottableCount(); ++i)
            if (auto* b = qobject_cast<QCPBars*>(heads->plot()->plottable(i)); b && b->name() == "heads_after") after = b;
        QVERIFY(after);
        QCOMPARE(after->data()->size(), 2);
        QCOMPARE(after->data()->at(1)->value, 2.0); // layers.3...: 4 -> 2
    }
};

QTEST_MAIN(TestHeadPruningCharts)
#include "test_head_pruning_charts.moc"

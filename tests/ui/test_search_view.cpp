// SearchView through real widgets (issue 18): a search stored as the SearchRunner stores one (the search's
// run, its trials as child runs with configurations and summaries), drawn while it is still running and
// after it finished: points feasible and infeasible, the feasible region, the incumbent, one importance bar
// per field, and the button that hands the winner's experiment to the editor. A two-objective search draws
// its Pareto front. Screenshot search-view.png when LATHE_SCREENSHOT_DIR is set.
#include "engine/experiment/spec.h"
#include "engine/store/run_store.h"
#include "tests/support/test_support.h"
#include "ui/charts/chart_view.h"
#include "ui/search/search_view.h"

#include <qcustomplot.h>

#include <QLabel>
#include <QPushButton>
#include <QSignalSpy>
#include <QtTest>

#include <cmath>

using namespace lathe;
using namespace lathe::ui;
using json = nlohmann::json;

namespace {

json searchDoc(bool twoObjectives) {
    json doc = json::parse(R"({
        "name": "view-search",
        "model": {"zoo": "mlp-784-256-128-10"},
        "dataset": {"name": "fashion-mnist", "split": "test"},
        "baseline": {"train": {"epochs": 3}},
        "measure": {"batch_sizes": [256], "warmup": 5, "repeats": 30},
        "search": {
            "objectives": [{"minimize": "latency_p50_ms@b256"}],
            "constraints": [{"metric": "accuracy_delta", ">=": -0.005}],
            "space": [
                {"optional": true, "strategy": "prune.structured", "params": {"ratio": {"min": 0.1, "max": 0.8}}},
                {"optional": true, "options": [{"strategy": "quantize.int8", "params": {"activations": {"choices": ["static", "dynamic"]}}},
                                               {"strategy": "quantize.fp16"}]}
            ],
            "budget": {"trials": 12},
            "seed": 1
        },
        "seed": 42
    })");
    if (twoObjectives) {
        doc["search"]["objectives"].push_back({{"maximize", "accuracy_delta"}});
        doc["search"]["algorithm"] = "motpe";
    }
    return doc;
}

// A made-up but consistent trial: pruning more is faster and costs accuracy; int8 is faster, fp16 slower.
struct Trial {
    double ratio; // 0: no pruning
    std::string quant; // "", "static", "dynamic", "fp16"
};

std::int64_t storeSearch(RunStore& store, const json& doc, const std::vector<Trial>& trials, bool finished) {
    NewRun s;
    s.name = "view-search (search)";
    s.strategyChain = "search";
    s.configJson = doc.dump();
    s.environmentJson = "{}";
    const std::int64_t searchId = store.createRun(s);
    store.startRun(searchId);
    json base = doc;
    base.erase("search");
    int i = 0;
    for (const Trial& t : trials) {
        json steps = json::array();
        if (t.ratio > 0) steps.push_back({{"strategy", "prune.structured"}, {"params", {{"ratio", t.ratio}}}});
        if (t.quant == "fp16") steps.push_back({{"strategy", "quantize.fp16"}, {"params", json::object()}});
        else if (!t.quant.empty()) steps.push_back({{"strategy", "quantize.int8"}, {"params", {{"activations", t.quant}}}});
        json d = base;
        d["steps"] = steps;
        d["name"] = "view-search #" + std::to_string(++i);
        NewRun nr;
        nr.name = d["name"];
        nr.strategyChain = "train";
        nr.configJson = d.dump();
        nr.environmentJson = "{}";
        nr.parentRunId = searchId;
        const std::int64_t id = store.createRun(nr);
        store.startRun(id);
        const double speed = (1 - 0.8 * t.ratio) * (t.quant == "fp16" ? 3.0 : t.quant.empty() ? 1.0 : 0.6);
        store.setSummary(id, {{"latency_p50_ms@b256", 1.2 * speed},
                              {"accuracy_delta", -0.02 * t.ratio * t.ratio - (t.quant == "static" ? 0.002 : 0.0)},
                              {"model_bytes", 940000 * (1 - t.ratio) * (t.quant.empty() ? 1.0 : t.quant == "fp16" ? 0.5 : 0.25)}});
        store.finishRun(id, run_status::kDone);
    }
    if (finished) store.finishRun(searchId, run_status::kDone);
    return searchId;
}

const std::vector<Trial> kTrials{{0, ""},       {0.5, "static"}, {0.3, "dynamic"}, {0.8, ""},    {0.2, "fp16"},
                                 {0.4, "dynamic"}, {0, "static"},  {0.7, "static"},  {0.35, "dynamic"}, {0.1, ""}};

} // namespace

class TestSearchView : public QObject {
    Q_OBJECT
private slots:
    void drawsTrialsRegionIncumbentAndImportance();
    void twoObjectivesDrawTheParetoFront();
    void aRunThatIsNotASearchSaysSo();
};

void TestSearchView::drawsTrialsRegionIncumbentAndImportance() {
    QTemporaryDir dir;
    RunStore store(dir.filePath(QStringLiteral("runs.sqlite")).toStdString());
    const json doc = searchDoc(false);
    // Still running: the first six trials.
    const std::vector<Trial> firstHalf(kTrials.begin(), kTrials.begin() + 6);
    const std::int64_t id = storeSearch(store, doc, firstHalf, false);

    SearchView view;
    view.resize(1200, 640);
    view.show();
    QVERIFY(QTest::qWaitForWindowExposed(&view));
    QVERIFY(view.showSearch(store, id));
    QCOMPARE(view.feasiblePoints() + view.infeasiblePoints(), 6);
    QVERIFY(view.feasibleRegionShown());

    // Every trial arrives: redraw.
    const std::vector<Trial> rest(kTrials.begin() + 6, kTrials.end());
    // The later trials are children of the same search run.
    json base = doc;
    base.erase("search");
    int n = 6;
    for (const Trial& t : rest) {
        json steps = json::array();
        if (t.ratio > 0) steps.push_back({{"strategy", "prune.structured"}, {"params", {{"ratio", t.ratio}}}});
        if (!t.quant.empty()) steps.push_back({{"strategy", "quantize.int8"}, {"params", {{"activations", t.quant}}}});
        json d = base;
        d["steps"] = steps;
        NewRun nr;
        nr.name = "view-search #" + std::to_string(++n);
        nr.configJson = d.dump();
        nr.environmentJson = "{}";
        nr.parentRunId = id;
        const std::int64_t rid = store.createRun(nr);
        const double speed = (1 - 0.8 * t.ratio) * (t.quant.empty() ? 1.0 : 0.6);
        store.setSummary(rid, {{"latency_p50_ms@b256", 1.2 * speed},
                               {"accuracy_delta", -0.02 * t.ratio * t.ratio - (t.quant == "static" ? 0.002 : 0.0)},
                               {"model_bytes", 1e5}});
        store.finishRun(rid, run_status::kDone);
    }
    QVERIFY(view.showSearch(store, id));
    QCOMPARE(view.feasiblePoints() + view.infeasiblePoints(), 10);
    // accuracy_delta >= -0.005: ratio 0.5 + static (-0.007), 0.8 (-0.0128), 0.7 + static (-0.0118) miss it.
    QCOMPARE(view.infeasiblePoints(), 3);
    QCOMPARE(view.feasiblePoints(), 7);
    const SearchResult& r = view.result();
    QVERIFY(r.best >= 0);
    // The fastest feasible: ratio 0.4 + dynamic int8 (1.2 * 0.68 * 0.6).
    QCOMPARE(r.trials[static_cast<std::size_t>(r.best)].steps.dump(),
             json::parse(R"([{"strategy":"prune.structured","params":{"ratio":0.4}},{"strategy":"quantize.int8","params":{"activations":"dynamic"}}])").dump());

    // The chart: a shaded rectangle behind the points, the incumbent's ring and line.
    QCustomPlot* plot = view.trialsChart()->plot();
    int rects = 0;
    for (int i = 0; i < plot->itemCount(); ++i) rects += qobject_cast<QCPItemRect*>(plot->item(i)) ? 1 : 0;
    QCOMPARE(rects, 1);
    bool incumbent = false;
    for (int i = 0; i < plot->graphCount(); ++i) incumbent = incumbent || plot->graph(i)->name() == QStringLiteral("incumbent");
    QVERIFY(incumbent);
    // One bar per field with enough trials: steps[0], steps[1], the ratio, the activations.
    QCustomPlot* imp = view.importanceChart()->plot();
    QCOMPARE(imp->plottableCount(), 1);
    auto* bars = qobject_cast<QCPBars*>(imp->plottable(0));
    QVERIFY(bars);
    QCOMPARE(bars->data()->size(), 4);
    QVERIFY(view.summaryLabel()->text().contains(QStringLiteral("why")));

    // The winner opens as an experiment: valid, without the search, with the winning chain.
    QVERIFY(view.openWinnerButton()->isEnabled());
    QSignalSpy opened(&view, &SearchView::openExperimentRequested);
    QTest::mouseClick(view.openWinnerButton(), Qt::LeftButton);
    QCOMPARE(opened.count(), 1);
    const json winner = json::parse(opened.at(0).at(0).toString().toStdString());
    QVERIFY(!winner.contains("search"));
    QVERIFY(validateExperiment(winner).empty());
    QCOMPARE(winner.at("steps").size(), std::size_t{2});

    QTest::qWait(50);
    if (qEnvironmentVariableIsSet("LATHE_SCREENSHOT_DIR"))
        QVERIFY(view.grab().save(qEnvironmentVariable("LATHE_SCREENSHOT_DIR") + QStringLiteral("/search-view.png")));
}

void TestSearchView::twoObjectivesDrawTheParetoFront() {
    QTemporaryDir dir;
    RunStore store(dir.filePath(QStringLiteral("runs.sqlite")).toStdString());
    const std::int64_t id = storeSearch(store, searchDoc(true), kTrials, true);
    SearchView view;
    view.resize(1200, 640);
    QVERIFY(view.showSearch(store, id));
    QVERIFY(view.result().pareto.size() >= 2);
    QCustomPlot* plot = view.trialsChart()->plot();
    QCPGraph* front = nullptr;
    for (int i = 0; i < plot->graphCount(); ++i)
        if (plot->graph(i)->name() == QStringLiteral("Pareto front")) front = plot->graph(i);
    QVERIFY(front);
    QCOMPARE(front->data()->size(), static_cast<int>(view.result().pareto.size()));
    QVERIFY(!view.feasibleRegionShown()); // two objectives: the axes are the objectives
    QSignalSpy opened(&view, &SearchView::openExperimentRequested);
    QTest::mouseClick(view.openWinnerButton(), Qt::LeftButton);
    QCOMPARE(opened.count(), 1);
    // The Pareto set opens as a sweep over whole chains.
    const json winner = json::parse(opened.at(0).at(0).toString().toStdString());
    QCOMPARE(winner.at("sweep").at("steps").size(), view.result().pareto.size());
    QVERIFY(validateExperiment(winner).empty());
}

void TestSearchView::aRunThatIsNotASearchSaysSo() {
    QTemporaryDir dir;
    RunStore store(dir.filePath(QStringLiteral("runs.sqlite")).toStdString());
    NewRun nr;
    nr.name = "plain";
    nr.strategyChain = "train";
    nr.configJson = "{}";
    nr.environmentJson = "{}";
    const std::int64_t id = store.createRun(nr);
    SearchView view;
    QVERIFY(!view.showSearch(store, id));
    QVERIFY(view.summaryLabel()->text().contains(QStringLiteral("is not a search")));
    QVERIFY(!view.openWinnerButton()->isEnabled());
}

QTEST_MAIN(TestSearchView)
#include "test_search_view.moc"

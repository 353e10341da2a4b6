// Runs-table benchmark (issue 4): 10,000 runs in the store. The table must open in < 1 s and sort
// and filter in < 200 ms. Prints the measured figures; the bounds are the issue's.
#include "engine/store/run_store.h"
#include "ui/runs/runs_filter_proxy.h"
#include "ui/runs/runs_table_model.h"
#include "ui/runs/runs_view.h"

#include "tests/support/test_support.h"

#include <QElapsedTimer>
#include <QLineEdit>
#include <QTableView>
#include <QtTest>

#include <random>

using namespace lathe;
using namespace lathe::ui;

class TestRunsTableBench : public QObject {
    Q_OBJECT
    QString m_path;
    static constexpr int kRuns = 10000;

    static double ms(const QElapsedTimer& t) { return static_cast<double>(t.nsecsElapsed()) / 1e6; }

private slots:
    void initTestCase() {
        m_path = QString::fromStdString(test::tempDir()) + QStringLiteral("/bench.sqlite");
        RunStore store(m_path.toStdString());
        std::mt19937 rng(11);
        std::uniform_real_distribution<double> acc(0.80, 0.92), lat(0.02, 3.0);
        const char* models[] = {"mlp-784-256-128-10", "cnn-2conv"};
        const char* devices[] = {"cpu", "cuda:0"};
        const char* chains[] = {"train > measure", "train > finetune > measure", "train > prune.magnitude > finetune"};
        QElapsedTimer t;
        t.start();
        std::int64_t exp = 0;
        for (int i = 0; i < kRuns; ++i) {
            if (i % 50 == 0) exp = store.addExperiment("sweep-" + std::to_string(i / 50), "{}");
            NewRun r;
            r.experimentId = exp;
            r.name = "run " + std::to_string(i) + " [lr=" + std::to_string(lat(rng)) + "]";
            r.model = models[i % 2];
            r.dataset = "fashion-mnist";
            r.device = devices[(i / 3) % 2];
            r.strategyChain = chains[i % 3];
            r.tags = {i % 7 == 0 ? "paper" : "sweep"};
            r.configJson = "{}";
            const auto id = store.createRun(r);
            store.startRun(id);
            store.finishRun(id, i % 17 == 0 ? run_status::kFailed : run_status::kDone);
            store.setSummary(id, {{"accuracy", acc(rng)}, {"latency_p50_ms", lat(rng)}, {"latency_p99_ms", lat(rng) * 2},
                                  {"throughput_per_s", 1e4 * acc(rng)}, {"model_bytes", 1e6 * lat(rng)}});
        }
        qInfo("filled %d runs in %.0f ms", kRuns, ms(t));
    }

    void openSortFilter() {
        QElapsedTimer t;
        t.start();
        RunsTableModel model;
        QVERIFY(model.open(m_path));
        RunsView view(&model);
        view.resize(1400, 800);
        view.show();
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        QCoreApplication::processEvents();
        const double openMs = ms(t);
        QCOMPARE(model.rowCount(), kRuns);
        RunsFilterProxy* proxy = view.proxy();

        struct Case {
            const char* what;
            std::function<void()> act;
        };
        const Case cases[] = {
            {"sort by accuracy", [&] { view.table()->sortByColumn(RunsTableModel::Accuracy, Qt::DescendingOrder); }},
            {"sort by latency p50", [&] { view.table()->sortByColumn(RunsTableModel::LatencyP50, Qt::AscendingOrder); }},
            {"sort by name", [&] { view.table()->sortByColumn(RunsTableModel::Name, Qt::AscendingOrder); }},
            {"sort by start time", [&] { view.table()->sortByColumn(RunsTableModel::Started, Qt::DescendingOrder); }},
            {"filter text \"paper cnn\"", [&] { view.filterEdit()->setText(QStringLiteral("paper cnn")); }},
            {"filter text cleared", [&] { view.filterEdit()->clear(); }},
            {"filter status failed", [&] { proxy->setStatuses({QStringLiteral("failed")}); }},
            {"filter status any", [&] { proxy->setStatuses({}); }},
        };
        qInfo("open (listRuns + model + view shown): %.1f ms for %d runs (store read %lld ms)", openMs, kRuns,
              static_cast<long long>(model.lastRefreshMs()));
        QVERIFY2(openMs < 1000, qPrintable(QStringLiteral("open took %1 ms").arg(openMs)));
        double worst = 0;
        for (const Case& c : cases) {
            QElapsedTimer ct;
            ct.start();
            c.act();
            QCoreApplication::processEvents(); // include the view's relayout and repaint
            const double took = ms(ct);
            worst = std::max(worst, took);
            qInfo("%-28s %7.1f ms  (%d rows shown)", c.what, took, proxy->rowCount());
            QVERIFY2(took < 200, qPrintable(QStringLiteral("%1 took %2 ms").arg(QString::fromLatin1(c.what)).arg(took)));
        }
        QCOMPARE(proxy->rowCount(), kRuns);
        QElapsedTimer rt;
        rt.start();
        const bool changed = model.refresh();
        qInfo("refresh with nothing changed: %.1f ms; slowest sort/filter %.1f ms", ms(rt), worst);
        QVERIFY(!changed);
    }
};

QTEST_MAIN(TestRunsTableBench)
#include "test_runs_table_bench.moc"

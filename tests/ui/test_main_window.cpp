// End to end (issue 4): the main window opens, shows the devices and the engine version, opens a
// bundled experiment from the library, runs it (shrunk to seconds through the JSON tab, as a user
// would), waits for it, finds the runs in the store and in the table, opens one, and saves
// screenshots into the build folder. Closing the window during a run stores it as cancelled. A sweep of
// searches is followed search by search in the Search tab.
#include "app/gui/app_controller.h"
#include "app/gui/main_window.h"
#include "engine/store/run_store.h"
#include "ui/charts/chart_view.h"
#include "ui/charts/live_dashboard.h"
#include "ui/charts/pareto_chart.h"
#include "ui/charts/runs_charts_panel.h"
#include "ui/devices/devices_panel.h"
#include "ui/editor/experiment_editor.h"
#include "ui/library/experiment_library.h"
#include "ui/run/log_pane.h"
#include "ui/runs/compare_view.h"
#include "ui/runs/run_details.h"
#include "ui/runs/runs_filter_proxy.h"
#include "ui/runs/runs_table_model.h"
#include "ui/runs/runs_view.h"
#include "ui/search/search_view.h"

#include "tests/support/test_support.h"

#include <qcustomplot.h>

#include <QAction>
#include <QLabel>
#include <QPlainTextEdit>
#include <QSignalSpy>
#include <QTabWidget>
#include <QTableWidget>
#include <QTreeWidget>
#include <QtTest>

using namespace lathe;
using namespace lathe::app;
using namespace lathe::ui;

namespace {
QString screenshotPath(const QString& name) {
    const QString dir = qEnvironmentVariable("LATHE_SCREENSHOT_DIR", QDir::currentPath());
    return dir + QLatin1Char('/') + name;
}

void saveScreenshot(QWidget& window, const QString& name) {
    for (ChartView* c : window.findChildren<ChartView*>()) {
        c->plot()->replot(QCustomPlot::rpImmediateRefresh);
    }
    QCoreApplication::processEvents();
    const QString path = screenshotPath(name);
    QVERIFY2(window.grab().save(path), qPrintable(path));
    qInfo("screenshot: %s", qPrintable(path));
}
} // namespace

namespace {

// Shows the window at the size the screenshots use and waits until it is on screen.
bool showForScreenshots(MainWindow& window) {
    window.resize(1600, 1000);
    window.show();
    return QTest::qWaitForWindowExposed(&window);
}

// Opens the bundled experiment whose file name ends with `name`, from the window's library.
bool openBundled(MainWindow& window, const QString& name) {
    for (const QString& f : window.library()->files())
        if (f.endsWith(name)) return window.openExperiment(f);
    qWarning("no bundled %s among: %s", qPrintable(name), qPrintable(window.library()->files().join(QLatin1Char(','))));
    return false;
}

} // namespace

class TestMainWindow : public QObject {
    Q_OBJECT
    QString m_db;

    // The bundled learning-rate sweep, shrunk from minutes to seconds.
    nlohmann::json shrink(nlohmann::json doc) {
        doc["device"] = "cpu";
        doc["dataset"]["limit"] = 1000;
        doc["baseline"]["train"]["epochs"] = 2;
        doc["baseline"]["train"]["limit"] = 4000;
        doc["measure"] = {{"batch_sizes", {1, 16, 64}}, {"warmup", 5}, {"repeats", 60}};
        return doc;
    }

private slots:
    void initTestCase() {
        const std::string tmp = test::tempDir();
        qputenv("XDG_DATA_HOME", QByteArray::fromStdString(tmp + "/data"));
        qputenv("XDG_CACHE_HOME", QByteArray::fromStdString(tmp + "/cache"));
        qputenv("XDG_CONFIG_HOME", QByteArray::fromStdString(tmp + "/config"));
        qputenv("LATHE_EXPERIMENTS_DIR", QByteArray::fromStdString(test::sourcePath("experiments")));
        QCoreApplication::setOrganizationName(QStringLiteral("LatheTest"));
        QCoreApplication::setApplicationName(QStringLiteral("lathe-test"));
        m_db = QString::fromStdString(tmp) + QStringLiteral("/runs.sqlite");
    }

    void runsABundledExperiment() {
        LATHE_REQUIRE_FASHION_MNIST();
        AppController controller(m_db);
        MainWindow window(&controller);
        QVERIFY(showForScreenshots(window));

        // Issue 2's shell: devices and engine version are on screen.
        QVERIFY(window.devices()->tree()->topLevelItemCount() >= 1);
        QCOMPARE(window.devices()->tree()->topLevelItem(0)->text(0), QStringLiteral("cpu"));
        QVERIFY(window.deviceLabel()->text().contains(QStringLiteral("cpu")));
        QVERIFY(!DevicesPanel::engineVersion().isEmpty());
        QCOMPARE(window.runAction()->shortcut(), QKeySequence(QStringLiteral("Ctrl+R")));
        QCOMPARE(window.cancelAction()->shortcut(), QKeySequence(Qt::Key_Escape));

        // The library lists the bundled experiments; open the sweep from it.
        QVERIFY(openBundled(window, QStringLiteral("mlp-lr-sweep.json")));
        ExperimentEditor* editor = window.editor();
        QVERIFY(!editor->isModified());
        editor->jsonEdit()->setPlainText(QString::fromStdString(shrink(editor->document()).dump(2)));
        editor->applyJsonText();
        QVERIFY(editor->isModified());
        QVERIFY(window.isWindowModified());

        QSignalSpy finished(&controller, &AppController::experimentFinished);
        QSignalSpy runFinished(&controller, &AppController::runFinished);
        QVERIFY(window.runExperiment());
        QVERIFY(!window.runAction()->isEnabled());
        QVERIFY(window.cancelAction()->isEnabled());
        QCOMPARE(window.tabs()->currentIndex(), int(MainWindow::LiveTab));
        QVERIFY(finished.wait(300000));
        QCOMPARE(finished.at(0).at(0).toBool(), false);
        QCOMPARE(runFinished.count(), 3);
        QVERIFY(window.runAction()->isEnabled());

        // The live charts got every run of the sweep.
        QTRY_VERIFY(window.dashboard()->chart(QStringLiteral("latency")) &&
                    window.dashboard()->chart(QStringLiteral("latency"))->plot()->graphCount() >= 3);
        QVERIFY(window.dashboard()->chart(QStringLiteral("training_loss"))->plot()->graphCount() >= 3);
        QVERIFY(window.dashboard()->chart(QStringLiteral("throughput"))->plot()->graphCount() >= 3);
        QVERIFY(!window.dashboard()->chart(QStringLiteral("other"))); // every series the engine streams has its chart
        QVERIFY(window.dashboard()->pointCount() > 100);
        saveScreenshot(window, QStringLiteral("main-window-e2e.png"));
        saveScreenshot(*window.dashboard(), QStringLiteral("dashboard-sweep.png"));

        // In the store and in the table.
        RunStore reader(m_db.toStdString(), RunStore::Mode::ReadOnly);
        RunFilter filter;
        filter.text = "mlp-lr-sweep";
        const auto runs = reader.listRuns(filter);
        QCOMPARE(runs.size(), std::size_t(3));
        for (const auto& r : runs) QCOMPARE(QString::fromStdString(r.status), QStringLiteral("done"));
        QTRY_COMPARE(window.runsModel()->rowCount(), 3);
        window.tabs()->setCurrentIndex(MainWindow::RunsTab);
        window.runsView()->filterEdit()->setText(QStringLiteral("lr-sweep"));
        QCOMPARE(window.runsView()->proxy()->rowCount(), 3);
        window.runsView()->filterEdit()->clear();
        saveScreenshot(window, QStringLiteral("main-window-runs.png"));

        // Opening a finished run shows its stored charts and summary.
        window.openRun(runs.front().id);
        QCOMPARE(window.tabs()->currentIndex(), int(MainWindow::DetailsTab));
        QVERIFY(window.runDetails()->summaryTable()->rowCount() > 4);
        QVERIFY(window.runDetails()->dashboard()->pointCount() > 0);
        window.compareRuns({runs[0].id, runs[1].id, runs[2].id});
        QCOMPARE(window.runDetails()->summaryTable()->columnCount(), 3);
        // Several runs open on the comparison; the Pareto chart across them opens a run when clicked.
        QCOMPARE(window.runDetails()->chartTabs()->currentWidget(), window.runDetails()->compareView());
        QCOMPARE(window.runDetails()->compareView()->table()->columnCount(), 3);
        saveScreenshot(window, QStringLiteral("main-window-details.png"));
        window.runDetails()->chartTabs()->setCurrentWidget(window.runDetails()->runsCharts());
        ParetoChart* pareto = window.runDetails()->runsCharts()->pareto();
        QVERIFY(!pareto->isHidden());
        QVERIFY(!pareto->front().empty());
        saveScreenshot(window, QStringLiteral("main-window-pareto.png"));
        emit pareto->runActivated(runs[1].id);
        QCOMPARE(window.runDetails()->runIds(), (QList<qint64>{runs[1].id}));
        window.compareRuns({runs[0].id, runs[1].id, runs[2].id});
        window.tabs()->setCurrentIndex(MainWindow::LiveTab);

        // Export through the same code as the context menu.
        const QString exported = QString::fromStdString(test::tempDir()) + QStringLiteral("/export.json");
        window.exportRuns({runs[0].id}, exported);
        QFile f(exported);
        QVERIFY(f.open(QIODevice::ReadOnly));
        QVERIFY(nlohmann::json::parse(f.readAll().toStdString())[0].contains("summary"));

        editor->setModified(false); // no save prompt when closing
        window.close();
        QVERIFY(!window.isVisible());
    }

    void distillationDrawsBothStudents() {
        // The bundled temperature sweep, shrunk: both students' curves share the training charts, the
        // loss parts have their own chart, and nothing lands in "other".
        LATHE_REQUIRE_FASHION_MNIST();
        AppController controller(m_db);
        MainWindow window(&controller);
        QVERIFY(showForScreenshots(window));
        QVERIFY(openBundled(window, QStringLiteral("distill-temperature.json")));
        ExperimentEditor* editor = window.editor();
        nlohmann::json doc = shrink(editor->document());
        doc["steps"][0]["params"]["epochs"] = 3;
        doc["steps"][0]["params"]["limit"] = 4000;
        doc["sweep"] = {{"steps[0].params.temperature", {2, 4}}};
        editor->jsonEdit()->setPlainText(QString::fromStdString(doc.dump(2)));
        editor->applyJsonText();
        QSignalSpy finished(&controller, &AppController::experimentFinished);
        QSignalSpy runFinished(&controller, &AppController::runFinished);
        QVERIFY(window.runExperiment());
        QVERIFY(finished.wait(300000));
        QCOMPARE(finished.at(0).at(0).toBool(), false);
        QCOMPARE(runFinished.count(), 2);

        LiveDashboard* dashboard = window.dashboard();
        QTRY_VERIFY(dashboard->chart(QStringLiteral("distill_loss_parts")));
        for (const char* series : {"loss", "loss_scratch"})
            QVERIFY2(!dashboard->graphsOf(runFinished.at(0).at(0).toLongLong(), series).empty(), series);
        QVERIFY(!dashboard->graphsOf(runFinished.at(1).at(0).toLongLong(), "val_accuracy_scratch").empty());
        QCOMPARE(dashboard->chart(QStringLiteral("distill_loss_parts"))->plot()->graphCount(), 4); // 2 runs x soft, hard
        QVERIFY(!dashboard->chart(QStringLiteral("other")));
        saveScreenshot(*dashboard, QStringLiteral("dashboard-distill.png"));
        editor->setModified(false);
        window.close();
    }

    void aSweepOfSearchesIsFollowedSearchBySearch() {
        // The bundled MLP search with a sweep over its seed, shrunk to two searches of two trials: the Search
        // tab shows the first search's trials, then switches to the second one's.
        LATHE_REQUIRE_FASHION_MNIST();
        AppController controller(m_db);
        MainWindow window(&controller);
        QVERIFY(showForScreenshots(window));
        QVERIFY(openBundled(window, QStringLiteral("mlp-search-latency.json")));
        ExperimentEditor* editor = window.editor();
        nlohmann::json doc = shrink(editor->document());
        doc["baseline"]["train"]["epochs"] = 1;
        doc["measure"] = {{"batch_sizes", {64}}, {"warmup", 2}, {"repeats", 5}};
        doc["search"]["budget"]["trials"] = 2;
        doc["search"]["algorithm"] = "random";
        doc["search"]["space"] = nlohmann::json::parse(
            R"([{"strategy": "prune.structured", "params": {"ratio": {"min": 0.1, "max": 0.8}}}])");
        doc["sweep"] = {{"search.seed", {1, 2}}};
        editor->jsonEdit()->setPlainText(QString::fromStdString(doc.dump(2)));
        editor->applyJsonText();
        QSignalSpy finished(&controller, &AppController::experimentFinished);
        QSignalSpy runFinished(&controller, &AppController::runFinished);
        QVERIFY(window.runExperiment());
        QVERIFY(finished.wait(300000));
        QCOMPARE(finished.at(0).at(1).toString(), QString());
        QCOMPARE(runFinished.count(), 4); // two trials per search, each a random pruning ratio (none looked up)

        RunStore store(m_db.toStdString());
        std::vector<RunRecord> searches;
        for (const RunRecord& r : store.listRuns({}))
            if (r.strategyChain == "search" && r.name.rfind("mlp-search-latency [seed=", 0) == 0) searches.push_back(r);
        QCOMPARE(searches.size(), std::size_t{2});
        const auto second = std::max_element(searches.begin(), searches.end(),
                                             [](const RunRecord& a, const RunRecord& b) { return a.id < b.id; });
        QCOMPARE(window.searchView()->searchRunId(), second->id);
        QCOMPARE(QString::fromStdString(second->name), QStringLiteral("mlp-search-latency [seed=2] (search)"));
        editor->setModified(false);
        window.close();
    }

    void closingDuringARunCancelsIt() {
        LATHE_REQUIRE_FASHION_MNIST();
        AppController controller(m_db);
        MainWindow window(&controller);
        window.show();
        QVERIFY(QTest::qWaitForWindowExposed(&window));
        nlohmann::json doc = shrink(ExperimentEditor::newDocument());
        doc["name"] = "long-one";
        doc["baseline"]["train"]["epochs"] = 50;
        doc["baseline"]["train"]["limit"] = 60000;
        window.editor()->setDocument(doc);
        QSignalSpy runStarted(&controller, &AppController::runStarted);
        QSignalSpy finished(&controller, &AppController::experimentFinished);
        QVERIFY(window.runExperiment());
        QVERIFY(runStarted.wait(60000));
        QTest::qWait(300);
        QElapsedTimer clock;
        clock.start();
        window.close(); // cancels and closes once the engine has stored the run
        QVERIFY(window.isVisible());
        QVERIFY(finished.wait(60000));
        QTRY_VERIFY_WITH_TIMEOUT(!window.isVisible(), 10000);
        qInfo("window closed %lld ms after close() during a run", static_cast<long long>(clock.elapsed()));
        RunStore reader(m_db.toStdString(), RunStore::Mode::ReadOnly);
        QCOMPARE(QString::fromStdString(reader.run(runStarted.at(0).at(0).toLongLong())->status), QStringLiteral("cancelled"));
    }
};

LATHE_TEST_MAIN(TestMainWindow)
#include "test_main_window.moc"

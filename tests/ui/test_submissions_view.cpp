// Submitted sweeps in the window's runs table (issue 17): a store with a submission (recorded through
// RunStore::addSubmission, as lathe-cli submit does) and task shards, a stand-in for Slurm behind the
// JobStateSource seam. The row counts tasks as lathe-cli jobs does and follows the states as they change;
// "Merge finished shards" from the row's menu merges through the engine thread; a controller that answers
// with an error, or not at all, shows "controller unreachable" while the window keeps running.
#include "app/gui/app_controller.h"
#include "app/gui/main_window.h"
#include "engine/store/run_store.h"
#include "engine/store/sweep_status.h"
#include "ui/runs/runs_table_model.h"
#include "ui/runs/runs_view.h"
#include "ui/runs/submissions_model.h"
#include "ui/runs/submissions_view.h"

#include "tests/support/test_support.h"

#include <QLabel>
#include <QLineEdit>
#include <QMenu>
#include <QProcess>
#include <QSignalSpy>
#include <QTabWidget>
#include <QTableView>
#include <QtTest>

#include <condition_variable>
#include <filesystem>
#include <mutex>

using namespace lathe;
using namespace lathe::app;
using namespace lathe::ui;
namespace fs = std::filesystem;

namespace {

// Slurm as the tests want it: states set by the test, and a switch that makes every query hang until
// released (a controller that does not answer).
class FakeSlurm : public JobStateSource {
public:
    JobStates query(const SubmissionRecord&) override {
        std::unique_lock lock(m_mutex);
        ++m_queries;
        m_cv.wait(lock, [this] { return !m_hold; });
        return m_states;
    }
    void set(JobStates states) {
        std::lock_guard lock(m_mutex);
        m_states = std::move(states);
    }
    void hold(bool on) {
        {
            std::lock_guard lock(m_mutex);
            m_hold = on;
        }
        m_cv.notify_all();
    }
    int queries() {
        std::lock_guard lock(m_mutex);
        return m_queries;
    }

private:
    std::mutex m_mutex;
    std::condition_variable m_cv;
    JobStates m_states;
    bool m_hold = false;
    int m_queries = 0;
};

JobStates states(std::map<int, std::string> tasks, std::string merge, std::string error = {}) {
    JobStates s;
    s.tasks = std::move(tasks);
    s.merge = std::move(merge);
    s.error = std::move(error);
    s.source = "squeue";
    return s;
}

// A submitted 4-task sweep: the submission in `db`, its shards under `workdir`.
struct Sweep {
    QString db;
    SubmissionRecord record;

    explicit Sweep(const std::string& dir) {
        fs::remove_all(dir);
        fs::create_directories(dir + "/work/shards");
        db = QString::fromStdString(dir + "/runs.sqlite");
        record.uuid = RunStore::newUuid();
        record.name = "mlp-lr-sweep";
        record.specFile = dir + "/mlp-lr-sweep.json";
        record.workdir = dir + "/work";
        record.tasks = 4;
        record.arrayJobId = "4242";
        record.mergeJobId = "4243";
        RunStore store(db.toStdString());
        store.addSubmission(record);
    }
    // Task `task`'s shard with one run of the sweep's experiment, left `status`.
    void shard(int task, const char* status) const {
        RunStore s(shardPath(record.workdir, task));
        NewRun run;
        run.experimentId = s.addExperiment(record.name, "{}", record.uuid);
        run.name = "mlp-lr-sweep [lr=" + std::to_string(task) + "]";
        run.model = "mlp-784-256-128-10";
        run.device = "cpu";
        const auto id = s.createRun(run);
        s.startRun(id);
        if (std::string(status) != run_status::kRunning) s.finishRun(id, status);
    }
};

// Midway: task 0 done, task 1 failed, task 2 running, task 3 waiting, the merge job waiting for them.
void midway(const Sweep& sweep, FakeSlurm& slurm) {
    sweep.shard(0, run_status::kDone);
    sweep.shard(1, run_status::kFailed);
    sweep.shard(2, run_status::kRunning);
    slurm.set(states({{0, "COMPLETED"}, {1, "FAILED"}, {2, "RUNNING"}, {3, "PENDING"}}, "PENDING"));
}

// Shows the window on its Runs tab, at the size of the screenshots.
bool showRunsTab(MainWindow& window) {
    window.resize(1400, 800);
    window.show();
    window.tabs()->setCurrentIndex(MainWindow::RunsTab);
    return QTest::qWaitForWindowExposed(&window);
}

// The window over a sweep midway, the stand-in Slurm asked every 50 ms.
struct MidwayWindow {
    Sweep sweep;
    std::shared_ptr<FakeSlurm> slurm = std::make_shared<FakeSlurm>();
    AppController controller;
    MainWindow window;
    explicit MidwayWindow(const std::string& dir)
        : sweep(dir), controller(prepared(sweep, *slurm)), window(&controller, nullptr, slurm) {
        window.submissionsModel()->setPollInterval(50);
    }
    static QString prepared(const Sweep& sweep, FakeSlurm& slurm) {
        midway(sweep, slurm);
        return sweep.db;
    }
};

bool answered(MainWindow& window) {
    return window.submissionsModel()->rowCount() == 1 && window.submissionsModel()->row(0).answered;
}

QString cell(MainWindow& w, int column) {
    return w.submissionsView()->table()->model()->index(0, column).data().toString();
}

QString screenshotPath(const QString& name) {
    return qEnvironmentVariable("LATHE_SCREENSHOT_DIR", QDir::currentPath()) + QLatin1Char('/') + name;
}

} // namespace

class TestSubmissionsView : public QObject {
    Q_OBJECT
    std::string m_tmp;
    int m_case = 0;
    std::string freshDir() { return m_tmp + "/case" + std::to_string(++m_case); }

private slots:
    void initTestCase() {
        m_tmp = test::tempDir();
        qputenv("XDG_DATA_HOME", QByteArray::fromStdString(m_tmp + "/data"));
        qputenv("XDG_CACHE_HOME", QByteArray::fromStdString(m_tmp + "/cache"));
        qputenv("XDG_CONFIG_HOME", QByteArray::fromStdString(m_tmp + "/config"));
        QCoreApplication::setOrganizationName(QStringLiteral("LatheTest"));
        QCoreApplication::setApplicationName(QStringLiteral("lathe-submissions-test"));
    }

    void countsFollowTheStates() {
        MidwayWindow w(freshDir());
        auto& [sweep, slurm, controller, window] = w;
        QVERIFY(showRunsTab(window));

        QTRY_VERIFY(answered(window));
        QVERIFY(window.submissionsView()->isVisible());
        QCOMPARE(cell(window, SubmissionsModel::Experiment), QStringLiteral("mlp-lr-sweep"));
        QCOMPARE(cell(window, SubmissionsModel::SlurmJob), QStringLiteral("4242"));
        QCOMPARE(cell(window, SubmissionsModel::Tasks), QStringLiteral("4"));
        QCOMPARE(cell(window, SubmissionsModel::Pending), QStringLiteral("1"));
        QCOMPARE(cell(window, SubmissionsModel::Running), QStringLiteral("1"));
        QCOMPARE(cell(window, SubmissionsModel::Done), QStringLiteral("1"));
        QCOMPARE(cell(window, SubmissionsModel::Failed), QStringLiteral("1"));
        QCOMPARE(cell(window, SubmissionsModel::Merged), QStringLiteral("0"));
        QCOMPARE(cell(window, SubmissionsModel::MergeJob), QStringLiteral("4243 PENDING"));
        QCOMPARE(cell(window, SubmissionsModel::State), QStringLiteral("running"));

        // Task 2 finishes, task 3 starts: the row follows on the next poll.
        sweep.shard(2, run_status::kDone); // a second run in the shard: the newest is the one that counts
        slurm->set(states({{0, "COMPLETED"}, {1, "FAILED"}, {2, "COMPLETED"}, {3, "RUNNING"}}, "PENDING"));
        QTRY_COMPARE(cell(window, SubmissionsModel::Done), QStringLiteral("2"));
        QCOMPARE(cell(window, SubmissionsModel::Running), QStringLiteral("1"));
        QCOMPARE(cell(window, SubmissionsModel::Pending), QStringLiteral("0"));

        // Every task ended, the merge job runs; then Slurm forgets the jobs and the shards tell.
        sweep.shard(3, run_status::kDone);
        slurm->set(states({{0, "COMPLETED"}, {1, "FAILED"}, {2, "COMPLETED"}, {3, "COMPLETED"}}, "RUNNING"));
        QTRY_COMPARE(cell(window, SubmissionsModel::State), QStringLiteral("merging"));
        QCOMPARE(cell(window, SubmissionsModel::Done), QStringLiteral("3"));
        slurm->set(states({}, ""));
        QTRY_COMPARE(cell(window, SubmissionsModel::State), QStringLiteral("finished"));
        QCOMPARE(cell(window, SubmissionsModel::MergeJob), QStringLiteral("4243 ended"));
        QCOMPARE(cell(window, SubmissionsModel::Done), QStringLiteral("3"));
        QCOMPARE(cell(window, SubmissionsModel::Failed), QStringLiteral("1"));
        // A finished sweep is not asked about again.
        const int asked = slurm->queries();
        QTest::qWait(300);
        QCOMPARE(slurm->queries(), asked);
    }

    void mergeFinishedShardsFromTheMenu() {
        MidwayWindow w(freshDir());
        auto& [sweep, slurm, controller, window] = w;
        QVERIFY(showRunsTab(window));
        QTRY_VERIFY(answered(window));
        QCOMPARE(window.runsModel()->rowCount(), 0);

        // Only the tasks that ended: task 2's run is still going, merging it now would store it interrupted.
        const QStringList shards = window.submissionsView()->finishedShards(0);
        QCOMPARE(shards, (QStringList{QString::fromStdString(shardPath(sweep.record.workdir, 0)),
                                      QString::fromStdString(shardPath(sweep.record.workdir, 1))}));

        // The row's context menu, as a user opens it.
        QTableView* table = window.submissionsView()->table();
        QSignalSpy merged(&controller, &AppController::shardsMerged);
        QString chosen;
        QTimer::singleShot(0, this, [&] {
            auto* menu = qobject_cast<QMenu*>(QApplication::activePopupWidget());
            if (!menu) return;
            for (QAction* a : menu->actions())
                if (a->text().startsWith(QStringLiteral("Merge finished shards")) && a->isEnabled()) {
                    chosen = a->text();
                    menu->setActiveAction(a);
                    QTest::keyClick(menu, Qt::Key_Return);
                    return;
                }
            menu->close();
        });
        emit table->customContextMenuRequested(table->visualRect(table->model()->index(0, 1)).center());
        QCOMPARE(chosen, QStringLiteral("Merge finished shards (2)"));

        // The engine thread merges; the runs table and the Merged column follow.
        QTRY_COMPARE(merged.size(), 1);
        QVERIFY2(merged[0][3].toString().isEmpty(), qPrintable(merged[0][3].toString()));
        QCOMPARE(merged[0][0].toInt(), 2);
        QCOMPARE(merged[0][1].toInt(), 0);
        QTRY_COMPARE(window.runsModel()->rowCount(), 2);
        QTRY_COMPARE(cell(window, SubmissionsModel::Merged), QStringLiteral("2"));
        QStringList statuses;
        for (int r = 0; r < 2; ++r) statuses << QString::fromStdString(window.runsModel()->record(r).status);
        statuses.sort();
        QCOMPARE(statuses, (QStringList{QStringLiteral("done"), QStringLiteral("failed")}));

        // Activating the row filters the runs table to the sweep.
        emit table->activated(table->model()->index(0, 0));
        QCOMPARE(window.runsView()->filterEdit()->text(), QStringLiteral("mlp-lr-sweep"));
        window.runsView()->filterEdit()->clear();

        QCoreApplication::processEvents();
        const QString path = screenshotPath(QStringLiteral("runs-submitted-sweep.png"));
        QVERIFY2(window.grab().save(path), qPrintable(path));
        qInfo("screenshot: %s", qPrintable(path));
    }

    void unreachableControllerShowsTheMessage() {
        Sweep sweep(freshDir());
        sweep.shard(0, run_status::kDone);
        sweep.shard(1, run_status::kFailed);
        auto slurm = std::make_shared<FakeSlurm>();
        const std::string why = "squeue -h -r -t all -j 4242,4243 -o '%F|%K|%i|%T' failed (exit status 1): "
                                "slurm_load_jobs error: Unable to contact slurm controller (connect failure)";
        slurm->set(states({}, "", why));
        AppController controller(sweep.db);
        MainWindow window(&controller, nullptr, slurm);
        QVERIFY(showRunsTab(window));
        QTRY_VERIFY(answered(window));
        QCOMPARE(cell(window, SubmissionsModel::State), QStringLiteral("controller unreachable"));
        QCOMPARE(window.submissionsView()->table()->model()->index(0, SubmissionsModel::State).data(Qt::ToolTipRole).toString(),
                 QString::fromStdString(why));
        QVERIFY(window.submissionsView()->statusLabel()->text().contains(QStringLiteral("unreachable")));
        QCOMPARE(window.submissionsView()->statusLabel()->toolTip(), QString::fromStdString(why));
        // The counts come from the shards alone: two ended, two not heard of (pending while Slurm is silent).
        QCOMPARE(cell(window, SubmissionsModel::Done), QStringLiteral("1"));
        QCOMPARE(cell(window, SubmissionsModel::Failed), QStringLiteral("1"));
        QCOMPARE(cell(window, SubmissionsModel::Pending), QStringLiteral("2"));
        QCOMPARE(cell(window, SubmissionsModel::MergeJob), QStringLiteral("4243 unknown"));
    }

    void silentControllerDoesNotBlockTheWindow() {
        Sweep sweep(freshDir());
        sweep.shard(0, run_status::kDone);
        auto slurm = std::make_shared<FakeSlurm>();
        slurm->set(states({{0, "COMPLETED"}, {1, "RUNNING"}, {2, "PENDING"}, {3, "PENDING"}}, "PENDING"));
        slurm->hold(true);
        AppController controller(sweep.db);
        QElapsedTimer clock;
        clock.start();
        MainWindow window(&controller, nullptr, slurm);
        window.submissionsModel()->setAnswerTimeout(200);
        QVERIFY(showRunsTab(window));
        QTRY_COMPARE(slurm->queries(), 1);
        QVERIFY2(clock.elapsed() < 2000, qPrintable(QString::number(clock.elapsed())));
        QCOMPARE(cell(window, SubmissionsModel::State), QStringLiteral("asking Slurm..."));

        // No answer within the timeout: the row says so, and the event loop kept turning all along.
        int ticks = 0;
        QTimer tick;
        connect(&tick, &QTimer::timeout, this, [&] { ++ticks; });
        tick.start(10);
        QTRY_COMPARE_WITH_TIMEOUT(cell(window, SubmissionsModel::State), QStringLiteral("controller unreachable"), 3000);
        QVERIFY(window.submissionsView()->statusLabel()->text().contains(QStringLiteral("unreachable")));
        QVERIFY(window.submissionsView()->table()->model()->index(0, 0).data(Qt::ToolTipRole).toString().contains(
            QStringLiteral("no answer")));
        QTest::qWait(100);
        QVERIFY2(ticks >= 5, qPrintable(QString::number(ticks)));
        QVERIFY(window.submissionsModel()->queryInFlight());

        // The controller answers at last: its answer counts.
        slurm->hold(false);
        QTRY_COMPARE(cell(window, SubmissionsModel::State), QStringLiteral("running"));
        QCOMPARE(cell(window, SubmissionsModel::Done), QStringLiteral("1"));
        QCOMPARE(cell(window, SubmissionsModel::Running), QStringLiteral("1"));
        QCOMPARE(cell(window, SubmissionsModel::Pending), QStringLiteral("2"));
    }

    void noSlurmOnPath() {
        // The window's own source (squeue through the PATH) on a machine without Slurm.
        Sweep sweep(freshDir());
        const QByteArray path = qgetenv("PATH");
        const std::string empty = freshDir();
        fs::create_directories(empty);
        qputenv("PATH", QByteArray::fromStdString(empty));
        AppController controller(sweep.db);
        MainWindow window(&controller);
        QVERIFY(showRunsTab(window));
        QTRY_VERIFY(answered(window));
        qputenv("PATH", path);
        QCOMPARE(cell(window, SubmissionsModel::State), QStringLiteral("controller unreachable"));
        const QString why = window.submissionsView()->table()->model()->index(0, 0).data(Qt::ToolTipRole).toString();
        QVERIFY2(why.startsWith(QStringLiteral("squeue")), qPrintable(why));
    }

    // With a real Slurm (tests/cluster/run_case.sh window: a one-node cluster running a 4-task sweep at
    // most one task at a time, submitted into $LATHE_SLURM_DB): the window's own source asks squeue. Midway,
    // the finished shards are merged from the row's menu; the merge job merges the rest at the end.
    void realSlurm() {
        const QString db = qEnvironmentVariable("LATHE_SLURM_DB");
        if (db.isEmpty()) QSKIP("run by tests/cluster/run_case.sh window (test_cluster_window), with a one-node Slurm");
        AppController controller(db);
        MainWindow window(&controller);
        window.submissionsModel()->setPollInterval(500);
        QVERIFY(showRunsTab(window));
        QTRY_VERIFY_WITH_TIMEOUT(answered(window), 20000);
        QVERIFY2(window.submissionsModel()->errorText(0).isEmpty(), qPrintable(window.submissionsModel()->errorText(0)));
        QCOMPARE(cell(window, SubmissionsModel::Tasks), QStringLiteral("4"));

        // Midway: tasks 0 and 1 done, 2 and 3 held back by the script (LATHE_SLURM_HELD) so this moment is
        // certain however fast the tasks run.
        const QString held = qEnvironmentVariable("LATHE_SLURM_HELD");
        QVERIFY2(!held.isEmpty(), "LATHE_SLURM_HELD (the held array tasks) is not set");
        QTRY_VERIFY_WITH_TIMEOUT(cell(window, SubmissionsModel::Done) == QStringLiteral("2") &&
                                     cell(window, SubmissionsModel::Pending) == QStringLiteral("2") &&
                                     cell(window, SubmissionsModel::Running) == QStringLiteral("0"),
                                 40000);
        QVERIFY2(window.submissionsModel()->errorText(0).isEmpty(), qPrintable(window.submissionsModel()->errorText(0)));
        const QStringList shards = window.submissionsView()->finishedShards(0);
        QVERIFY(!shards.isEmpty());
        QSignalSpy merged(&controller, &AppController::shardsMerged);
        emit window.submissionsView()->mergeRequested(cell(window, SubmissionsModel::Experiment), shards);
        QTRY_VERIFY_WITH_TIMEOUT(merged.size() == 1, 20000);
        QCOMPARE(merged[0][0].toInt(), static_cast<int>(shards.size()));
        QTRY_COMPARE_WITH_TIMEOUT(cell(window, SubmissionsModel::Merged), QString::number(shards.size()), 10000);
        QTRY_COMPARE(window.runsModel()->rowCount(), static_cast<int>(shards.size()));
        const QString midway = screenshotPath(QStringLiteral("runs-submitted-sweep-slurm.png"));
        QVERIFY(window.grab().save(midway));
        qInfo("screenshot: %s (%s pending, %s running, %s done)", qPrintable(midway),
              qPrintable(cell(window, SubmissionsModel::Pending)), qPrintable(cell(window, SubmissionsModel::Running)),
              qPrintable(cell(window, SubmissionsModel::Done)));

        // The end: the held tasks released, every task done, the merge job has merged the rest (skipping
        // what was merged already).
        QCOMPARE(QProcess::execute(QStringLiteral("scontrol"), {QStringLiteral("release"), held}), 0);
        QTRY_COMPARE_WITH_TIMEOUT(cell(window, SubmissionsModel::State), QStringLiteral("finished"), 40000);
        QTRY_COMPARE_WITH_TIMEOUT(cell(window, SubmissionsModel::Merged), QStringLiteral("4"), 20000);
        QCOMPARE(cell(window, SubmissionsModel::Done), QStringLiteral("4"));
        QCOMPARE(cell(window, SubmissionsModel::Failed), QStringLiteral("0"));
        QVERIFY2(cell(window, SubmissionsModel::MergeJob).endsWith(QStringLiteral("COMPLETED")),
                 qPrintable(cell(window, SubmissionsModel::MergeJob)));
        QTRY_COMPARE(window.runsModel()->rowCount(), 4);
    }
};

QTEST_MAIN(TestSubmissionsView)
#include "test_submissions_view.moc"

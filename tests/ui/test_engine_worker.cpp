// The engine thread bridge: AppController + EngineWorker run a tiny experiment and report it with
// queued signals (QSignalSpy), samples reach the SampleRing, runs land in the store; cancel during a
// run stores it as cancelled; an invalid experiment fails cleanly; deletes go through the engine thread.
#include "app/gui/app_controller.h"
#include "engine/store/run_store.h"

#include "tests/support/test_support.h"

#include <QSignalSpy>
#include <QtTest>

using namespace lathe;
using namespace lathe::app;

namespace {
// A real but small experiment: 1 epoch on 3,000 images, timing at batch 8.
nlohmann::json tinyExperiment(int epochs = 1, int limit = 3000) {
    return {{"name", "tiny"},
            {"model", {{"zoo", "mlp-784-256-128-10"}}},
            {"dataset", {{"name", "fashion-mnist"}, {"limit", 500}}},
            {"device", "cpu"},
            {"baseline", {{"train", {{"epochs", epochs}, {"batch_size", 64}, {"limit", limit}}}}},
            {"steps", nlohmann::json::array()},
            {"measure", {{"batch_sizes", {8}}, {"warmup", 2}, {"repeats", 20}}},
            {"seed", 7}};
}
} // namespace

class TestEngineWorker : public QObject {
    Q_OBJECT
    QString m_db;

private slots:
    void initTestCase() {
        // Baselines are cached under XDG_CACHE_HOME: keep this suite's cache to itself so it trains.
        qputenv("XDG_CACHE_HOME", QByteArray::fromStdString(test::tempDir() + "/cache"));
        m_db = QString::fromStdString(test::tempDir()) + QStringLiteral("/engine.sqlite");
    }

    void runsAnExperimentAndSignals() {
        LATHE_REQUIRE_FASHION_MNIST();
        AppController controller(m_db);
        QVERIFY2(controller.databaseError().isEmpty(), qPrintable(controller.databaseError()));
        QSignalSpy experimentStarted(&controller, &AppController::experimentStarted);
        QSignalSpy runStarted(&controller, &AppController::runStarted);
        QSignalSpy runFinished(&controller, &AppController::runFinished);
        QSignalSpy progress(&controller, &AppController::progressChanged);
        QSignalSpy log(&controller, &AppController::logMessage);
        QSignalSpy finished(&controller, &AppController::experimentFinished);
        QSignalSpy running(&controller, &AppController::runningChanged);

        QVERIFY(controller.startRun(tinyExperiment()));
        QVERIFY(controller.isRunning());
        QVERIFY(!controller.startRun(tinyExperiment())); // one at a time
        QVERIFY(finished.wait(120000));
        QCOMPARE(finished.at(0).at(0).toBool(), false);
        QVERIFY(finished.at(0).at(1).toString().isEmpty());
        QCOMPARE(experimentStarted.count(), 1);
        QCOMPARE(experimentStarted.at(0).at(1).toInt(), 1);
        QCOMPARE(runStarted.count(), 1);
        QCOMPARE(runFinished.count(), 1);
        const qint64 runId = runFinished.at(0).at(0).toLongLong();
        QCOMPARE(runStarted.at(0).at(0).toLongLong(), runId);
        QCOMPARE(runFinished.at(0).at(1).toString(), QStringLiteral("done"));
        QVERIFY(progress.count() >= 2);
        QVERIFY(progress.last().at(0).toDouble() > 0.9);
        QVERIFY(log.count() >= 1);
        QCOMPARE(running.count(), 2); // true, then false
        QVERIFY(!controller.isRunning());

        // Samples went through the ring (the UI drains it) and into the store.
        std::vector<MetricSample> drained;
        QVERIFY(controller.sampleRing().drain(drained) > 0);
        bool sawLoss = false, sawLatency = false;
        for (const auto& s : drained) {
            QCOMPARE(s.runId, runId);
            sawLoss = sawLoss || s.seriesName() == "loss";
            sawLatency = sawLatency || s.seriesName().substr(0, 7) == "latency";
        }
        QVERIFY(sawLoss);
        QVERIFY(sawLatency);
        RunStore reader(m_db.toStdString(), RunStore::Mode::ReadOnly);
        const auto run = reader.run(runId);
        QVERIFY(run);
        QCOMPARE(QString::fromStdString(run->status), QStringLiteral("done"));
        QVERIFY(run->summary.count("accuracy") == 1 || !run->summary.empty());
        QVERIFY(reader.sampleCount(runId) > 0);
    }

    void cancelDuringARun() {
        LATHE_REQUIRE_FASHION_MNIST();
        AppController controller(m_db);
        QSignalSpy progress(&controller, &AppController::progressChanged);
        QSignalSpy runFinished(&controller, &AppController::runFinished);
        QSignalSpy finished(&controller, &AppController::experimentFinished);
        // Long enough that it is still training when we cancel.
        QVERIFY(controller.startRun(tinyExperiment(50, 60000)));
        QVERIFY(progress.wait(60000));
        QElapsedTimer clock;
        clock.start();
        controller.cancelRun();
        QVERIFY(finished.wait(60000));
        qInfo("cancel took effect after %lld ms", static_cast<long long>(clock.elapsed()));
        QCOMPARE(finished.at(0).at(0).toBool(), true);
        QCOMPARE(runFinished.count(), 1);
        QCOMPARE(runFinished.at(0).at(1).toString(), QStringLiteral("cancelled"));
        RunStore reader(m_db.toStdString(), RunStore::Mode::ReadOnly);
        const auto run = reader.run(runFinished.at(0).at(0).toLongLong());
        QVERIFY(run);
        QCOMPARE(QString::fromStdString(run->status), QStringLiteral("cancelled"));
    }

    void shutdownDuringARunStoresItCancelled() {
        LATHE_REQUIRE_FASHION_MNIST();
        qint64 runId = 0;
        {
            AppController controller(m_db);
            QSignalSpy runStarted(&controller, &AppController::runStarted);
            QVERIFY(controller.startRun(tinyExperiment(50, 60000)));
            QVERIFY(runStarted.wait(60000));
            runId = runStarted.at(0).at(0).toLongLong();
            QElapsedTimer clock;
            clock.start();
            controller.shutdown(); // what closing the window ends with: cancel, quit, wait
            qInfo("shutdown during a run took %lld ms", static_cast<long long>(clock.elapsed()));
            QVERIFY(controller.isShutDown());
            QVERIFY(!controller.startRun(tinyExperiment()));
        }
        RunStore reader(m_db.toStdString(), RunStore::Mode::ReadOnly);
        QCOMPARE(QString::fromStdString(reader.run(runId)->status), QStringLiteral("cancelled"));
    }

    void invalidExperimentFailsCleanly() {
        AppController controller(m_db);
        QSignalSpy finished(&controller, &AppController::experimentFinished);
        QSignalSpy runStarted(&controller, &AppController::runStarted);
        nlohmann::json bad = tinyExperiment();
        bad["baseline"]["train"]["lr"] = "fast";
        QVERIFY(controller.startRun(bad));
        QVERIFY(finished.wait(30000));
        QVERIFY(finished.at(0).at(1).toString().contains(QStringLiteral("/baseline/train/lr")));
        QCOMPARE(runStarted.count(), 0);
        QVERIFY(!controller.isRunning());
    }

    void deletesGoThroughTheEngineThread() {
        LATHE_REQUIRE_FASHION_MNIST();
        AppController controller(m_db);
        std::vector<std::int64_t> ids;
        {
            RunStore reader(m_db.toStdString(), RunStore::Mode::ReadOnly);
            for (const auto& r : reader.listRuns()) ids.push_back(r.id);
        }
        QVERIFY(!ids.empty());
        QSignalSpy deleted(&controller, &AppController::runsDeleted);
        controller.deleteRuns({ids.front()});
        QVERIFY(deleted.wait(10000));
        QCOMPARE(deleted.at(0).at(0).toInt(), 1);
        RunStore reader(m_db.toStdString(), RunStore::Mode::ReadOnly);
        QVERIFY(!reader.run(ids.front()));
    }
};

LATHE_TEST_MAIN(TestEngineWorker)
#include "test_engine_worker.moc"

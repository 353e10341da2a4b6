// A new run database chosen in the settings takes effect at once: the runs table, the run details and
// the engine thread's store all move to the new file, without a restart; a file that cannot be opened
// leaves everything (and the stored setting) on the old one.
#include "app/gui/app_controller.h"
#include "app/gui/main_window.h"
#include "engine/store/run_store.h"
#include "ui/runs/run_details.h"
#include "ui/runs/runs_table_model.h"
#include "ui/settings/app_settings.h"
#include "ui/settings/settings_dialog.h"

#include "tests/support/test_support.h"

#include <QSignalSpy>
#include <QTableWidget>
#include <QtTest>

using namespace lathe;
using namespace lathe::app;
using namespace lathe::ui;

namespace {
std::vector<std::int64_t> makeRuns(const QString& path, const QStringList& names) {
    RunStore store(path.toStdString(), RunStore::Mode::ReadWrite);
    std::vector<std::int64_t> ids;
    for (const QString& name : names) {
        NewRun r;
        r.name = name.toStdString();
        r.model = "mlp-784-256-128-10";
        r.device = "cpu";
        const std::int64_t id = store.createRun(r);
        store.startRun(id);
        store.setSummary(id, {{"accuracy", 0.8}});
        store.finishRun(id, run_status::kDone);
        ids.push_back(id);
    }
    return ids;
}

QStringList tableNames(RunsTableModel* model) {
    QStringList names;
    for (int row = 0; row < model->rowCount(); ++row) names << QString::fromStdString(model->record(row).name);
    names.sort();
    return names;
}
} // namespace

class TestSettingsDatabase : public QObject {
    Q_OBJECT
private slots:
    void initTestCase() {
        const std::string tmp = test::tempDir();
        qputenv("XDG_DATA_HOME", QByteArray::fromStdString(tmp + "/data"));
        qputenv("XDG_CONFIG_HOME", QByteArray::fromStdString(tmp + "/config"));
        QCoreApplication::setOrganizationName(QStringLiteral("LatheTest"));
        QCoreApplication::setApplicationName(QStringLiteral("lathe-settings-test"));
    }

    void newDatabaseTakesEffectAtOnce() {
        const QString dir = QString::fromStdString(test::tempDir());
        const QString first = dir + QStringLiteral("/first.sqlite");
        const QString second = dir + QStringLiteral("/second/runs.sqlite"); // folder created on open
        const auto firstIds = makeRuns(first, {QStringLiteral("alpha")});
        AppSettings::setDatabasePath(first);

        AppController controller(AppSettings::databasePath());
        MainWindow window(&controller);
        QCOMPARE(tableNames(window.runsModel()), QStringList{QStringLiteral("alpha")});
        window.openRun(firstIds.front());
        QCOMPARE(window.runDetails()->runIds().size(), 1);

        // The second database has runs of its own, written by another process (e.g. lathe-cli).
        const auto secondIds = makeRuns(second, {QStringLiteral("beta-1"), QStringLiteral("beta-2")});

        QSignalSpy changed(&controller, &AppController::databaseChanged);
        SettingsDialog dialog(&window);
        QCOMPARE(dialog.databasePath(), first);
        dialog.setDatabasePath(second);
        QCOMPARE(window.applySettings(dialog), QString());

        QCOMPARE(changed.count(), 1);
        QCOMPARE(AppSettings::databasePath(), second);
        QCOMPARE(controller.databasePath(), second);
        QCOMPARE(window.runsModel()->path(), second);
        QCOMPARE(tableNames(window.runsModel()), (QStringList{QStringLiteral("beta-1"), QStringLiteral("beta-2")}));
        QVERIFY(window.runDetails()->runIds().isEmpty()); // nothing of the old file on screen

        // The engine thread writes to the new file too: a delete through it removes a run there.
        QSignalSpy deleted(&controller, &AppController::runsDeleted);
        controller.deleteRuns({secondIds.front()});
        QVERIFY(deleted.wait(10000));
        QCOMPARE(deleted.at(0).at(0).toInt(), 1);
        QTRY_COMPARE(tableNames(window.runsModel()), QStringList{QStringLiteral("beta-2")});
        QCOMPARE(RunStore(first.toStdString(), RunStore::Mode::ReadOnly).listRuns().size(), std::size_t(1));

        // A file that cannot be opened: everything, the stored setting included, stays on the second.
        SettingsDialog bad(&window);
        bad.setDatabasePath(QStringLiteral("/proc/lathe-cannot-write-here/runs.sqlite"));
        QVERIFY(!window.applySettings(bad).isEmpty());
        QCOMPARE(AppSettings::databasePath(), second);
        QCOMPARE(controller.databasePath(), second);
        QCOMPARE(window.runsModel()->path(), second);
        QCOMPARE(tableNames(window.runsModel()), QStringList{QStringLiteral("beta-2")});
    }
};

QTEST_MAIN(TestSettingsDatabase)
#include "test_settings_database.moc"

// RunsTableModel over a temporary run store: QAbstractItemModelTester, columns and icons, filtering
// and sorting through RunsFilterProxy, incremental refresh when another connection adds, finishes
// or deletes runs (as lathe-cli would).
#include "engine/store/run_store.h"
#include "ui/runs/runs_filter_proxy.h"
#include "ui/runs/runs_table_model.h"

#include "tests/support/test_support.h"

#include <QAbstractItemModelTester>
#include <QSignalSpy>
#include <QtTest>

#include <random>

using namespace lathe;
using namespace lathe::ui;

namespace {
std::int64_t addRun(RunStore& store, std::int64_t experiment, const std::string& name, const std::string& status,
                    const std::string& model, const std::string& device, std::vector<std::string> tags, double accuracy,
                    double p50) {
    NewRun r;
    r.experimentId = experiment;
    r.name = name;
    r.model = model;
    r.dataset = "fashion-mnist";
    r.device = device;
    r.strategyChain = "train > finetune > measure";
    r.tags = std::move(tags);
    r.configJson = R"({"name":")" + name + R"("})";
    const std::int64_t id = store.createRun(r);
    if (status != run_status::kQueued) {
        store.startRun(id);
        if (status != run_status::kRunning) {
            store.finishRun(id, status, status == run_status::kFailed ? "boom at /steps/0" : "");
        }
    }
    if (status == run_status::kDone) {
        store.setSummary(id, {{"accuracy", accuracy}, {"latency_p50_ms", p50}, {"throughput_per_s", 1000.0 / p50},
                              {"model_bytes", 1.0e6}});
    }
    return id;
}
} // namespace

class TestRunsTableModel : public QObject {
    Q_OBJECT
    QString m_path;
    std::unique_ptr<RunStore> m_writer;
    std::vector<std::int64_t> m_ids;

private slots:
    void init() {
        static int n = 0;
        m_path = QString::fromStdString(test::tempDir()) + QStringLiteral("/runs%1.sqlite").arg(++n);
        m_writer = std::make_unique<RunStore>(m_path.toStdString());
        const auto exp = m_writer->addExperiment("sweep", "{}");
        std::mt19937 rng(7);
        std::uniform_real_distribution<double> acc(0.80, 0.90), lat(0.05, 2.0);
        const char* statuses[] = {run_status::kDone, run_status::kDone, run_status::kFailed, run_status::kCancelled,
                                  run_status::kDone, run_status::kRunning};
        m_ids.clear();
        for (int i = 0; i < 12; ++i) {
            m_ids.push_back(addRun(*m_writer, exp, "run-" + std::to_string(i), statuses[i % 6],
                                   i % 2 ? "cnn-2conv" : "mlp-784-256-128-10", i % 3 ? "cpu" : "cuda:0",
                                   i % 4 ? std::vector<std::string>{"sweep"} : std::vector<std::string>{"paper", "int8"},
                                   acc(rng), lat(rng)));
        }
    }
    void cleanup() { m_writer.reset(); }

    void modelIsConsistent() {
        RunsTableModel model;
        QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
        QVERIFY2(model.open(m_path), qPrintable(model.lastError()));
        QCOMPARE(model.rowCount(), 12);
        QCOMPARE(model.columnCount(), int(RunsTableModel::ColumnCount));
        RunsFilterProxy proxy;
        QAbstractItemModelTester proxyTester(&proxy, QAbstractItemModelTester::FailureReportingMode::QtTest);
        proxy.setRunsModel(&model);
        proxy.sort(RunsTableModel::Accuracy, Qt::DescendingOrder);
        proxy.setText(QStringLiteral("paper"));
        QCOMPARE(proxy.rowCount(), 3);
        // Another connection (the engine thread, or lathe-cli) adds and finishes runs; delete resets.
        addRun(*m_writer, 0, "from-cli", run_status::kDone, "mlp-784-256-128-10", "cpu", {"cli"}, 0.88, 0.1);
        QVERIFY(model.refresh());
        QCOMPARE(model.rowCount(), 13);
        m_writer->finishRun(m_ids[5], run_status::kDone);
        QVERIFY(model.refresh());
        std::vector<std::int64_t> gone{m_ids[0], m_ids[1]};
        QCOMPARE(m_writer->deleteRuns(gone), 2);
        QVERIFY(model.refresh());
        QCOMPARE(model.rowCount(), 11);
        QVERIFY(!model.refresh()); // nothing changed
    }

    void columnsShowTheRecord() {
        RunsTableModel model;
        QVERIFY(model.open(m_path));
        // Newest first.
        const QModelIndex first = model.index(0, RunsTableModel::Id);
        QCOMPARE(first.data().toLongLong(), m_ids.back());
        const int doneRow = model.rowOfRun(m_ids[0]);
        QCOMPARE(model.index(doneRow, RunsTableModel::Status).data().toString(), QStringLiteral("done"));
        QVERIFY(!model.index(doneRow, RunsTableModel::Status).data(Qt::DecorationRole).value<QIcon>().isNull());
        QCOMPARE(model.index(doneRow, RunsTableModel::Name).data().toString(), QStringLiteral("run-0"));
        QCOMPARE(model.index(doneRow, RunsTableModel::Experiment).data().toString(), QStringLiteral("sweep"));
        QCOMPARE(model.index(doneRow, RunsTableModel::Chain).data().toString(), QStringLiteral("train > finetune > measure"));
        QVERIFY(model.index(doneRow, RunsTableModel::Accuracy).data().toString().startsWith(QStringLiteral("0.8")));
        QVERIFY(!model.index(doneRow, RunsTableModel::Started).data().toString().isEmpty());
        QVERIFY(!model.index(doneRow, RunsTableModel::Duration).data().toString().isEmpty());
        const int failedRow = model.rowOfRun(m_ids[2]);
        QCOMPARE(model.index(failedRow, RunsTableModel::Name).data(Qt::ToolTipRole).toString(), QStringLiteral("boom at /steps/0"));
        QVERIFY(!model.index(failedRow, RunsTableModel::Accuracy).data().isValid()); // no summary
    }

    void filtersCombine_data() {
        QTest::addColumn<QString>("text");
        QTest::addColumn<QString>("status");
        QTest::addColumn<QString>("modelName");
        QTest::addColumn<QString>("device");
        QTest::addColumn<QString>("tag");
        QTest::addColumn<int>("expected");
        QTest::newRow("everything") << "" << "" << "" << "" << "" << 12;
        QTest::newRow("text run-1 matches run-1, run-10, run-11") << "run-1" << "" << "" << "" << "" << 3;
        QTest::newRow("two words must both match") << "run-1 cnn" << "" << "" << "" << "" << 2;
        QTest::newRow("status done") << "" << "done" << "" << "" << "" << 6;
        QTest::newRow("status failed") << "" << "failed" << "" << "" << "" << 2;
        QTest::newRow("model cnn") << "" << "" << "cnn-2conv" << "" << "" << 6;
        QTest::newRow("device cuda:0") << "" << "" << "" << "cuda:0" << "" << 4;
        QTest::newRow("tag int8") << "" << "" << "" << "" << "int8" << 3;
        QTest::newRow("done mlp on cpu") << "" << "done" << "mlp-784-256-128-10" << "cpu" << "" << 2;
    }
    void filtersCombine() {
        QFETCH(QString, text);
        QFETCH(QString, status);
        QFETCH(QString, modelName);
        QFETCH(QString, device);
        QFETCH(QString, tag);
        QFETCH(int, expected);
        RunsTableModel model;
        QVERIFY(model.open(m_path));
        RunsFilterProxy proxy;
        proxy.setRunsModel(&model);
        proxy.setText(text);
        proxy.setStatuses(status.isEmpty() ? QSet<QString>{} : QSet<QString>{status});
        proxy.setModelName(modelName);
        proxy.setDevice(device);
        proxy.setTag(tag);
        QCOMPARE(proxy.rowCount(), expected);
    }

    void sortsByTypedValues() {
        RunsTableModel model;
        QVERIFY(model.open(m_path));
        RunsFilterProxy proxy;
        proxy.setRunsModel(&model);
        proxy.setStatuses({QStringLiteral("done")});
        proxy.sort(RunsTableModel::LatencyP50, Qt::AscendingOrder);
        double previous = -1;
        for (int row = 0; row < proxy.rowCount(); ++row) {
            const double v = proxy.index(row, RunsTableModel::LatencyP50).data(RunsTableModel::SortRole).toDouble();
            QVERIFY(v >= previous);
            previous = v;
        }
        proxy.sort(RunsTableModel::Name, Qt::DescendingOrder);
        QCOMPARE(proxy.index(0, RunsTableModel::Name).data().toString(), QStringLiteral("run-7"));
    }

    void pollingPicksUpOtherWriters() {
        RunsTableModel model;
        QVERIFY(model.open(m_path));
        QSignalSpy inserted(&model, &QAbstractItemModel::rowsInserted);
        model.setPollInterval(50);
        addRun(*m_writer, 0, "late", run_status::kDone, "mlp-784-256-128-10", "cpu", {}, 0.87, 0.2);
        QTRY_COMPARE_WITH_TIMEOUT(model.rowCount(), 13, 5000);
        QCOMPARE(inserted.count(), 1); // an insert at the top, not a reset
        QCOMPARE(model.index(0, RunsTableModel::Name).data().toString(), QStringLiteral("late"));
    }

    void openFailsClearlyWithoutADatabase() {
        RunsTableModel model;
        QVERIFY(!model.open(QString::fromStdString(test::tempDir()) + QStringLiteral("/missing/none.sqlite")));
        QVERIFY(!model.lastError().isEmpty());
        QCOMPARE(model.rowCount(), 0);
    }
};

QTEST_MAIN(TestRunsTableModel)
#include "test_runs_table_model.moc"

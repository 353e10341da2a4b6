// lathe-cli runs, show, compare, export and delete against a store with known content: outputs that
// scripts rely on (JSON, CSV), deltas, atomic export files, and the exit codes of issue 3.
#include "engine/store/run_store.h"
#include "tests/support/test_support.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QtTest>

#include <sqlite3.h>

#include <cmath>
#include <filesystem>

using namespace lathe;

namespace {

struct Result {
    int exitCode = -1;
    QByteArray out, err;
};

Result cli(const QStringList& args) {
    QProcess p;
    p.setStandardInputFile(QProcess::nullDevice()); // not a terminal: delete must insist on --yes
    p.start(LATHE_CLI, args);
    p.waitForFinished(60000);
    return {p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1, p.readAllStandardOutput(),
            p.readAllStandardError()};
}

} // namespace

class TestStoreCli : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void exitCodes_data();
    void exitCodes();
    void runsJsonFilters();
    void showJson();
    void compareDeltas();
    void compareSignificanceAndPareto();
    void exportCsvAndJson();
    void deleteNeedsYes();
    void readCommandsMigrateAnOldDatabase();
    void orphanedRunsShowAsInterrupted();

private:
    QString m_db;
    std::int64_t m_a = 0, m_b = 0, m_c = 0;
    std::int64_t m_samplesA = 0;
};

void TestStoreCli::initTestCase() {
    m_db = QString::fromStdString(test::tempDir() + "/cli.sqlite");
    RunStore store(m_db.toStdString());
    const std::int64_t exp = store.addExperiment("mlp-int8-vs-fp32", R"({"name":"mlp-int8-vs-fp32"})");
    NewRun base;
    base.experimentId = exp;
    base.name = "baseline fp32";
    base.model = "mlp-784-256-128-10";
    base.dataset = "fashion-mnist";
    base.device = "cpu";
    base.strategyChain = "train";
    base.tags = {"baseline"};
    base.configJson = R"({"seed":42})";
    base.environmentJson = R"({"cpu":"test cpu"})";
    m_a = store.createRun(base);
    NewRun q = base;
    q.name = "int8, per-channel";
    q.strategyChain = "train > quantize.int8";
    q.tags = {"int8"};
    q.parentRunId = m_a;
    m_b = store.createRun(q);
    NewRun f = base;
    f.name = "crashed";
    m_c = store.createRun(f);
    for (auto id : {m_a, m_b, m_c}) store.startRun(id);
    store.finishRun(m_a, run_status::kDone);
    store.finishRun(m_b, run_status::kDone);
    store.finishRun(m_c, run_status::kFailed, "BackendError: out of memory");
    store.setSummary(m_a, {{"accuracy", 0.88}, {"latency_p50_ms", 0.5}, {"model_bytes", 1000000}});
    store.setSummary(m_b, {{"accuracy", 0.87}, {"latency_p50_ms", 0.25}, {"model_bytes", 250000}, {"sparsity", 0}});
    std::vector<MetricSample> s;
    for (int i = 0; i < 300; ++i) s.push_back(makeSample(m_a, i % 3 ? "loss" : "latency_ms/b1", i, i * 2.0, std::exp(-i * 0.01)));
    store.appendSamples(s);
    m_samplesA = 300;
    store.appendSamples(std::vector<MetricSample>{makeSample(m_b, "loss", 0, 0, 1.5)});
    store.addLayerStats(m_a, std::vector<LayerStat>{{"fc1", "sparsity", 0.5}, {"fc2", "sparsity", 0.25}});
    store.addArtifact(m_a, {"model", "/cache/baseline.safetensors", std::string(64, 'a')});
}

void TestStoreCli::exitCodes_data() {
    QTest::addColumn<QStringList>("args");
    QTest::addColumn<int>("exitCode");
    QTest::addColumn<QString>("stdoutHas");
    QTest::addColumn<QString>("stderrHas");
    const QString db = m_db;
    const QString missing = QString::fromStdString(test::tempDir() + "/missing/none.sqlite");
    QTest::newRow("runs table") << QStringList{"runs", "--db", db} << 0 << "int8, per-channel" << "";
    QTest::newRow("runs header") << QStringList{"runs", "--db", db} << 0 << "P50 MS" << "";
    QTest::newRow("runs missing db") << QStringList{"runs", "--db", missing} << 0 << "" << "no runs yet";
    QTest::newRow("runs missing db json") << QStringList{"runs", "--db", missing, "--json"} << 0 << "[]" << "";
    QTest::newRow("runs bad status") << QStringList{"runs", "--db", db, "--status", "finished"} << 2 << "" << "finished";
    QTest::newRow("runs bad limit") << QStringList{"runs", "--db", db, "--limit", "ten"} << 2 << "" << "--limit";
    QTest::newRow("runs unknown option") << QStringList{"runs", "--db", db, "--colour"} << 2 << "" << "--colour";
    QTest::newRow("show") << QStringList{"show", "1", "--db", db} << 0 << "baseline fp32" << "";
    QTest::newRow("show unknown") << QStringList{"show", "999", "--db", db} << 2 << "" << "999";
    QTest::newRow("show not a number") << QStringList{"show", "abc", "--db", db} << 2 << "" << "abc";
    QTest::newRow("show no id") << QStringList{"show", "--db", db} << 2 << "" << "RUN_ID";
    QTest::newRow("show missing db") << QStringList{"show", "1", "--db", missing} << 2 << "" << "no database";
    QTest::newRow("compare") << QStringList{"compare", "1", "2", "--db", db} << 0 << "-50.0%" << "";
    QTest::newRow("compare unknown ids") << QStringList{"compare", "1", "998", "997", "--db", db} << 2 << "" << "998, 997";
    QTest::newRow("export bad format") << QStringList{"export", "1", "--format", "xml", "-o", "x", "--db", db} << 2 << ""
                                       << "csv|json";
    QTest::newRow("export no output") << QStringList{"export", "1", "--format", "csv", "--db", db} << 2 << "" << "-o FILE";
    QTest::newRow("export unknown") << QStringList{"export", "42", "--format", "csv", "-o", "-", "--db", db} << 2 << ""
                                    << "42";
    QTest::newRow("export no folder") << QStringList{"export", "1", "--format", "csv", "-o", missing + "/x.csv", "--db", db}
                                      << 2 << "" << "does not exist";
    QTest::newRow("delete unknown") << QStringList{"delete", "4242", "--yes", "--db", db} << 2 << "" << "4242";
    QTest::newRow("bench unknown option") << QStringList{"bench", "store", "--sample", "5"} << 2 << "" << "--sample";
}

void TestStoreCli::exitCodes() {
    QFETCH(QStringList, args);
    QFETCH(int, exitCode);
    QFETCH(QString, stdoutHas);
    QFETCH(QString, stderrHas);
    const Result r = cli(args);
    QVERIFY2(r.exitCode == exitCode, qPrintable(QString("exit %1, stderr: %2").arg(r.exitCode).arg(QString(r.err))));
    QVERIFY2(r.out.contains(stdoutHas.toUtf8()), r.out.constData());
    QVERIFY2(r.err.contains(stderrHas.toUtf8()), r.err.constData());
}

void TestStoreCli::runsJsonFilters() {
    Result r = cli({"runs", "--db", m_db, "--json"});
    QCOMPARE(r.exitCode, 0);
    QJsonArray runs = QJsonDocument::fromJson(r.out).array();
    QCOMPARE(runs.size(), 3);
    QCOMPARE(runs[0].toObject()["id"].toInteger(), m_c); // newest first
    QCOMPARE(runs[2].toObject()["summary"].toObject()["accuracy"].toDouble(), 0.88);
    QCOMPARE(runs[2].toObject()["experiment"].toString(), QString("mlp-int8-vs-fp32"));

    r = cli({"runs", "--db", m_db, "--json", "--status", "done", "--filter", "per-channel"});
    runs = QJsonDocument::fromJson(r.out).array();
    QCOMPARE(runs.size(), 1);
    QCOMPARE(runs[0].toObject()["id"].toInteger(), m_b);
    QCOMPARE(runs[0].toObject()["parent_run_id"].toInteger(), m_a);

    r = cli({"runs", "--db", m_db, "--json", "--tag", "baseline", "--limit", "1"});
    runs = QJsonDocument::fromJson(r.out).array();
    QCOMPARE(runs.size(), 1);
    QCOMPARE(runs[0].toObject()["id"].toInteger(), m_c);
}

void TestStoreCli::showJson() {
    const Result r = cli({"show", QString::number(m_a), "--db", m_db, "--json"});
    QCOMPARE(r.exitCode, 0);
    const QJsonObject o = QJsonDocument::fromJson(r.out).object();
    QCOMPARE(o["status"].toString(), QString("done"));
    QCOMPARE(o["config"].toObject()["seed"].toInt(), 42);
    QCOMPARE(o["environment"].toObject()["cpu"].toString(), QString("test cpu"));
    const QJsonArray series = o["series"].toArray();
    QCOMPARE(series.size(), 2);
    qint64 total = 0;
    for (const auto& s : series) total += s.toObject()["samples"].toInteger();
    QCOMPARE(total, m_samplesA);
    QCOMPARE(o["layer_stats"].toArray().size(), 2);
    QCOMPARE(o["artifacts"].toArray()[0].toObject()["kind"].toString(), QString("model"));
    QVERIFY(o["duration_s"].toDouble() >= 0);
}

void TestStoreCli::compareDeltas() {
    const Result r = cli({"compare", QString::number(m_a), QString::number(m_b), "--db", m_db, "--json"});
    QCOMPARE(r.exitCode, 0);
    const QJsonObject o = QJsonDocument::fromJson(r.out).object();
    QCOMPARE(o["baseline_run_id"].toInteger(), m_a);
    const QJsonArray metrics = o["metrics"].toArray();
    // Shared vocabulary order first: accuracy, latency_p50_ms, model_bytes, sparsity.
    QStringList keys;
    for (const auto& m : metrics) keys << m.toObject()["key"].toString();
    QCOMPARE(keys, (QStringList{"accuracy", "latency_p50_ms", "model_bytes", "sparsity"}));
    const QJsonObject latency = metrics[1].toObject();
    QCOMPARE(latency["values"].toArray()[1].toDouble(), 0.25);
    QCOMPARE(latency["delta"].toArray()[1].toDouble(), -0.25);
    QCOMPARE(latency["delta_pct"].toArray()[1].toDouble(), -50.0);
    QVERIFY(latency["delta"].toArray()[0].isNull());
    const QJsonObject accuracy = metrics[0].toObject();
    QVERIFY(std::fabs(accuracy["delta"].toArray()[1].toDouble() - (0.87 - 0.88)) < 1e-12);
    const QJsonObject sparsity = metrics[3].toObject();
    QVERIFY(sparsity["values"].toArray()[0].isNull()); // the base run has none
    QVERIFY(sparsity["delta"].toArray()[1].isNull());
}

void TestStoreCli::compareSignificanceAndPareto() {
    // Three runs timed at batch 1 and 4: "fast" 20% below the base, "same" the base's very samples in
    // reverse order (a difference of exactly zero), "slow and accurate" 30% above it.
    const QString db = QString::fromStdString(test::tempDir() + "/cli-significance.sqlite");
    std::int64_t base = 0, fast = 0, same = 0, slow = 0;
    {
        RunStore store(db.toStdString());
        auto add = [&](const std::string& name, double scale, bool reversed, double accuracy) {
            NewRun r;
            r.name = name;
            r.model = "mlp-784-256-128-10";
            r.dataset = "fashion-mnist";
            r.device = "cpu";
            const std::int64_t id = store.createRun(r);
            store.startRun(id);
            store.finishRun(id, run_status::kDone);
            std::vector<MetricSample> samples;
            for (std::int64_t b : {1, 4}) {
                for (int i = 0; i < 60; ++i) {
                    const int k = reversed ? 59 - i : i;
                    const double ms = scale * double(b) * (1.0 + 0.05 * std::sin(k * 1.7)); // +-5%
                    samples.push_back(makeSample(id, "latency_ms/b" + std::to_string(b), i, i, ms));
                }
            }
            samples.push_back(makeSample(id, "before/latency_ms/b1", 0, 0, 100.0)); // a measure step's: ignored
            store.appendSamples(samples);
            store.setSummary(id, {{"accuracy", accuracy}, {"latency_p50_ms", scale}, {"batch_size", 1}});
            return id;
        };
        base = add("base", 1.0, false, 0.88);
        fast = add("fast", 0.8, false, 0.86);
        same = add("same", 1.0, true, 0.85);
        slow = add("slow and accurate", 1.3, false, 0.89);
    }
    const QStringList ids{QString::number(base), QString::number(fast), QString::number(same), QString::number(slow)};
    Result r = cli(QStringList{"compare"} + ids + QStringList{"--db", db, "--pareto", "accuracy,latency_p50_ms", "--json"});
    QCOMPARE(r.exitCode, 0);
    const QJsonObject o = QJsonDocument::fromJson(r.out).object();
    const QJsonArray diffs = o["latency_differences"].toArray();
    QCOMPARE(diffs.size(), 6); // three runs, two batch sizes each
    for (const auto& v : diffs) {
        const QJsonObject d = v.toObject();
        const std::int64_t id = d["run_id"].toInteger();
        QCOMPARE(d["baseline_run_id"].toInteger(), base);
        QCOMPARE(d["samples"].toArray()[0].toInt(), 60);
        const double rel = d["delta_rel"].toDouble();
        if (id == fast) {
            QVERIFY(d["significant"].toBool());
            QVERIFY(std::fabs(rel + 0.2) < 1e-9);
            QVERIFY(d["ci_high_ms"].toDouble() < 0);
            QVERIFY(d["p_value"].toDouble() < 1e-6);
        } else if (id == same) {
            QVERIFY(!d["significant"].toBool());
            QCOMPARE(d["delta_ms"].toDouble(), 0.0);
            QVERIFY(d["ci_low_ms"].toDouble() <= 0 && d["ci_high_ms"].toDouble() >= 0);
            QVERIFY(d["p_value"].toDouble() > 0.9);
        } else {
            QCOMPARE(id, slow);
            QVERIFY(d["significant"].toBool() && d["ci_low_ms"].toDouble() > 0);
        }
    }
    const QJsonObject pareto = o["pareto"].toObject();
    QCOMPARE(pareto["front"].toArray(), (QJsonArray{qint64(base), qint64(fast), qint64(slow)}));
    QCOMPARE(pareto["dominated"].toArray(), (QJsonArray{qint64(same)}));

    r = cli(QStringList{"compare"} + ids + QStringList{"--db", db, "--pareto", "accuracy,latency_p50_ms"});
    QCOMPARE(r.exitCode, 0);
    QVERIFY2(r.out.contains("@b4: -0.") && r.out.contains(" ms (-20.0%), CI [") && r.out.contains(": not significant") &&
                 r.out.contains("Pareto front of accuracy (higher), latency_p50_ms (lower): #" + QByteArray::number(base)),
             r.out.constData());
    r = cli(QStringList{"compare"} + ids + QStringList{"--db", db, "--pareto", "accuracy,batch_size"});
    QCOMPARE(r.exitCode, 2);
    QVERIFY(r.err.contains("batch_size has no direction"));
}

void TestStoreCli::exportCsvAndJson() {
    const QString dir = QString::fromStdString(test::tempDir());
    const QString csv = dir + "/samples.csv";
    Result r = cli({"export", QString::number(m_a), QString::number(m_b), "--format", "csv", "-o", csv, "--db", m_db});
    QVERIFY2(r.exitCode == 0, r.err.constData());
    QFile f(csv);
    QVERIFY(f.open(QIODevice::ReadOnly));
    const QList<QByteArray> lines = f.readAll().split('\n');
    QCOMPARE(lines[0], QByteArray("run_id,run_name,series,step,t_ms,value"));
    QCOMPARE(lines.size(), static_cast<qsizetype>(1 + m_samplesA + 1 + 1)); // header, samples of a and b, final newline
    QVERIFY(lines.last().isEmpty());
    QVERIFY(lines.contains(QByteArray::number(m_b) + ",\"int8, per-channel\",loss,0,0,1.5"));
    // Nothing left behind by the atomic write.
    QCOMPARE(QDir(dir).entryList({"samples.csv.tmp-*"}).size(), 0);

    const QString summary = dir + "/summary.csv";
    r = cli({"export", QString::number(m_a), QString::number(m_b), "--format", "csv", "--table", "summary", "-o", summary,
             "--db", m_db});
    QCOMPARE(r.exitCode, 0);
    QFile s(summary);
    QVERIFY(s.open(QIODevice::ReadOnly));
    const QList<QByteArray> rows = s.readAll().trimmed().split('\n');
    QCOMPARE(rows.size(), 3);
    QCOMPARE(rows[0], QByteArray("run_id,run_name,status,model,dataset,device,strategy_chain,accuracy,latency_p50_ms,"
                                 "model_bytes,sparsity"));
    QVERIFY(rows[1].endsWith(",0.88000000000000000,0.5,1000000,") || rows[1].contains(",0.88"));

    const QString json = dir + "/runs.json";
    r = cli({"export", QString::number(m_a), "--format", "json", "-o", json, "--db", m_db});
    QCOMPARE(r.exitCode, 0);
    QFile j(json);
    QVERIFY(j.open(QIODevice::ReadOnly));
    const QJsonObject doc = QJsonDocument::fromJson(j.readAll()).object();
    const QJsonObject run = doc["runs"].toArray()[0].toObject();
    QCOMPARE(run["id"].toInteger(), m_a);
    QCOMPARE(run["config"].toObject()["seed"].toInt(), 42);
    qint64 samples = 0;
    for (const auto& series : run["samples"].toArray()) {
        const QJsonObject so = series.toObject();
        QCOMPARE(so["step"].toArray().size(), so["value"].toArray().size());
        QCOMPARE(so["t_ms"].toArray().size(), so["value"].toArray().size());
        samples += so["value"].toArray().size();
        if (so["series"].toString() == "loss") QCOMPARE(so["value"].toArray()[0].toDouble(), std::exp(-0.01));
    }
    QCOMPARE(samples, m_samplesA);
}

void TestStoreCli::deleteNeedsYes() {
    Result r = cli({"delete", QString::number(m_c), "--db", m_db});
    QCOMPARE(r.exitCode, 2);
    QVERIFY(r.err.contains("--yes"));
    QCOMPARE(cli({"show", QString::number(m_c), "--db", m_db}).exitCode, 0); // still there

    r = cli({"delete", QString::number(m_c), "--yes", "--db", m_db});
    QVERIFY2(r.exitCode == 0, r.err.constData());
    QVERIFY(r.out.contains("deleted 1 run"));
    QCOMPARE(cli({"show", QString::number(m_c), "--db", m_db}).exitCode, 2);
    QCOMPARE(RunStore(m_db.toStdString(), RunStore::Mode::ReadOnly).listRuns().size(), std::size_t(2));
}

void TestStoreCli::readCommandsMigrateAnOldDatabase() {
    const std::string path = test::tempDir() + "/v1.sqlite";
    sqlite3* db = nullptr;
    QCOMPARE(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    const std::string sql = RunStore::schemaScript(1) +
                            "INSERT INTO runs(id, name, status, model, created_at) VALUES (7, 'from v1', 'done', 'mlp', 1.7e9);"
                            "INSERT INTO summaries VALUES (7, 'accuracy', 0.75);";
    QCOMPARE(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
    const Result r = cli({"runs", "--db", QString::fromStdString(path), "--json"});
    QVERIFY2(r.exitCode == 0, r.err.constData());
    const QJsonArray runs = QJsonDocument::fromJson(r.out).array();
    QCOMPARE(runs.size(), 1);
    QCOMPARE(runs[0].toObject()["name"].toString(), QString("from v1"));
    QCOMPARE(runs[0].toObject()["summary"].toObject()["accuracy"].toDouble(), 0.75);
    QCOMPARE(RunStore(path, RunStore::Mode::ReadOnly).schemaVersion(), RunStore::currentSchemaVersion());
}

// Issue "The first milestone, trustworthy for a new user": a run whose process died showed as
// `running` forever in `lathe-cli runs` until something opened the store for writing.
void TestStoreCli::orphanedRunsShowAsInterrupted() {
    // A pid nobody has: a child that has exited and been reaped.
    QProcess child;
    child.start("true", {});
    QVERIFY(child.waitForStarted());
    const qint64 deadPid = child.processId();
    QVERIFY(child.waitForFinished());
    QVERIFY(deadPid > 0);

    const std::string path = test::tempDir() + "/orphans.sqlite";
    std::int64_t orphan = 0, alive = 0, done = 0;
    {
        RunStore store(path);
        NewRun r;
        r.experimentId = store.addExperiment("orphans", R"({"name":"orphans"})");
        r.model = "mlp-784-256-128-10";
        r.device = "cpu";
        r.name = "left running";
        orphan = store.createRun(r);
        r.name = "still running"; // owned by this test process, which is alive
        alive = store.createRun(r);
        r.name = "finished";
        done = store.createRun(r);
        for (auto id : {orphan, alive, done}) store.startRun(id);
        store.finishRun(done, run_status::kDone);
    }
    {
        sqlite3* db = nullptr;
        QCOMPARE(sqlite3_open(path.c_str(), &db), SQLITE_OK);
        const std::string sql = "UPDATE runs SET owner_pid = " + std::to_string(deadPid) + " WHERE id = " + std::to_string(orphan);
        QCOMPARE(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
        sqlite3_close(db);
    }
    const QString db = QString::fromStdString(path);
    auto statuses = [&](const QStringList& extra) {
        const Result r = cli(QStringList{"runs", "--db", db, "--json"} + extra);
        std::map<std::int64_t, QString> out;
        for (const auto& v : QJsonDocument::fromJson(r.out).array())
            out[v.toObject()["id"].toInteger()] = v.toObject()["status"].toString();
        return out;
    };
    using Statuses = std::map<std::int64_t, QString>;
    QCOMPARE(statuses({}), (Statuses{{orphan, "interrupted"}, {alive, "running"}, {done, "done"}}));
    // Filters apply to the status shown.
    QCOMPARE(statuses({"--status", "interrupted"}), (Statuses{{orphan, "interrupted"}}));
    QCOMPARE(statuses({"--status", "running"}), (Statuses{{alive, "running"}}));
    QCOMPARE(statuses({"--status", "interrupted,done", "--limit", "1"}).size(), std::size_t(1));

    const Result json = cli({"runs", "--db", db, "--json", "--status", "interrupted"});
    const QString error = QJsonDocument::fromJson(json.out).array().at(0).toObject()["error"].toString();
    QVERIFY2(error.contains(QString("pid %1").arg(deadPid)), qPrintable(error));
    const Result table = cli({"runs", "--db", db});
    QCOMPARE(table.exitCode, 0);
    QVERIFY2(table.out.contains("interrupted"), table.out.constData());
    const Result show = cli({"show", QString::number(orphan), "--db", db});
    QVERIFY2(show.out.startsWith(QByteArray("run ") + QByteArray::number(orphan) + "  interrupted"), show.out.constData());

    // Reading wrote nothing: the stored status is unchanged until a writer recovers the run.
    RunStore reader(path, RunStore::Mode::ReadOnly);
    QCOMPARE(reader.run(orphan)->status, std::string(run_status::kRunning));
    QCOMPARE(reader.run(alive)->status, std::string(run_status::kRunning));
}

QTEST_GUILESS_MAIN(TestStoreCli)
#include "test_store_cli.moc"

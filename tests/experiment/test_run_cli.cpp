// `lathe-cli validate` and `lathe-cli run` as a user meets them: exit codes 0/1/2/130, every issue on
// stderr, JSON Lines on stdout with --json, and Ctrl-C (SIGINT) stored as a cancelled run.
#include "engine/store/run_store.h"
#include "tests/support/test_support.h"

#include <QProcess>
#include <QtTest>

#include <nlohmann/json.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>

using json = nlohmann::json;

namespace {

struct Result {
    int code = -1;
    QString out, err;
};

Result runCli(const QStringList& args, int timeoutMs = 240000) {
    QProcess p;
    p.start(LATHE_CLI, args);
    if (!p.waitForFinished(timeoutMs)) {
        p.kill();
        p.waitForFinished();
        return {};
    }
    return {p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1, QString::fromUtf8(p.readAllStandardOutput()),
            QString::fromUtf8(p.readAllStandardError())};
}

std::string writeFile(const std::string& name, const std::string& text) {
    const std::string path = lathe::test::tempDir() + "/" + name;
    std::ofstream(path) << text;
    return path;
}

const char* kTiny = R"({
  "name": "cli-tiny",
  "description": "tiny run for the CLI test",
  "model": {"zoo": "mlp-784-256-128-10"},
  "dataset": {"name": "fashion-mnist", "limit": 100},
  "device": "cpu",
  "baseline": {"train": {"epochs": 1, "batch_size": 50, "limit": 200}},
  "measure": {"batch_sizes": [2], "warmup": 1, "repeats": 5},
  "sweep": {"seed": [1, 2]}
})";

} // namespace

class TestRunCli : public QObject {
    Q_OBJECT

private slots:
    // Functions that run an experiment need Fashion-MNIST and skip without it; validation does not.
    void initTestCase() {
        m_db = lathe::test::tempDir() + "/cli.sqlite";
        m_cache = lathe::test::tempDir() + "/cache";
    }

    void validateGood() {
        const Result r = runCli({"validate", QString::fromStdString(lathe::test::sourcePath("experiments/mlp-lr-sweep.json"))});
        QCOMPARE(r.code, 0);
        QCOMPARE(r.out, QString("ok: 3 plan(s)\n"));
    }

    void validateBadListsEveryIssue() {
        const std::string path = lathe::test::sourcePath("tests/data/experiments/many_errors.json");
        const Result r = runCli({"validate", QString::fromStdString(path)});
        QCOMPARE(r.code, 2);
        QVERIFY(r.out.isEmpty());
        QCOMPARE(r.err.count('\n'), 5);
        QVERIFY(r.err.contains(QString::fromStdString(path + ": /nme: unknown key \"nme\" (did you mean \"name\"?)")));
    }

    void runRejectsBadInputBeforeStoringAnything() {
        const Result r = runCli({"run", QString::fromStdString(lathe::test::sourcePath("tests/data/experiments/out_of_range.json")),
                                 "--db", QString::fromStdString(m_db)});
        QCOMPARE(r.code, 2);
        QVERIFY(r.err.contains("/baseline/train/epochs: expected an integer in [1, 1000], got 0"));
        const Result d = runCli({"run", QString::fromStdString(writeFile("tiny.json", kTiny)), "--device", "gpu",
                                 "--db", QString::fromStdString(m_db)});
        QCOMPARE(d.code, 2);
        QVERIFY(!std::filesystem::exists(m_db));
    }

    void runJsonLines() {
        LATHE_REQUIRE_FASHION_MNIST();
        const Result r = runCli({"run", QString::fromStdString(writeFile("tiny.json", kTiny)), "--json", "--db",
                                 QString::fromStdString(m_db), "--cache-dir", QString::fromStdString(m_cache)});
        QVERIFY2(r.code == 0, qPrintable(r.err));
        const QStringList lines = r.out.split('\n', Qt::SkipEmptyParts);
        QCOMPARE(lines.size(), 2); // one object per plan of the sweep
        for (const QString& line : lines) {
            const json j = json::parse(line.toStdString());
            QCOMPARE(j["status"].get<std::string>(), std::string("done"));
            QVERIFY(j["run_id"].get<std::int64_t>() > 0);
            for (const char* key : {"accuracy", "latency_p50_ms", "throughput_per_s", "model_bytes", "params"})
                QVERIFY2(j["summary"].contains(key), key);
        }
        // Progress lines are for terminals only; piped stderr carries the log.
        QVERIFY(!r.err.contains('\r'));
        lathe::RunStore store(m_db, lathe::RunStore::Mode::ReadOnly);
        QCOMPARE(store.listRuns().size(), std::size_t(2));
    }

    void failedRunExitsOne() {
        LATHE_REQUIRE_FASHION_MNIST();
        const std::string model = writeFile("garbage.safetensors", "this is not a safetensors file");
        const std::string path = writeFile("broken.json", R"({"name": "broken", "model": {"zoo": "mlp-784-256-128-10"},
            "dataset": {"limit": 50}, "device": "cpu", "baseline": {"model": "garbage.safetensors"},
            "measure": {"batch_sizes": [1], "repeats": 2, "warmup": 0}})");
        const Result r = runCli({"run", QString::fromStdString(path), "--json", "--db", QString::fromStdString(m_db)});
        QCOMPARE(r.code, 1);
        const json j = json::parse(r.out.trimmed().toStdString());
        QCOMPARE(j["status"].get<std::string>(), std::string("failed"));
        QVERIFY2(j["error"].get<std::string>().find("garbage.safetensors") != std::string::npos, r.out.toUtf8().constData());
    }

    void interruptCancelsCleanly() {
        LATHE_REQUIRE_FASHION_MNIST();
        // A baseline that takes a while (not cached), interrupted once it is training.
        const std::string path = writeFile("long.json", R"({"name": "long", "model": {"zoo": "mlp-784-256-128-10"},
            "device": "cpu", "baseline": {"train": {"epochs": 3, "batch_size": 64}}, "sweep": {"seed": [5, 6]}})");
        QProcess p;
        p.start(LATHE_CLI, {"run", QString::fromStdString(path), "--json", "--db", QString::fromStdString(m_db),
                            "--cache-dir", QString::fromStdString(m_cache)});
        QVERIFY(p.waitForStarted());
        QByteArray err;
        QElapsedTimer timer;
        timer.start();
        while (!err.contains("training the baseline") && timer.elapsed() < 120000) {
            p.waitForReadyRead(200);
            err += p.readAllStandardError();
        }
        QVERIFY2(err.contains("training the baseline"), err.constData());
        QTest::qWait(300);
        ::kill(static_cast<pid_t>(p.processId()), SIGINT);
        QVERIFY(p.waitForFinished(60000));
        QCOMPARE(p.exitCode(), 130);
        const json j = json::parse(p.readAllStandardOutput().trimmed().toStdString());
        QCOMPARE(j["status"].get<std::string>(), std::string("cancelled"));
        lathe::RunStore store(m_db, lathe::RunStore::Mode::ReadOnly);
        const auto rec = store.run(j["run_id"].get<std::int64_t>());
        QVERIFY(rec);
        QCOMPARE(rec->status, std::string("cancelled"));
        // The second plan of the sweep was never started.
        lathe::RunFilter filter;
        filter.text = "long";
        QCOMPARE(store.listRuns(filter).size(), std::size_t(1));
    }

private:
    std::string m_db, m_cache;
};

LATHE_TEST_GUILESS_MAIN(TestRunCli)
#include "test_run_cli.moc"

// RunStore: schema from an empty file, migrations from every older schema (built from the historical
// DDL kept in the engine), CRUD and filters, sample/summary round trips, cascading deletes, recovery
// of interrupted runs, read-only access, clear errors, and a disk that fills up mid-run.
#include "engine/core/errors.h"
#include "engine/core/rng.h"
#include "engine/store/run_store.h"
#include "tests/support/test_support.h"

#include <QtTest>

#include <sqlite3.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace lathe;

namespace {

std::string freshPath(const std::string& name) {
    static int counter = 0;
    const std::string dir = test::tempDir() + "/" + std::to_string(++counter);
    std::filesystem::create_directories(dir);
    return dir + "/" + name;
}

// A raw connection for checks the RunStore API does not expose (and for building old schemas).
class RawDb {
public:
    explicit RawDb(const std::string& path) {
        if (sqlite3_open(path.c_str(), &m_db) != SQLITE_OK) qFatal("cannot open %s", path.c_str());
        sqlite3_busy_timeout(m_db, 10000);
    }
    ~RawDb() { sqlite3_close(m_db); }
    void exec(const std::string& sql) {
        char* err = nullptr;
        if (sqlite3_exec(m_db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
            const std::string msg = err ? err : "?";
            sqlite3_free(err);
            qFatal("sql failed: %s: %s", msg.c_str(), sql.substr(0, 200).c_str());
        }
    }
    std::vector<std::vector<std::string>> query(const std::string& sql) {
        sqlite3_stmt* st = nullptr;
        if (sqlite3_prepare_v2(m_db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
            qFatal("prepare failed: %s: %s", sqlite3_errmsg(m_db), sql.c_str());
        std::vector<std::vector<std::string>> rows;
        while (sqlite3_step(st) == SQLITE_ROW) {
            std::vector<std::string> row;
            for (int c = 0; c < sqlite3_column_count(st); ++c) {
                const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(st, c));
                row.push_back(t ? t : "NULL");
            }
            rows.push_back(row);
        }
        sqlite3_finalize(st);
        return rows;
    }
    std::string scalar(const std::string& sql) {
        auto rows = query(sql);
        return rows.empty() || rows[0].empty() ? "" : rows[0][0];
    }
    long long count(const std::string& sql) { return std::stoll(scalar(sql)); }

private:
    sqlite3* m_db = nullptr;
};

std::set<std::string> schemaObjects(const std::string& path) {
    RawDb db(path);
    std::set<std::string> out;
    for (const auto& row : db.query("SELECT type || ' ' || name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"))
        out.insert(row[0]);
    for (const char* table : {"experiments", "runs", "summaries", "samples", "layer_stats", "artifacts"})
        for (const auto& row : db.query(std::string("SELECT name || ':' || type || ':' || \"notnull\" FROM pragma_table_info('") +
                                        table + "')"))
            out.insert(std::string(table) + "." + row[0]);
    return out;
}

NewRun makeRun(std::int64_t experiment, const std::string& name, const std::string& model, const std::string& device,
               const std::string& chain, std::vector<std::string> tags) {
    NewRun r;
    r.experimentId = experiment;
    r.name = name;
    r.model = model;
    r.dataset = "fashion-mnist";
    r.device = device;
    r.strategyChain = chain;
    r.tags = std::move(tags);
    r.configJson = R"({"seed":42,"name":")" + name + R"("})";
    r.environmentJson = R"({"host":"test"})";
    return r;
}

// The pid of a process that has certainly exited (and been reaped).
pid_t deadPid() {
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return pid;
}

} // namespace

class TestRunStore : public QObject {
    Q_OBJECT

private slots:
    void schemaFromEmptyFile();
    void schemaFromZeroByteFile();
    void migrationFromOlderSchema_data();
    void migrationFromOlderSchema();
    void readOnlyRefusesOldSchemaAndWrites();
    void newerSchemaIsRefused();
    void openForReadingMigratesOnce();
    void filters_data();
    void filters();
    void runRoundTrip();
    void samplesRoundTrip();
    void summariesLayerStatsArtifacts();
    void deleteCascades();
    void changeCounterMoves();
    void recoverInterruptedOnlyDeadOwners();
    void readOnlyWhileWriting();
    void sampleWriterBatches();
    void errorsNameThePath();
    void defaultPathFollowsXdg();
    void diskFullIsClearAndEarlierRunsSurvive();

private:
    std::string m_filterDb;
    std::vector<std::int64_t> m_filterIds;
};

void TestRunStore::schemaFromEmptyFile() {
    const std::string path = freshPath("runs.sqlite");
    {
        RunStore store(path);
        QCOMPARE(store.schemaVersion(), RunStore::currentSchemaVersion());
        QCOMPARE(store.integrityCheck(), std::string("ok"));
    }
    RawDb db(path);
    QCOMPARE(db.scalar("PRAGMA journal_mode"), std::string("wal"));
    for (const char* table : {"schema_version", "experiments", "runs", "summaries", "samples", "layer_stats", "artifacts"})
        QVERIFY2(db.count(std::string("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='") + table + "'") == 1,
                 table);
    // Every version is recorded, in order.
    QCOMPARE(db.count("SELECT count(*) FROM schema_version"), static_cast<long long>(RunStore::currentSchemaVersion()));
    QCOMPARE(db.count("SELECT max(version) FROM schema_version"), static_cast<long long>(RunStore::currentSchemaVersion()));
    // Listing and per-run sample reads are indexed.
    const auto plan = db.query("EXPLAIN QUERY PLAN SELECT * FROM samples WHERE run_id = 3");
    QVERIFY(!plan.empty() && plan[0].back().find("idx_samples_run") != std::string::npos);
    QCOMPARE(db.count("SELECT count(*) FROM sqlite_master WHERE type='index' AND name='idx_runs_status'"), 1LL);
}

void TestRunStore::schemaFromZeroByteFile() {
    const std::string path = freshPath("empty.sqlite");
    { std::ofstream(path).flush(); }
    QCOMPARE(std::filesystem::file_size(path), std::uintmax_t(0));
    RunStore store(path);
    QCOMPARE(store.schemaVersion(), RunStore::currentSchemaVersion());
    QVERIFY(store.listRuns().empty());
}

void TestRunStore::migrationFromOlderSchema_data() {
    QTest::addColumn<int>("fromVersion");
    for (int v = 1; v < RunStore::currentSchemaVersion(); ++v)
        QTest::addRow("v%d", v) << v;
}

void TestRunStore::migrationFromOlderSchema() {
    QFETCH(int, fromVersion);
    const std::string path = freshPath("old.sqlite");
    Rng rng(100 + fromVersion);
    std::vector<double> values;
    {
        // A database exactly as a Lathe of that schema version wrote it, with data in every table.
        RawDb db(path);
        db.exec("PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON");
        for (int v = 1; v <= fromVersion; ++v) db.exec(RunStore::schemaScript(v));
        db.exec("INSERT INTO experiments(id, name, spec_json, created_at) VALUES (1, 'old-exp', '{\"name\":\"old-exp\"}', 1.7e9)");
        db.exec("INSERT INTO runs(id, experiment_id, name, status, model, dataset, device, strategy_chain, tags, created_at, "
                "started_at, finished_at, config_json, environment_json, error) VALUES "
                "(1, 1, 'old-run', 'done', 'mlp-784', 'fashion-mnist', 'cpu', 'train > quantize.int8', '[\"legacy\"]', "
                "1.7e9, 1.7e9 + 1, 1.7e9 + 61, '{\"seed\":7}', '{\"cpu\":\"x\"}', ''),"
                "(2, 1, 'crashed', 'running', 'mlp-784', 'fashion-mnist', 'cpu', 'train', '[]', 1.7e9, 1.7e9 + 2, NULL, "
                "'{}', '{}', '')");
        db.exec("INSERT INTO summaries VALUES (1, 'accuracy', 0.875), (1, 'latency_p50_ms', 0.25)");
        for (int i = 0; i < 500; ++i) {
            const double v = rng.uniform(-5, 5);
            values.push_back(v);
            db.exec("INSERT INTO samples VALUES (1, 'loss', " + std::to_string(i) + ", " + std::to_string(i * 2.5) + ", " +
                    QByteArray::number(v, 'g', 17).toStdString() + ")");
        }
        db.exec("INSERT INTO layer_stats VALUES (1, 'fc1', 'sparsity', 0.5), (1, 'fc2', 'sparsity', 0.25)");
        db.exec("INSERT INTO artifacts(run_id, kind, path, sha256) VALUES (1, 'model', '/tmp/m.safetensors', 'abc')");
        QCOMPARE(db.count("SELECT max(version) FROM schema_version"), static_cast<long long>(fromVersion));
    }
    const auto before = std::filesystem::file_size(path);
    QVERIFY(before > 0);

    RunStore store(path);
    QCOMPARE(store.schemaVersion(), RunStore::currentSchemaVersion());
    QCOMPARE(store.integrityCheck(), std::string("ok"));
    auto run = store.run(1);
    QVERIFY(run.has_value());
    QCOMPARE(run->name, std::string("old-run"));
    QCOMPARE(run->experimentName, std::string("old-exp"));
    QCOMPARE(run->status, std::string("done"));
    QCOMPARE(run->strategyChain, std::string("train > quantize.int8"));
    QCOMPARE(run->tags, std::vector<std::string>{"legacy"});
    QCOMPARE(run->configJson, std::string("{\"seed\":7}"));
    QCOMPARE(run->finishedAt - run->startedAt, 60.0);
    QCOMPARE(run->summary.at("accuracy"), 0.875);
    QCOMPARE(run->ownerPid, std::int64_t(0)); // unknown before schema v2
    const auto samples = store.samples(1, "loss");
    QCOMPARE(samples.size(), values.size());
    for (std::size_t i = 0; i < samples.size(); ++i) {
        QCOMPARE(samples[i].step, static_cast<std::int64_t>(i));
        QCOMPARE(samples[i].value, values[i]);
    }
    QCOMPARE(store.layerStats(1).size(), std::size_t(2));
    QCOMPARE(store.artifacts(1).front().sha256, std::string("abc"));
    QCOMPARE(*store.experimentSpec(1), std::string("{\"name\":\"old-exp\"}"));

    // The migrated schema is the one a fresh file gets: same tables, columns and indexes.
    const std::string freshFile = freshPath("fresh.sqlite");
    { RunStore fresh(freshFile); }
    QCOMPARE(schemaObjects(path), schemaObjects(freshFile));

    // A run left running before owners were recorded is recovered; new writes work.
    if (fromVersion < 2) QCOMPARE(store.recoverInterrupted(), 1);
    const std::int64_t id = store.createRun(makeRun(1, "after-migration", "m", "cpu", "train", {}));
    QVERIFY(id > 2);
    QCOMPARE(store.listRuns().size(), std::size_t(3));
    RawDb raw(path);
    QCOMPARE(raw.count("SELECT count(*) FROM pragma_foreign_key_check"), 0LL);
}

void TestRunStore::readOnlyRefusesOldSchemaAndWrites() {
    const std::string oldPath = freshPath("v1.sqlite");
    {
        RawDb db(oldPath);
        db.exec(RunStore::schemaScript(1));
    }
    try {
        RunStore ro(oldPath, RunStore::Mode::ReadOnly);
        QFAIL("read-only open of an old schema must fail");
    } catch (const StoreError& e) {
        const std::string msg = e.what();
        QVERIFY2(msg.find(oldPath) != std::string::npos && msg.find("migrate") != std::string::npos, e.what());
    }
    QCOMPARE(RawDb(oldPath).count("SELECT max(version) FROM schema_version"), 1LL); // untouched

    const std::string path = freshPath("ro.sqlite");
    { RunStore rw(path); }
    RunStore ro(path, RunStore::Mode::ReadOnly);
    QVERIFY_THROWS_EXCEPTION(StoreError, ro.createRun(makeRun(0, "x", "m", "cpu", "", {})));
    QVERIFY_THROWS_EXCEPTION(StoreError, RunStore(freshPath("missing.sqlite"), RunStore::Mode::ReadOnly));
}

void TestRunStore::newerSchemaIsRefused() {
    const std::string path = freshPath("newer.sqlite");
    { RunStore store(path); }
    RawDb(path).exec("INSERT INTO schema_version VALUES (99, 0)");
    for (auto mode : {RunStore::Mode::ReadWrite, RunStore::Mode::ReadOnly}) {
        try {
            RunStore store(path, mode);
            QFAIL("a schema from a newer Lathe must be refused");
        } catch (const StoreError& e) {
            QVERIFY2(std::string(e.what()).find("newer") != std::string::npos, e.what());
        }
    }
}

void TestRunStore::openForReadingMigratesOnce() {
    const std::string absent = freshPath("absent.sqlite");
    QVERIFY(!RunStore::openForReading(absent));
    QVERIFY(!std::filesystem::exists(absent)); // nothing created
    const std::string oldPath = freshPath("v1-reader.sqlite");
    {
        RawDb db(oldPath);
        db.exec(RunStore::schemaScript(1));
        db.exec("INSERT INTO runs(id, name, created_at) VALUES (3, 'v1 run', 1.7e9)");
    }
    auto store = RunStore::openForReading(oldPath);
    QVERIFY(store);
    QCOMPARE(store->mode(), RunStore::Mode::ReadOnly);
    QCOMPARE(store->schemaVersion(), RunStore::currentSchemaVersion());
    QCOMPARE(store->run(3)->name, std::string("v1 run"));
    const std::string garbage = freshPath("not-a-db.sqlite");
    { std::ofstream(garbage) << std::string(5000, 'x'); }
    try {
        RunStore::openForReading(garbage);
        QFAIL("a text file must not open");
    } catch (const StoreError& e) {
        QVERIFY2(std::string(e.what()).find(garbage) != std::string::npos, e.what());
    }
}

void TestRunStore::filters_data() {
    // Five runs, newest first in every answer: ids are returned as indexes 1..5 into m_filterIds.
    QTest::addColumn<QString>("text");
    QTest::addColumn<QString>("statuses");
    QTest::addColumn<QString>("model");
    QTest::addColumn<QString>("device");
    QTest::addColumn<QString>("tag");
    QTest::addColumn<int>("limit");
    QTest::addColumn<QList<int>>("expected");
    QTest::newRow("all") << "" << "" << "" << "" << "" << 0 << QList<int>{5, 4, 3, 2, 1};
    QTest::newRow("text name") << "mlp" << "" << "" << "" << "" << 0 << QList<int>{2, 1};
    QTest::newRow("text case-insensitive") << "PRUNE" << "" << "" << "" << "" << 0 << QList<int>{4, 3};
    QTest::newRow("text literal percent") << "50%" << "" << "" << "" << "" << 0 << QList<int>{3};
    QTest::newRow("text literal underscore") << "_" << "" << "" << "" << "" << 0 << QList<int>{4};
    QTest::newRow("text experiment") << "sweep-a" << "" << "" << "" << "" << 0 << QList<int>{4, 3, 2};
    QTest::newRow("text chain or tag") << "int8" << "" << "" << "" << "" << 0 << QList<int>{2};
    QTest::newRow("text device") << "cuda" << "" << "" << "" << "" << 0 << QList<int>{4, 2};
    QTest::newRow("text none") << "resnet" << "" << "" << "" << "" << 0 << QList<int>{};
    QTest::newRow("status done") << "" << "done" << "" << "" << "" << 0 << QList<int>{2, 1};
    QTest::newRow("status two") << "" << "failed,running" << "" << "" << "" << 0 << QList<int>{4, 3};
    QTest::newRow("model") << "" << "" << "cnn-small" << "" << "" << 0 << QList<int>{4, 3};
    QTest::newRow("device") << "" << "" << "" << "cuda:0" << "" << 0 << QList<int>{4, 2};
    QTest::newRow("tag") << "" << "" << "" << "" << "sweep" << 0 << QList<int>{3, 2};
    QTest::newRow("tag is exact") << "" << "" << "" << "" << "swe" << 0 << QList<int>{};
    QTest::newRow("limit") << "" << "" << "" << "" << "" << 2 << QList<int>{5, 4};
    QTest::newRow("model and device") << "" << "" << "mlp-784" << "cpu" << "" << 0 << QList<int>{1};
    QTest::newRow("text and status and limit") << "cnn" << "failed,running,done" << "" << "" << "" << 1 << QList<int>{4};
}

void TestRunStore::filters() {
    if (m_filterDb.empty()) {
        m_filterDb = freshPath("filters.sqlite");
        RunStore store(m_filterDb);
        const std::int64_t exp = store.addExperiment("sweep-a", "{}");
        const std::vector<std::pair<NewRun, std::string>> runs = {
            {makeRun(0, "mlp baseline", "mlp-784", "cpu", "train", {"baseline"}), "done"},
            {makeRun(exp, "mlp int8", "mlp-784", "cuda:0", "train > quantize.int8", {"int8", "sweep"}), "done"},
            {makeRun(exp, "cnn prune 50%", "cnn-small", "cpu", "train > prune.magnitude", {"sweep"}), "failed"},
            {makeRun(exp, "cnn_prune_90", "cnn-small", "cuda:0", "train > prune.magnitude", {}), "running"},
            {makeRun(0, "transformer", "tiny-gpt", "cpu", "", {"gen"}), "queued"}};
        for (const auto& [nr, status] : runs) {
            const std::int64_t id = store.createRun(nr);
            m_filterIds.push_back(id);
            if (status != "queued") store.startRun(id);
            if (status == "done" || status == "failed") store.finishRun(id, status);
            store.setSummary(id, {{"accuracy", 0.5 + 0.1 * static_cast<double>(m_filterIds.size())}});
        }
    }
    QFETCH(QString, text);
    QFETCH(QString, statuses);
    QFETCH(QString, model);
    QFETCH(QString, device);
    QFETCH(QString, tag);
    QFETCH(int, limit);
    QFETCH(QList<int>, expected);
    RunFilter f;
    f.text = text.toStdString();
    for (const auto& s : statuses.split(',', Qt::SkipEmptyParts)) f.statuses.push_back(s.toStdString());
    f.model = model.toStdString();
    f.device = device.toStdString();
    f.tag = tag.toStdString();
    f.limit = limit;
    RunStore store(m_filterDb, RunStore::Mode::ReadOnly);
    const auto runs = store.listRuns(f);
    QList<int> got;
    for (const auto& r : runs) {
        const auto it = std::find(m_filterIds.begin(), m_filterIds.end(), r.id);
        got.push_back(static_cast<int>(it - m_filterIds.begin()) + 1);
        QCOMPARE(r.summary.size(), std::size_t(1)); // summaries come with the listing
        QVERIFY(r.configJson.empty());               // JSON only on request
    }
    QCOMPARE(got, expected);
}

void TestRunStore::runRoundTrip() {
    RunStore store(freshPath("crud.sqlite"));
    const std::int64_t exp = store.addExperiment("exp-\u00e9", R"({"name":"exp","steps":[]})");
    NewRun nr = makeRun(exp, "run \"quoted\" 'name'", "mlp-784-256-128-10", "cuda:0", "train > prune.magnitude",
                        {"a", "b,c", "d\"e"});
    const std::int64_t parent = store.createRun(nr);
    nr.parentRunId = parent;
    nr.name = "child";
    const std::int64_t child = store.createRun(nr);
    auto r = store.run(child);
    QVERIFY(r);
    QCOMPARE(r->status, std::string("queued"));
    QCOMPARE(r->experimentId, exp);
    QCOMPARE(r->experimentName, std::string("exp-\u00e9"));
    QCOMPARE(r->tags, (std::vector<std::string>{"a", "b,c", "d\"e"}));
    QCOMPARE(r->parentRunId.value_or(-1), parent);
    QCOMPARE(r->environmentJson, nr.environmentJson);
    QCOMPARE(r->ownerPid, static_cast<std::int64_t>(::getpid()));
    QVERIFY(r->createdAt > 1.6e9);
    QCOMPARE(r->startedAt, 0.0);

    store.startRun(child);
    r = store.run(child);
    QCOMPARE(r->status, std::string("running"));
    QVERIFY(r->startedAt >= r->createdAt);
    store.finishRun(child, run_status::kFailed, "BackendError: out of device memory (fc1, 12 MiB)");
    r = store.run(child);
    QCOMPARE(r->status, std::string("failed"));
    QCOMPARE(r->error, std::string("BackendError: out of device memory (fc1, 12 MiB)"));
    QVERIFY(r->finishedAt >= r->startedAt);

    QVERIFY(!store.run(child + 100));
    QVERIFY_THROWS_EXCEPTION(StoreError, store.startRun(child + 100));
    QVERIFY_THROWS_EXCEPTION(StoreError, store.finishRun(child, "exploded"));
    QCOMPARE(*store.experimentSpec(exp), std::string(R"({"name":"exp","steps":[]})"));
    QVERIFY(!store.experimentSpec(exp + 1));
}

void TestRunStore::samplesRoundTrip() {
    RunStore store(freshPath("samples.sqlite"));
    const std::int64_t a = store.createRun(makeRun(0, "a", "m", "cpu", "", {}));
    const std::int64_t b = store.createRun(makeRun(0, "b", "m", "cpu", "", {}));
    Rng rng(7);
    const std::vector<std::string> series = {"loss", "latency_ms/b64", "a_series_name_that_is_exactly_39_chars_"};
    std::map<std::string, std::vector<MetricSample>> expected;
    std::vector<MetricSample> all;
    for (int i = 0; i < 10000; ++i) {
        const auto& name = series[rng.below(series.size())];
        const std::int64_t run = rng.below(4) == 0 ? b : a;
        MetricSample s = makeSample(run, name, static_cast<std::int64_t>(i), i * 0.125, rng.uniform(-100, 100));
        if (i == 77) s.value = std::nan("");
        if (i == 78) s.value = INFINITY;
        all.push_back(s);
        if (run == a) expected[std::string(s.seriesName())].push_back(s);
    }
    // Uneven batches exercise both the multi-row and the single-row insert.
    std::size_t at = 0;
    for (std::size_t n : {1, 63, 64, 65, 1000, 5000}) {
        store.appendSamples(std::span(all).subspan(at, n));
        at += n;
    }
    store.appendSamples(std::span(all).subspan(at));
    store.appendSamples({}); // nothing, no error

    std::int64_t total = 0;
    for (const auto& info : store.seriesInfo(a)) {
        QCOMPARE(static_cast<std::size_t>(info.samples), expected[info.name].size());
        total += info.samples;
        const auto got = store.samples(a, info.name);
        const auto& want = expected[info.name];
        QCOMPARE(got.size(), want.size());
        for (std::size_t i = 0; i < got.size(); ++i) {
            QCOMPARE(got[i].step, want[i].step);
            QCOMPARE(got[i].tMs, want[i].tMs);
            if (std::isnan(want[i].value)) QVERIFY(std::isnan(got[i].value));
            else QCOMPARE(got[i].value, want[i].value);
            QCOMPARE(got[i].runId, a);
        }
    }
    QCOMPARE(total, store.sampleCount(a));
    QCOMPARE(store.sampleCount(a) + store.sampleCount(b), std::int64_t(10000));
    QCOMPARE(store.seriesNames(a).size(), series.size());
    QCOMPARE(store.samples(a).size(), static_cast<std::size_t>(store.sampleCount(a)));

    // A sample for a run that does not exist fails the whole batch.
    std::vector<MetricSample> bad = {makeSample(a, "loss", 1, 1, 1), makeSample(a + 1000, "loss", 2, 2, 2)};
    const auto before = store.sampleCount(a);
    QVERIFY_THROWS_EXCEPTION(StoreError, store.appendSamples(bad));
    QCOMPARE(store.sampleCount(a), before);
}

void TestRunStore::summariesLayerStatsArtifacts() {
    RunStore store(freshPath("summary.sqlite"));
    const std::int64_t id = store.createRun(makeRun(0, "s", "m", "cpu", "", {}));
    store.setSummary(id, {{"accuracy", 0.91}, {"latency_p50_ms", 0.123456789}, {"perplexity", std::nan("")},
                          {"throughput_per_s", INFINITY}});
    store.setSummary(id, {{"accuracy", 0.92}}); // updates, does not duplicate
    const auto summary = store.run(id)->summary;
    QCOMPARE(summary.size(), std::size_t(4));
    QCOMPARE(summary.at("accuracy"), 0.92);
    QCOMPARE(summary.at("latency_p50_ms"), 0.123456789);
    QVERIFY(std::isnan(summary.at("perplexity")));
    QVERIFY(std::isinf(summary.at("throughput_per_s")));

    const std::vector<LayerStat> stats = {{"fc1", "sparsity", 0.5}, {"fc1", "bytes", 1024}, {"fc2", "sparsity", 0.75}};
    store.addLayerStats(id, stats);
    store.addLayerStats(id, std::vector<LayerStat>{{"fc1", "sparsity", 0.6}});
    const auto got = store.layerStats(id);
    QCOMPARE(got.size(), std::size_t(3));
    QCOMPARE(got[1].layer + "." + got[1].key, std::string("fc1.sparsity"));
    QCOMPARE(got[1].value, 0.6);

    store.addArtifact(id, {"model", "/cache/a.safetensors", std::string(64, 'f')});
    store.addArtifact(id, {"report", "/tmp/r.html", ""});
    const auto arts = store.artifacts(id);
    QCOMPARE(arts.size(), std::size_t(2));
    QCOMPARE(arts[0].kind, std::string("model"));
    QCOMPARE(arts[1].path, std::string("/tmp/r.html"));

    store.setNotes(id, {{"simulated", "fp8 GEMM"}, {"kernel", "dense"}});
    store.setNotes(id, {{"simulated", "fp8 GEMM; latency"}}); // replaces that key's text
    const auto notes = store.run(id)->notes;
    QCOMPARE(notes.size(), std::size_t(2));
    QCOMPARE(notes.at("simulated"), std::string("fp8 GEMM; latency"));
    QCOMPARE(store.notes(id), notes);
}

void TestRunStore::deleteCascades() {
    const std::string path = freshPath("delete.sqlite");
    std::int64_t keep = 0, gone = 0, child = 0;
    {
        RunStore store(path);
        keep = store.createRun(makeRun(0, "keep", "m", "cpu", "", {}));
        gone = store.createRun(makeRun(0, "gone", "m", "cpu", "", {}));
        NewRun c = makeRun(0, "child", "m", "cpu", "", {});
        c.parentRunId = gone;
        child = store.createRun(c);
        for (std::int64_t id : {keep, gone}) {
            std::vector<MetricSample> s;
            for (int i = 0; i < 300; ++i) s.push_back(makeSample(id, "loss", i, i, 1.0 / (i + 1)));
            store.appendSamples(s);
            store.setSummary(id, {{"accuracy", 0.5}, {"loss", 0.1}});
            store.addLayerStats(id, std::vector<LayerStat>{{"fc1", "sparsity", 0.1}});
            store.addArtifact(id, {"model", "/m", "x"});
            store.setNotes(id, {{"simulated", "latency"}});
        }
        const std::vector<std::int64_t> ids = {gone, 9999};
        QCOMPARE(store.deleteRuns(ids), 1);
        QVERIFY(!store.run(gone));
        QVERIFY(!store.run(child)->parentRunId); // the child stays, its parent link is cleared
    }
    RawDb db(path);
    for (const char* table : {"samples", "summaries", "layer_stats", "artifacts", "run_notes"}) {
        QCOMPARE(db.count(std::string("SELECT count(*) FROM ") + table + " WHERE run_id = " + std::to_string(gone)), 0LL);
        QVERIFY(db.count(std::string("SELECT count(*) FROM ") + table + " WHERE run_id = " + std::to_string(keep)) > 0);
    }
    QCOMPARE(db.count("SELECT count(*) FROM samples"), 300LL);
}

void TestRunStore::changeCounterMoves() {
    const std::string path = freshPath("counter.sqlite");
    RunStore writer(path);
    RunStore reader(path, RunStore::Mode::ReadOnly);
    const auto r0 = reader.changeCounter();
    const auto w0 = writer.changeCounter();
    QCOMPARE(reader.changeCounter(), r0); // stable while nothing changes
    const std::int64_t id = writer.createRun(makeRun(0, "c", "m", "cpu", "", {}));
    const auto r1 = reader.changeCounter();
    QVERIFY(r1 != r0);
    QVERIFY(writer.changeCounter() != w0); // its own commits count too
    writer.appendSamples(std::vector<MetricSample>{makeSample(id, "loss", 0, 0, 1)});
    const auto r2 = reader.changeCounter();
    QVERIFY(r2 != r1); // a commit that adds no run still moves it
    QCOMPARE(reader.changeCounter(), r2);
}

void TestRunStore::recoverInterruptedOnlyDeadOwners() {
    const std::string path = freshPath("recover.sqlite");
    RunStore store(path);
    const std::int64_t mine = store.createRun(makeRun(0, "mine", "m", "cpu", "", {}));
    const std::int64_t dead = store.createRun(makeRun(0, "dead", "m", "cpu", "", {}));
    const std::int64_t deadQueued = store.createRun(makeRun(0, "dead-queued", "m", "cpu", "", {}));
    const std::int64_t otherHost = store.createRun(makeRun(0, "other-host", "m", "cpu", "", {}));
    const std::int64_t alive = store.createRun(makeRun(0, "alive", "m", "cpu", "", {}));
    const std::int64_t done = store.createRun(makeRun(0, "done", "m", "cpu", "", {}));
    for (auto id : {mine, dead, otherHost, alive, done}) store.startRun(id);
    store.finishRun(done, run_status::kDone);
    const pid_t gonePid = deadPid();
    {
        RawDb db(path);
        db.exec("UPDATE runs SET owner_pid = " + std::to_string(gonePid) + " WHERE id IN (" + std::to_string(dead) + ", " +
                std::to_string(deadQueued) + ", " + std::to_string(done) + ")");
        db.exec("UPDATE runs SET owner_pid = " + std::to_string(gonePid) + ", owner_host = 'elsewhere.example' WHERE id = " +
                std::to_string(otherHost));
        db.exec("UPDATE runs SET owner_pid = " + std::to_string(::getppid()) + " WHERE id = " + std::to_string(alive));
    }
    QCOMPARE(store.recoverInterrupted(), 2);
    QCOMPARE(store.run(dead)->status, std::string("interrupted"));
    QVERIFY(store.run(dead)->error.find(std::to_string(gonePid)) != std::string::npos);
    QVERIFY(store.run(dead)->finishedAt > 0);
    QCOMPARE(store.run(deadQueued)->status, std::string("interrupted"));
    QCOMPARE(store.run(mine)->status, std::string("running"));
    QCOMPARE(store.run(otherHost)->status, std::string("running"));
    QCOMPARE(store.run(alive)->status, std::string("running"));
    QCOMPARE(store.run(done)->status, std::string("done"));
    QCOMPARE(store.recoverInterrupted(), 0); // idempotent
}

void TestRunStore::readOnlyWhileWriting() {
    const std::string path = freshPath("rw.sqlite");
    RunStore writer(path);
    const std::int64_t id = writer.createRun(makeRun(0, "w", "m", "cpu", "", {}));
    writer.startRun(id);
    RunStore reader(path, RunStore::Mode::ReadOnly);
    for (int batch = 0; batch < 20; ++batch) {
        std::vector<MetricSample> s;
        for (int i = 0; i < 100; ++i) s.push_back(makeSample(id, "loss", batch * 100 + i, i, i * 0.5));
        writer.appendSamples(s);
        QCOMPARE(reader.sampleCount(id), std::int64_t((batch + 1) * 100));
        QCOMPARE(reader.run(id)->status, std::string("running"));
    }
    writer.finishRun(id, run_status::kDone);
    QCOMPARE(reader.run(id)->status, std::string("done"));
}

void TestRunStore::sampleWriterBatches() {
    const std::string path = freshPath("writer.sqlite");
    RunStore store(path);
    RunStore reader(path, RunStore::Mode::ReadOnly);
    const std::int64_t id = store.createRun(makeRun(0, "w", "m", "cpu", "", {}));
    {
        StoreSampleWriter writer(store, 100);
        for (int i = 0; i < 250; ++i) writer.push(makeSample(id, "loss", i, i, 1.0 / (i + 1)));
        QCOMPARE(reader.sampleCount(id), std::int64_t(200)); // two full batches written
        QCOMPARE(writer.pending(), std::size_t(50));
        writer.flush();
        QCOMPARE(reader.sampleCount(id), std::int64_t(250));
        for (int i = 0; i < 7; ++i) writer.push(makeSample(id, "acc", i, i, 0.5));
    } // the destructor flushes the rest
    QCOMPARE(reader.sampleCount(id), std::int64_t(257));
}

void TestRunStore::errorsNameThePath() {
    // A folder that cannot be created: one component is a regular file.
    const std::string file = freshPath("plain-file");
    { std::ofstream(file) << "x"; }
    const std::string underFile = file + "/sub/runs.sqlite";
    try {
        RunStore store(underFile);
        QFAIL("opening under a regular file must fail");
    } catch (const StoreError& e) {
        QVERIFY2(std::string(e.what()).find(underFile) != std::string::npos, e.what());
    }
    // A file that is not a database.
    const std::string garbage = freshPath("garbage.sqlite");
    {
        std::ofstream out(garbage, std::ios::binary);
        Rng rng(3);
        for (int i = 0; i < 8192; ++i) out.put(static_cast<char>(rng.below(256)));
    }
    for (auto mode : {RunStore::Mode::ReadWrite, RunStore::Mode::ReadOnly}) {
        try {
            RunStore store(garbage, mode);
            QFAIL("a random file must not open as a run store");
        } catch (const StoreError& e) {
            const std::string msg = e.what();
            QVERIFY2(msg.find(garbage) != std::string::npos && msg.find("not a database") != std::string::npos, e.what());
        }
    }
    // A SQLite database that is not a run store.
    const std::string other = freshPath("other.sqlite");
    RawDb(other).exec("CREATE TABLE t(x)");
    QVERIFY_THROWS_EXCEPTION(StoreError, RunStore{other});
}

void TestRunStore::defaultPathFollowsXdg() {
    const QByteArray oldXdg = qgetenv("XDG_DATA_HOME"), oldHome = qgetenv("HOME");
    qputenv("XDG_DATA_HOME", "/data/xdg");
    QCOMPARE(RunStore::defaultPath(), std::string("/data/xdg/lathe/runs.sqlite"));
    qputenv("XDG_DATA_HOME", "relative/ignored");
    qputenv("HOME", "/home/someone");
    QCOMPARE(RunStore::defaultPath(), std::string("/home/someone/.local/share/lathe/runs.sqlite"));
    qunsetenv("XDG_DATA_HOME");
    QCOMPARE(RunStore::defaultPath(), std::string("/home/someone/.local/share/lathe/runs.sqlite"));
    if (oldXdg.isNull()) qunsetenv("XDG_DATA_HOME");
    else qputenv("XDG_DATA_HOME", oldXdg);
    qputenv("HOME", oldHome);
}

void TestRunStore::diskFullIsClearAndEarlierRunsSurvive() {
    const std::string path = freshPath("full.sqlite");
    std::vector<std::int64_t> earlier;
    {
        RunStore store(path);
        for (int r = 0; r < 3; ++r) {
            const std::int64_t id = store.createRun(makeRun(0, "earlier " + std::to_string(r), "m", "cpu", "", {}));
            std::vector<MetricSample> s;
            for (int i = 0; i < 5000; ++i) s.push_back(makeSample(id, "loss", i, i, std::sin(i * 0.01 + r)));
            store.appendSamples(s);
            store.setSummary(id, {{"accuracy", 0.8 + r * 0.01}});
            store.finishRun(id, run_status::kDone);
            earlier.push_back(id);
        }
    } // closing checkpoints the WAL into the main file
    const auto dbSize = static_cast<rlim_t>(std::filesystem::file_size(path));

    // A child whose files may not grow past 256 KiB beyond the database: the filesystem is "full".
    int fds[2];
    QCOMPARE(::pipe(fds), 0);
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::close(fds[0]);
        ::signal(SIGXFSZ, SIG_IGN); // EFBIG from write() instead of a signal
        const rlimit limit{dbSize + 256 * 1024, dbSize + 256 * 1024};
        ::setrlimit(RLIMIT_FSIZE, &limit);
        int code = 3;
        std::string message = "no error";
        try {
            RunStore store(path);
            const std::int64_t id = store.createRun(makeRun(0, "filling", "m", "cpu", "", {}));
            store.startRun(id);
            std::vector<MetricSample> s;
            for (int i = 0; i < 4096; ++i) s.push_back(makeSample(id, "loss", i, i, i * 0.5));
            for (int batch = 0; batch < 2000; ++batch) store.appendSamples(s);
        } catch (const StoreError& e) {
            message = e.what();
            code = 0;
        } catch (const std::exception& e) {
            message = std::string("not a StoreError: ") + e.what();
            code = 4;
        }
        [[maybe_unused]] auto n = ::write(fds[1], message.data(), message.size());
        ::_exit(code);
    }
    ::close(fds[1]);
    std::string message;
    char buf[4096];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof(buf))) > 0;) message.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    QVERIFY2(WIFEXITED(status) && WEXITSTATUS(status) == 0, message.c_str());
    qInfo("disk full error: %s", message.c_str());
    QVERIFY2(message.find(path) != std::string::npos, message.c_str());
    QVERIFY2(message.find("disk full") != std::string::npos, message.c_str());

    RunStore store(path);
    QCOMPARE(store.integrityCheck(), std::string("ok"));
    for (std::size_t r = 0; r < earlier.size(); ++r) {
        const auto run = store.run(earlier[r]);
        QVERIFY(run);
        QCOMPARE(run->status, std::string("done"));
        QCOMPARE(store.sampleCount(earlier[r]), std::int64_t(5000));
        QCOMPARE(run->summary.at("accuracy"), 0.8 + static_cast<double>(r) * 0.01);
    }
    // The filling run was left running by a process that is gone: recovery marks it.
    QCOMPARE(store.recoverInterrupted(), 1);
    // And there is room again.
    store.createRun(makeRun(0, "after", "m", "cpu", "", {}));
}

QTEST_GUILESS_MAIN(TestRunStore)
#include "test_run_store.moc"

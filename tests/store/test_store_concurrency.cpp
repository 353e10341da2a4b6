// Several connections on one database (issue 3): two writers and a reader hammering it for a few
// seconds, as threads with their own connections and as separate processes. None may ever fail
// with "database is locked", and every run written must read back whole.
#include "child_process.h"
#include "engine/store/run_store.h"
#include "tests/support/test_support.h"

#include <QtTest>

#include <atomic>
#include <chrono>
#include <mutex>
#include <sstream>
#include <thread>

using namespace lathe;

namespace {

double stressSeconds() {
    const QByteArray v = qgetenv("LATHE_STORE_STRESS_S");
    return v.isEmpty() ? 3.0 : v.toDouble();
}

class Errors {
public:
    void add(const std::string& who, const std::exception& e) {
        std::lock_guard lock(m_mutex);
        m_messages.push_back(who + ": " + e.what());
    }
    std::string joined() const {
        std::string out;
        for (const auto& m : m_messages) out += m + "\n";
        return out;
    }
    bool empty() const { return m_messages.empty(); }

private:
    std::mutex m_mutex;
    std::vector<std::string> m_messages;
};

// Reads what writers are writing until told to stop; returns how many rounds it made.
long readerLoop(const std::string& path, const std::atomic<bool>& stop, Errors& errors) {
    long rounds = 0;
    try {
        RunStore reader(path, RunStore::Mode::ReadOnly);
        std::int64_t last = 0;
        while (!stop.load()) {
            const auto runs = reader.listRuns(RunFilter{.limit = 20});
            for (const auto& r : runs) {
                if (r.status == run_status::kDone && r.summary.count("samples") &&
                    reader.sampleCount(r.id) != static_cast<std::int64_t>(r.summary.at("samples")))
                    throw std::runtime_error("run " + std::to_string(r.id) + " is done but its samples are incomplete");
            }
            if (!runs.empty()) reader.samples(runs.front().id, "loss");
            last = reader.changeCounter() ^ last;
            ++rounds;
        }
    } catch (const std::exception& e) {
        errors.add("reader", e);
    }
    return rounds;
}

} // namespace

class TestStoreConcurrency : public QObject {
    Q_OBJECT

private slots:
    void threadsTwoWritersOneReader();
    void processesTwoWritersOneReader();
};

void TestStoreConcurrency::threadsTwoWritersOneReader() {
    const std::string path = test::tempDir() + "/threads.sqlite";
    { RunStore create(path); }
    Errors errors;
    std::atomic<bool> stop{false};
    constexpr int kBatches = 10, kPerBatch = 500;
    std::vector<std::vector<std::int64_t>> written(2);
    auto writer = [&](int k) {
        try {
            RunStore store(path);
            while (!stop.load()) {
                NewRun nr;
                nr.name = "writer " + std::to_string(k);
                nr.tags = {"writer-" + std::to_string(k)};
                const std::int64_t id = store.createRun(nr);
                store.startRun(id);
                for (int b = 0; b < kBatches; ++b) {
                    std::vector<MetricSample> s;
                    for (int i = 0; i < kPerBatch; ++i)
                        s.push_back(makeSample(id, i % 2 ? "loss" : "acc", b * kPerBatch + i, i, k + i * 1e-3));
                    store.appendSamples(s);
                }
                store.setSummary(id, {{"samples", kBatches * kPerBatch}, {"accuracy", 0.5}});
                store.finishRun(id, run_status::kDone);
                written[static_cast<std::size_t>(k)].push_back(id);
            }
        } catch (const std::exception& e) {
            errors.add("writer " + std::to_string(k), e);
        }
    };
    long readerRounds = 0;
    std::thread w0(writer, 0), w1(writer, 1);
    std::thread r([&] { readerRounds = readerLoop(path, stop, errors); });
    std::this_thread::sleep_for(std::chrono::duration<double>(stressSeconds()));
    stop = true;
    w0.join();
    w1.join();
    r.join();
    QVERIFY2(errors.empty(), errors.joined().c_str());
    qInfo("threads: writer runs %zu + %zu, reader rounds %ld", written[0].size(), written[1].size(), readerRounds);
    QVERIFY(!written[0].empty() && !written[1].empty());
    QVERIFY(readerRounds > 0);
    RunStore store(path, RunStore::Mode::ReadOnly);
    QCOMPARE(store.integrityCheck(), std::string("ok"));
    for (const auto& ids : written)
        for (std::int64_t id : ids) {
            QCOMPARE(store.run(id)->status, std::string(run_status::kDone));
            QCOMPARE(store.sampleCount(id), std::int64_t(kBatches * kPerBatch));
        }
}

void TestStoreConcurrency::processesTwoWritersOneReader() {
    const std::string path = test::tempDir() + "/processes.sqlite";
    { RunStore create(path); }
    Errors errors;
    std::atomic<bool> stop{false};
    long readerRounds = 0;
    std::thread r([&] { readerRounds = readerLoop(path, stop, errors); });
    const int runsEach = std::max(4, static_cast<int>(stressSeconds() * 2));
    test::ChildProcess a({LATHE_STORE_KILL_CHILD, path, "101", std::to_string(runsEach)});
    test::ChildProcess b({LATHE_STORE_KILL_CHILD, path, "202", std::to_string(runsEach)});
    QVERIFY(a.started() && b.started());
    std::vector<std::string> linesA, linesB;
    bool openA = true, openB = true;
    while (openA || openB) {
        if (openA) openA = a.readLines(linesA, 50);
        if (openB) openB = b.readLines(linesB, 50);
    }
    const int statusA = a.wait(), statusB = b.wait();
    stop = true;
    r.join();
    QVERIFY2(WIFEXITED(statusA) && WEXITSTATUS(statusA) == 0, "writer process A failed (its stderr says why)");
    QVERIFY2(WIFEXITED(statusB) && WEXITSTATUS(statusB) == 0, "writer process B failed (its stderr says why)");
    QVERIFY2(errors.empty(), errors.joined().c_str());
    qInfo("processes: %d runs each, reader rounds %ld", runsEach, readerRounds);

    RunStore store(path, RunStore::Mode::ReadOnly);
    QCOMPARE(store.integrityCheck(), std::string("ok"));
    int done = 0;
    for (const auto* lines : {&linesA, &linesB})
        for (const auto& line : *lines) {
            std::istringstream in(line);
            std::string word;
            std::int64_t id = 0, samples = 0;
            in >> word >> id >> samples;
            if (word != "DONE") continue;
            ++done;
            QCOMPARE(store.run(id)->status, std::string(run_status::kDone));
            QCOMPARE(store.sampleCount(id), samples);
        }
    QCOMPARE(done, 2 * runsEach);
}

QTEST_GUILESS_MAIN(TestStoreConcurrency)
#include "test_store_concurrency.moc"

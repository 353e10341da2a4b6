// The `serve` family (issue 12): the scheduler against hand-computed schedules on tiny traces (virtual
// clock, a fake executor with fixed batch times), percentiles against numpy's, the arrival processes, trace
// parsing (good and malformed files under tests/data/serve), validation at the field's pointer,
// cancellation mid-stream, and short runs through the Runner into the store (real and simulated).
#include "engine/experiment/runner.h"
#include "engine/experiment/spec.h"
#include "engine/store/run_store.h"
#include "engine/strategies/serve/arrivals.h"
#include "engine/strategies/serve/realtime.h"
#include "engine/strategies/serve/scheduler.h"
#include "engine/strategies/serve/serve_stats.h"
#include "tests/strategies/strategy_fixture.h"
#include "tests/support/test_support.h"

#include <QtTest>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <set>
#include <thread>

using namespace lathe;
using namespace lathe::serve;
using json = nlohmann::json;

namespace {

// A batch takes fixedMs + perRequestMs * requests on the virtual clock.
class FakeExecutor final : public BatchExecutor {
public:
    FakeExecutor(double fixedMs, double perRequestMs) : m_fixed(fixedMs), m_per(perRequestMs) {}
    double executeMs(const BatchDispatch& b) override {
        sizes.push_back(static_cast<int>(b.requests.size()));
        return m_fixed + m_per * static_cast<double>(b.requests.size());
    }
    std::vector<int> sizes;

private:
    double m_fixed, m_per;
};

Workload openLoop(std::vector<Arrival> arrivals) {
    Workload w;
    w.arrivals = std::move(arrivals);
    return w;
}

// (dispatch, complete) per request id, and which were dropped.
struct Schedule {
    std::map<std::int64_t, std::pair<double, double>> times;
    std::vector<std::int64_t> dropped;
};
Schedule scheduleOf(const ServeLog& log) {
    Schedule s;
    for (const auto& r : log.requests)
        if (r.dropped) s.dropped.push_back(r.request.id);
        else s.times[r.request.id] = {r.dispatchMs, r.completeMs};
    return s;
}

void expectTimes(const Schedule& s, std::int64_t id, double dispatch, double complete) {
    QVERIFY2(s.times.count(id), qPrintable(QString("request %1 was not served").arg(id)));
    // Sums of a few binary fractions: exact, but compared with a hair of slack for the additions.
    QVERIFY2(std::abs(s.times.at(id).first - dispatch) < 1e-9,
             qPrintable(QString("request %1 dispatched at %2, expected %3").arg(id).arg(s.times.at(id).first).arg(dispatch)));
    QVERIFY2(std::abs(s.times.at(id).second - complete) < 1e-9,
             qPrintable(QString("request %1 done at %2, expected %3").arg(id).arg(s.times.at(id).second).arg(complete)));
}

PolicySettings policy(PolicyKind kind, int maxBatch = 32, double delayMs = 0, std::vector<std::int64_t> preferred = {}) {
    return {kind, maxBatch, delayMs, std::move(preferred)};
}

std::string servePointer(const std::string& field) { return "/steps/0/params/" + field; }

json serveStep(const json& params, const char* strategy = "serve.batching") {
    return {{"strategy", strategy}, {"params", params}};
}

// An experiment over a small baseline (2000 training images, one epoch) serving 300 test images.
json runnableExperiment(const json& step) {
    return {{"name", "serve-test"},
            {"model", {{"zoo", "mlp-784-256-128-10"}}},
            {"dataset", {{"name", "fashion-mnist"}, {"split", "test"}, {"limit", 300}}},
            {"device", "cpu"},
            {"baseline", {{"train", {{"epochs", 1}, {"batch_size", 100}, {"limit", 2000}}}}},
            {"steps", json::array({step})},
            {"measure", {{"batch_sizes", {1}}, {"warmup", 0}, {"repeats", 2}, {"accuracy", false}}}};
}

} // namespace

class TestServe : public QObject {
    Q_OBJECT

private slots:
    // No batching, one instance, 2.5 ms per request: each waits for the one before.
    void noBatchingQueuesInOrder() {
        FakeExecutor exec(2.5, 0);
        const auto log = runVirtual(openLoop({{0, 1, 0}, {1, 1, 0}, {2, 1, 0}, {3, 1, 0}}), policy(PolicyKind::None),
                                    {1, 100, 1}, exec);
        const Schedule s = scheduleOf(log);
        expectTimes(s, 0, 0, 2.5);
        expectTimes(s, 1, 2.5, 5);
        expectTimes(s, 2, 5, 7.5);
        expectTimes(s, 3, 7.5, 10);
        QCOMPARE(exec.sizes, (std::vector<int>{1, 1, 1, 1}));
    }

    // Dynamic batching, max batch 3, 2 ms delay, a batch takes 1 + 0.5 per request: the first three make a
    // full batch at t = 1; the fourth waits its 2 ms alone; the last goes at once (the stream has ended).
    void dynamicBatchingHandSchedule() {
        FakeExecutor exec(1, 0.5);
        const auto log = runVirtual(openLoop({{0, 1, 0}, {0.5, 1, 0}, {1, 1, 0}, {5, 1, 0}, {10, 1, 0}}),
                                    policy(PolicyKind::Dynamic, 3, 2), {1, 100, 1}, exec);
        const Schedule s = scheduleOf(log);
        expectTimes(s, 0, 1, 3.5);
        expectTimes(s, 1, 1, 3.5);
        expectTimes(s, 2, 1, 3.5);
        expectTimes(s, 3, 7, 8.5);
        expectTimes(s, 4, 10, 11.5);
        QCOMPARE(exec.sizes, (std::vector<int>{3, 1, 1}));
    }

    // Preferred sizes: with {2} and max batch 8, two queued requests go at once instead of waiting.
    void dynamicPreferredSize() {
        FakeExecutor exec(1, 0);
        const auto log = runVirtual(openLoop({{0, 1, 0}, {0.25, 1, 0}, {0.5, 1, 0}, {20, 1, 0}}),
                                    policy(PolicyKind::Dynamic, 8, 5, {2}), {1, 100, 1}, exec);
        const Schedule s = scheduleOf(log);
        expectTimes(s, 0, 0.25, 1.25);
        expectTimes(s, 1, 0.25, 1.25);
        expectTimes(s, 2, 5.5, 6.5); // alone after its delay: no preferred size fits
        expectTimes(s, 3, 20, 21);
    }

    // Static batching waits for B = 2; the tail of the stream goes as a smaller batch.
    void staticBatchingWaitsForB() {
        FakeExecutor exec(1, 0);
        const auto log = runVirtual(openLoop({{0, 1, 0}, {1, 1, 0}, {2, 1, 0}}), policy(PolicyKind::Static, 2),
                                    {1, 100, 1}, exec);
        const Schedule s = scheduleOf(log);
        expectTimes(s, 0, 1, 2);
        expectTimes(s, 1, 1, 2);
        expectTimes(s, 2, 2, 3);
    }

    // Two instances serve two requests at once.
    void instancesRunInParallel() {
        FakeExecutor exec(2, 0);
        const auto log = runVirtual(openLoop({{0, 1, 0}, {0, 1, 0}, {0, 1, 0}}), policy(PolicyKind::None),
                                    {2, 100, 1}, exec);
        const Schedule s = scheduleOf(log);
        expectTimes(s, 0, 0, 2);
        expectTimes(s, 1, 0, 2);
        expectTimes(s, 2, 2, 4);
    }

    // Priority queues take the class-0 request ahead of an earlier class-1 one; FIFO does not.
    void priorityOvertakesFifo() {
        const Workload w = openLoop({{0, 1, 1}, {0.1, 1, 1}, {0.2, 1, 0}});
        FakeExecutor a(1, 0), b(1, 0);
        const Schedule fifo = scheduleOf(runVirtual(w, policy(PolicyKind::Dynamic, 1), {1, 100, 2}, a));
        expectTimes(fifo, 1, 1, 2);
        expectTimes(fifo, 2, 2, 3);
        const Schedule prio = scheduleOf(runVirtual(w, policy(PolicyKind::Priority, 1), {1, 100, 2}, b));
        expectTimes(prio, 0, 0, 1);
        expectTimes(prio, 2, 1, 2);
        expectTimes(prio, 1, 2, 3);
    }

    // A full queue drops arrivals (counted), and never holds more than its cap.
    void queueCapDrops() {
        FakeExecutor exec(10, 0);
        const auto log = runVirtual(openLoop({{0, 1, 0}, {0.1, 1, 0}, {0.2, 1, 0}, {0.3, 1, 0}, {0.4, 1, 0}}),
                                    policy(PolicyKind::None), {1, 2, 1}, exec);
        const Schedule s = scheduleOf(log);
        QCOMPARE(s.dropped, (std::vector<std::int64_t>{3, 4}));
        expectTimes(s, 1, 10, 20);
        expectTimes(s, 2, 20, 30);
        const auto summary = summarizeServeLog(log, 0, {100, {}}, 1, false);
        QCOMPARE(summary.at("dropped"), 2.0);
        QCOMPARE(summary.at("slo_attainment"), 0.6); // 3 of 5 offered met 100 ms; drops count as misses
    }

    // A full priority queue makes room for a higher class by dropping the newest lower-class request; a
    // request of the lowest class finds no room and is dropped itself.
    void priorityEvictsALowerClassWhenFull() {
        FakeExecutor exec(10, 0);
        const auto log = runVirtual(openLoop({{0, 1, 1}, {0.1, 1, 1}, {0.2, 1, 0}, {0.3, 1, 1}}),
                                    policy(PolicyKind::Priority, 1), {1, 1, 2}, exec);
        const Schedule s = scheduleOf(log);
        QCOMPARE(s.dropped, (std::vector<std::int64_t>{1, 3}));
        expectTimes(s, 0, 0, 10);
        expectTimes(s, 2, 10, 20);
    }

    // Adaptive batching does not wait at a low rate (one request per 100 ms against a 5 ms cap), where
    // dynamic batching holds each request its full delay.
    void adaptiveSkipsTheWaitAtLowRate() {
        std::vector<Arrival> a;
        for (int i = 0; i < 6; ++i) a.push_back({100.0 * i, 1, 0});
        FakeExecutor e1(1, 0), e2(1, 0);
        const Schedule adaptive = scheduleOf(runVirtual(openLoop(a), policy(PolicyKind::Adaptive, 8, 5), {1, 100, 1}, e1));
        const Schedule dynamic = scheduleOf(runVirtual(openLoop(a), policy(PolicyKind::Dynamic, 8, 5), {1, 100, 1}, e2));
        for (std::int64_t i = 0; i < 5; ++i) {
            expectTimes(adaptive, i, 100.0 * i, 100.0 * i + 1);
            expectTimes(dynamic, i, 100.0 * i + 5, 100.0 * i + 6);
        }
    }

    // Closed loop: two clients, four requests, 1 ms each on one instance; a client sends its next request
    // when its answer comes.
    void closedLoopFollowsAnswers() {
        Workload w;
        w.closedLoop = true;
        w.clients = 2;
        w.requests = 4;
        FakeExecutor exec(1, 0);
        const Schedule s = scheduleOf(runVirtual(w, policy(PolicyKind::None), {1, 100, 1}, exec));
        expectTimes(s, 0, 0, 1);
        expectTimes(s, 1, 1, 2);
        expectTimes(s, 2, 2, 3); // client 0's second, sent at 1
        expectTimes(s, 3, 3, 4); // client 1's second, sent at 2
    }

    // Percentiles of latencies 1..100 ms as numpy.percentile (linear) gives them: p50 50.5, p95 95.05,
    // p99 99.01; the warm-up requests are left out and the first request reported alone.
    void percentilesMatchNumpy() {
        ServeLog log;
        for (int i = 0; i < 110; ++i) {
            RequestRecord r;
            r.request.id = i;
            r.request.arrivalMs = 1000.0 * i;
            r.dispatchMs = r.request.arrivalMs;
            // ids 0..9 are the warm-up (latency 500), then 1..100 ms in a shuffled order
            r.completeMs = r.request.arrivalMs + (i < 10 ? 500.0 : static_cast<double>((i - 10) * 37 % 100 + 1));
            log.requests.push_back(r);
        }
        const auto s = summarizeServeLog(log, 10, {50.25, {}}, 1, false);
        QCOMPARE(s.at("serve_p50_ms"), 50.5);
        QVERIFY(std::abs(s.at("serve_p95_ms") - 95.05) < 1e-9);
        QVERIFY(std::abs(s.at("serve_p99_ms") - 99.01) < 1e-9);
        QCOMPARE(s.at("serve_max_ms"), 100.0);
        QCOMPARE(s.at("serve_first_ms"), 500.0);
        QCOMPARE(s.at("served"), 100.0);
        QCOMPARE(s.at("slo_attainment"), 0.5); // 1..50 meet 50.25 ms
    }

    void poissonRateAndGammaSpread() {
        StreamSettings s;
        s.kind = ArrivalKind::Poisson;
        s.ratePerS = 500;
        s.requests = 20000;
        s.seed = 3;
        auto a = openLoopArrivals(s);
        QCOMPARE(a.size(), std::size_t(20000));
        const double rate = 19999.0 / ((a.back().tMs - a.front().tMs) / 1000.0);
        QVERIFY2(std::abs(rate / 500.0 - 1.0) < 0.03, qPrintable(QString("rate %1").arg(rate))); // ~4 sigma of 1/sqrt(20000)

        s.kind = ArrivalKind::Gamma;
        s.cv = 3;
        a = openLoopArrivals(s);
        std::vector<double> gaps;
        for (std::size_t i = 1; i < a.size(); ++i) gaps.push_back(a[i].tMs - a[i - 1].tMs);
        double mean = 0, var = 0;
        for (double g : gaps) mean += g;
        mean /= static_cast<double>(gaps.size());
        for (double g : gaps) var += (g - mean) * (g - mean);
        const double cv = std::sqrt(var / static_cast<double>(gaps.size())) / mean;
        QVERIFY2(std::abs(mean - 2.0) < 0.2, qPrintable(QString("mean gap %1").arg(mean)));
        QVERIFY2(std::abs(cv - 3.0) < 0.45, qPrintable(QString("cv %1").arg(cv)));

        s.kind = ArrivalKind::OnOff;
        s.onMs = 10;
        s.offMs = 30;
        s.requests = 5000;
        for (const Arrival& x : openLoopArrivals(s))
            QVERIFY2(std::fmod(x.tMs, 40.0) < 10.0, qPrintable(QString("arrival at %1 in an off window").arg(x.tMs)));
        s.durationS = 2;
        a = openLoopArrivals(s);
        QVERIFY(!a.empty() && a.back().tMs < 2000);
        QVERIFY2(std::abs(static_cast<double>(a.size()) / 1000.0 - 1.0) < 0.15, qPrintable(QString::number(a.size())));
    }

    void traceParsesAGoodFile() {
        const auto a = parseTraceFile(test::sourcePath("tests/data/serve/good.csv"), 2);
        QCOMPARE(a.size(), std::size_t(3));
        QCOMPARE(a[1].tMs, 0.5);
        QCOMPARE(a[1].samples, 2);
        QCOMPARE(a[1].priority, 1);
        QCOMPARE(a[2].tMs, 2.25);
    }

    void traceRefusesMalformedRows_data() {
        QTest::addColumn<QString>("file");
        QTest::addColumn<int>("classes");
        QTest::addColumn<QString>("message");
        QTest::newRow("non-numeric") << "non_numeric.csv" << 1 << ":2: samples: expected an integer >= 1, got \"abc\"";
        QTest::newRow("negative") << "negative_time.csv" << 1 << ":2: arrival_ms: expected a time >= 0, got -2";
        QTest::newRow("decreasing") << "decreasing.csv" << 2 << ":3: arrival_ms: times must not decrease, got 3 after 5";
        QTest::newRow("unknown class") << "unknown_class.csv" << 2
                                       << ":3: priority: unknown class 7 (the stream has classes 0..1)";
        QTest::newRow("columns") << "missing_column.csv" << 1
                                 << ":1: expected 3 columns (arrival_ms,samples,priority), got 2";
    }
    void traceRefusesMalformedRows() {
        QFETCH(QString, file);
        QFETCH(int, classes);
        QFETCH(QString, message);
        const std::string path = test::sourcePath("tests/data/serve/" + file.toStdString());
        try {
            parseTraceFile(path, classes);
            QFAIL("accepted a malformed trace");
        } catch (const ConfigError& e) {
            QCOMPARE(QString::fromStdString(e.what()), QString::fromStdString(path) + message);
        }
    }

    void validationRefusesAtThePointer_data() {
        QTest::addColumn<QString>("field");
        QTest::addColumn<QString>("value");
        QTest::addColumn<QString>("message");
        QTest::newRow("rate 0") << "rate_per_s" << "0" << "expected a number > 0, got 0";
        QTest::newRow("max batch 0") << "max_batch" << "0" << "expected an integer in [1, 4096], got 0";
        QTest::newRow("slo 0") << "slo_ms" << "0" << "expected a number > 0, got 0";
        QTest::newRow("slo negative") << "slo_ms" << "-5" << "expected a number > 0, got -5";
    }
    void validationRefusesAtThePointer() {
        QFETCH(QString, field);
        QFETCH(QString, value);
        QFETCH(QString, message);
        json params = {{field.toStdString(), json::parse(value.toStdString())}};
        test::expectSingleIssue(test::experimentWith(serveStep(params)),
                                QString::fromStdString(servePointer(field.toStdString())), message);
        test::expectSingleIssue(test::experimentWith(serveStep(params, "serve.capacity")),
                                QString::fromStdString(servePointer(field.toStdString())), message);
    }

    void validationReadsTheTraceAndPolicies() {
        const std::string bad = test::sourcePath("tests/data/serve/decreasing.csv");
        test::expectSingleIssue(
            test::experimentWith(serveStep({{"arrival", "trace"}, {"trace", bad}, {"priority_classes", 2}})),
            QString::fromStdString(servePointer("trace")),
            QString::fromStdString(bad + ":3: arrival_ms: times must not decrease, got 3 after 5"));
        test::expectSingleIssue(test::experimentWith(serveStep({{"policies", "none,dynamc"}}, "serve.capacity")),
                                QString::fromStdString(servePointer("policies")), {});
        QVERIFY(validateExperiment(test::experimentWith(serveStep({{"preferred_sizes", json::array()}}))).empty());
    }

    // Real time, a fake executor of 2 ms per batch: cancelled after 20 answers, the log keeps what was
    // served and says cancelled; the stream's other requests are never offered.
    void realtimeCancelMidStream() {
        std::vector<Arrival> a;
        for (int i = 0; i < 2000; ++i) a.push_back({0.5 * i, 1, 0});
        std::atomic<bool> cancel{false};
        int answered = 0;
        ServeObserver obs;
        obs.request = [&](const RequestRecord& r) {
            if (!r.dropped && ++answered == 20) cancel = true;
        };
        auto execute = [](int, const std::vector<ServeRequest>& r) {
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
            return std::vector<int>(r.size(), 1);
        };
        const ServeLog log = runRealtime(openLoop(a), policy(PolicyKind::Dynamic, 4, 1), {1, 1000, 1}, execute, obs, &cancel);
        QVERIFY(log.cancelled);
        QVERIFY(log.requests.size() >= 20);
        QVERIFY2(log.requests.size() < 1000, qPrintable(QString::number(log.requests.size())));
        for (const auto& r : log.requests) {
            QVERIFY(!r.dropped);
            QVERIFY(r.dispatchMs >= r.request.arrivalMs);
            QVERIFY(r.completeMs > r.dispatchMs);
        }
    }

    // Real time, a closed loop of 3 clients over 30 requests with a batch executor that counts samples:
    // every request answered once, never more than 3 in the system.
    void realtimeClosedLoop() {
        Workload w;
        w.closedLoop = true;
        w.clients = 3;
        w.requests = 30;
        int maxBatch = 0;
        auto execute = [&](int, const std::vector<ServeRequest>& r) {
            maxBatch = std::max(maxBatch, static_cast<int>(r.size()));
            std::this_thread::sleep_for(std::chrono::microseconds(300));
            return std::vector<int>(r.size(), 0);
        };
        const ServeLog log = runRealtime(w, policy(PolicyKind::Dynamic, 8, 0.5), {1, 100, 1}, execute);
        QVERIFY(!log.cancelled);
        QCOMPARE(log.requests.size(), std::size_t(30));
        std::set<std::int64_t> ids;
        for (const auto& r : log.requests) ids.insert(r.request.id);
        QCOMPARE(ids.size(), std::size_t(30));
        QVERIFY(maxBatch >= 1 && maxBatch <= 3);
    }

    // Each batch executes on the instance the scheduler gave it: the executor is told which, and the log agrees.
    void realtimeTellsTheInstance() {
        std::vector<std::pair<int, int>> seen; // (instance, first request id of the batch)
        std::mutex mutex;
        auto execute = [&](int instance, const std::vector<ServeRequest>& r) {
            std::this_thread::sleep_for(std::chrono::microseconds(400));
            std::lock_guard lock(mutex);
            seen.emplace_back(instance, static_cast<int>(r.front().id));
            return std::vector<int>(r.size(), 1);
        };
        std::vector<Arrival> a;
        for (int i = 0; i < 60; ++i) a.push_back({0.05 * i, 1, 0});
        const ServeLog log = runRealtime(openLoop(a), policy(PolicyKind::Static, 2, 0), {3, 100, 1}, execute);
        QCOMPARE(seen.size(), log.batches.size());
        std::set<int> used;
        for (const auto& [instance, firstId] : seen) {
            QVERIFY(instance >= 0 && instance < 3);
            used.insert(instance);
            const auto rec = std::find_if(log.requests.begin(), log.requests.end(),
                                          [&](const RequestRecord& q) { return q.request.id == firstId; });
            QVERIFY(rec != log.requests.end());
            QCOMPARE(rec->instance, instance);
        }
        QVERIFY2(used.size() >= 2, "60 requests arriving at once on 3 instances kept only one busy");
    }

    // Two instances run batches at once on the CPU backend: every request answered, and the same answers
    // (accuracy over the same samples) as one instance gives.
    void twoInstancesAnswerAsOne() {
        double accuracy[2] = {0, 0};
        for (int instances : {1, 2}) {
            test::ContextFixture fx("mlp-784-256-128-10");
            ParamValues v = defaultValues(*StrategyRegistry::instance().find("serve.batching"));
            v.set("instances", std::int64_t(instances));
            v.set("rate_per_s", 3000.0);
            v.set("requests", std::int64_t(600));
            v.set("warmup_requests", std::int64_t(0));
            v.set("max_batch", std::int64_t(4));
            v.set("max_queue_delay_ms", 0.2);
            StrategyRegistry::instance().create("serve.batching", v)->apply(fx.ctx);
            QCOMPARE(fx.summary.at("served"), 600.0);
            accuracy[instances - 1] = fx.summary.at("serve_accuracy");
        }
        QCOMPARE(accuracy[1], accuracy[0]);
    }

    // Through the Runner into the store: real serving (accuracy under serving, the live series) and the
    // simulate mode (marked simulated = 1).
    void runsThroughTheRunner() {
        LATHE_REQUIRE_FASHION_MNIST();
        const std::string dir = test::tempDir();
        RunStore store(dir + "/runs.sqlite");
        Runner runner(store, RunnerOptions{"", dir + "/cache"});
        std::atomic<bool> cancel{false};
        for (const char* mode : {"real", "simulate"}) {
            const json doc = runnableExperiment(serveStep({{"mode", mode}, {"policy", "dynamic"}, {"rate_per_s", 400},
                                                           {"requests", 300}, {"warmup_requests", 20},
                                                           {"max_batch", 8}, {"fit_repeats", 5}, {"slo_ms", 50}}));
            QVERIFY(validateExperiment(doc).empty());
            const auto outcomes = runner.run(parseExperiment(doc, "inline"), doc, RunnerEvents{}, cancel);
            QCOMPARE(outcomes.size(), std::size_t(1));
            QCOMPARE(QString::fromStdString(outcomes[0].status), QString(run_status::kDone));
            const auto rec = store.run(outcomes[0].runId);
            const auto& s = rec->summary;
            QCOMPARE(s.at("served"), 280.0);
            QCOMPARE(s.at("dropped"), 0.0);
            QVERIFY(s.at("serve_p50_ms") > 0 && s.at("serve_p50_ms") <= s.at("serve_p99_ms"));
            QVERIFY(s.at("serve_p99_ms") <= s.at("serve_max_ms"));
            QVERIFY(s.at("serve_throughput_per_s") > 0);
            QVERIFY(s.count("serve_first_ms"));
            if (std::string(mode) == "real") {
                QVERIFY(!s.count("simulated"));
                // The model answers as evaluate() does: a trained MLP, well above chance.
                QVERIFY2(s.at("serve_accuracy") > 0.5, qPrintable(QString::number(s.at("serve_accuracy"))));
                QCOMPARE(store.samples(outcomes[0].runId, "serve/latency_ms").size(), std::size_t(300));
                QVERIFY(!store.samples(outcomes[0].runId, "serve/queue_depth").empty());
            } else {
                QCOMPARE(s.at("simulated"), 1.0);
                QVERIFY(rec->notes.count("simulated"));
            }
        }
    }

    // Cancelled mid-stream through the Runner: stored as cancelled, with the summary of the requests served.
    void cancelThroughTheRunnerKeepsWhatWasServed() {
        LATHE_REQUIRE_FASHION_MNIST();
        const std::string dir = test::tempDir();
        RunStore store(dir + "/runs.sqlite");
        Runner runner(store, RunnerOptions{"", dir + "/cache"});
        std::atomic<bool> cancel{false};
        // Counts the served requests' samples as they stream, and cancels after 100.
        struct CancellingSink final : MetricSink {
            std::atomic<bool>* cancel;
            int seen = 0;
            void push(const MetricSample& s) override {
                if (s.seriesName() == "serve/latency_ms" && ++seen == 100) cancel->store(true);
            }
        } sink;
        sink.cancel = &cancel;
        RunnerEvents events;
        events.liveSink = &sink;
        const json doc = runnableExperiment(serveStep({{"rate_per_s", 500}, {"requests", 5000}, {"warmup_requests", 0}}));
        const auto outcomes = runner.run(parseExperiment(doc, "inline"), doc, events, cancel);
        QCOMPARE(outcomes.size(), std::size_t(1));
        QCOMPARE(QString::fromStdString(outcomes[0].status), QString(run_status::kCancelled));
        const auto rec = store.run(outcomes[0].runId);
        QCOMPARE(QString::fromStdString(rec->status), QString(run_status::kCancelled));
        const double served = rec->summary.at("served");
        QVERIFY2(served >= 100 && served < 5000, qPrintable(QString::number(served)));
        QCOMPARE(static_cast<double>(store.samples(outcomes[0].runId, "serve/latency_ms").size()), served);
        QVERIFY(rec->notes.at("serve").find("cancelled") != std::string::npos);
    }
};

LATHE_TEST_GUILESS_MAIN(TestServe)
#include "test_serve.moc"

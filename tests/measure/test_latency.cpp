// The latency harness and a full measurement point on the CPU backend with the zoo MLP over a
// small random dataset; memory and environment capture.
#include "engine/backends/registry.h"
#include "engine/core/errors.h"
#include "engine/core/rng.h"
#include "engine/measure/environment.h"
#include "engine/measure/latency.h"
#include "engine/measure/memory.h"
#include "engine/measure/model_measure.h"
#include "engine/io/zoo.h"
#include "tests/support/test_support.h"

#include <QtTest>

#include <fstream>
#include <map>

using namespace lathe;

namespace {

Dataset randomDataset(std::int64_t n, std::uint64_t seed) {
    Dataset d;
    d.name = "random";
    d.sampleShape = {1, 28, 28};
    d.numClasses = 10;
    Rng rng(seed);
    d.pixels.resize(static_cast<std::size_t>(n * 784));
    for (auto& p : d.pixels) p = static_cast<std::uint8_t>(rng.below(256));
    d.labels = test::randomLabels(static_cast<std::size_t>(n), 10, seed + 1);
    return d;
}

class CollectingSink final : public MetricSink {
public:
    void push(const MetricSample& s) override { samples.push_back(s); }
    std::vector<MetricSample> samples;
};

} // namespace

class TestLatency : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() {
        m_backend = cpuBackend();
        m_model = Model::fromArchitecture(zooArchitecture("mlp-784-256-128-10"));
        m_model->initialize(*m_backend, 5);
        m_model->to(*m_backend);
        m_data = randomDataset(300, 11);
    }

    void everySampleIsKept() {
        const auto batches = makeInputBatches(*m_backend, *m_model, m_data, 16, 3);
        QCOMPARE(batches.size(), std::size_t(3));
        int calls = 0;
        std::vector<double> started;
        const auto samples =
            measureLatency(*m_backend, *m_model, batches, 3, 40, nullptr, [&](int, int) { ++calls; }, &started);
        QCOMPARE(samples.size(), std::size_t(40));
        for (double ms : samples) QVERIFY(ms > 0 && ms < 10000);
        QVERIFY(calls >= 1);
        // Each forward starts after the previous one finished.
        QCOMPARE(started.size(), std::size_t(40));
        for (std::size_t i = 1; i < started.size(); ++i) QVERIFY(started[i] >= started[i - 1] + samples[i - 1] * 0.999);
    }

    void inputBatchesAreDistinctAndWrap() {
        // 300 samples, 4 batches of 100: the fourth wraps to the first window.
        const auto batches = makeInputBatches(*m_backend, *m_model, m_data, 100, 4);
        QCOMPARE(batches[0].shape(), (Shape{100, 1, 28, 28}));
        const auto b0 = m_backend->downloadF32(batches[0]);
        const auto b1 = m_backend->downloadF32(batches[1]);
        const auto b3 = m_backend->downloadF32(batches[3]);
        QVERIFY(test::maxAbsDiff(b0, b1) > 0.1);
        QCOMPARE(test::maxAbsDiff(b0, b3), 0.0);
    }

    void cancelStopsTiming() {
        const auto batches = makeInputBatches(*m_backend, *m_model, m_data, 4, 2);
        std::atomic<bool> cancel{true};
        QVERIFY_THROWS_EXCEPTION(CancelledError, measureLatency(*m_backend, *m_model, batches, 0, 10, &cancel));
    }

    void wrongInputShapeIsAConfigError() {
        Dataset d = m_data;
        d.sampleShape = {1, 14, 14};
        d.pixels.resize(static_cast<std::size_t>(d.size() * 196));
        QVERIFY_THROWS_EXCEPTION(ConfigError, makeInputBatches(*m_backend, *m_model, d, 4, 1));
    }

    void measurementPointWritesKeysAndSeries() {
        CollectingSink sink;
        MeasureRequest req;
        req.batchSizes = {8, 32};
        req.warmup = 2;
        req.repeats = 25;
        req.label = "";
        std::vector<std::pair<double, std::string>> progress;
        const MeasureOutcome out =
            measureModel(MeasureTarget{*m_model, *m_backend, m_data, sink, 7, steadyClockMs(), nullptr,
                                       [&](double f, const std::string& w) { progress.push_back({f, w}); }},
                         req);
        for (const char* key : {"accuracy", "loss", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
                                "latency_mean_ms", "latency_cv", "throughput_per_s", "batch_size", "model_bytes",
                                "params", "peak_device_bytes", "peak_host_bytes", "latency_p50_ms@b8",
                                "latency_p50_ms@b32", "throughput_per_s@b32", "latency_p50_ci_low_ms@b32"})
            QVERIFY2(out.summary.count(key), key);
        // The plain keys describe the first batch size listed.
        QCOMPARE(out.summary.at("batch_size"), 8.0);
        QCOMPARE(out.summary.at("latency_p50_ms"), out.summary.at("latency_p50_ms@b8"));
        QVERIFY(std::abs(out.summary.at("throughput_per_s@b32") - 32 * 1000.0 / out.summary.at("latency_p50_ms@b32")) <
                1e-6);
        // 784*256+256 + 256*128+128 + 128*10+10 parameters, 4 bytes each.
        QCOMPARE(out.summary.at("params"), 235146.0);
        QCOMPARE(out.summary.at("model_bytes"), 4 * 235146.0);
        QVERIFY(out.summary.at("peak_device_bytes") >= out.summary.at("model_bytes"));
        QVERIFY(out.summary.at("peak_host_bytes") > 0);
        QCOMPARE(out.eval.count, std::int64_t(300));
        // Random weights on random data: accuracy is a fraction, near chance.
        QVERIFY(out.summary.at("accuracy") >= 0 && out.summary.at("accuracy") <= 0.3);

        int b8 = 0, b32 = 0;
        std::map<std::int64_t, double> throughputByBatch;
        for (const auto& s : sink.samples) {
            QCOMPARE(s.runId, std::int64_t(7));
            if (s.seriesName() == "latency_ms/b8") ++b8;
            if (s.seriesName() == "latency_ms/b32") ++b32;
            if (s.seriesName() == "throughput_per_s") throughputByBatch[s.step] = s.value;
            QVERIFY(s.value > 0);
        }
        QCOMPARE(b8, 25);
        QCOMPARE(b32, 25);
        // Throughput streams once per batch size (step = batch size), equal to the summary's figure.
        QCOMPARE(throughputByBatch.size(), std::size_t(2));
        QCOMPARE(throughputByBatch.at(8), out.summary.at("throughput_per_s@b8"));
        QCOMPARE(throughputByBatch.at(32), out.summary.at("throughput_per_s@b32"));
        QVERIFY(!progress.empty());
        QCOMPARE(progress.back().first, 1.0);
    }

    void labelledPointPrefixesKeys() {
        CollectingSink sink;
        MeasureRequest req;
        req.batchSizes = {4};
        req.warmup = 0;
        req.repeats = 5;
        req.accuracy = false;
        req.label = "before";
        const MeasureOutcome out =
            measureModel(MeasureTarget{*m_model, *m_backend, m_data, sink, 1, steadyClockMs(), nullptr, {}}, req);
        QVERIFY(out.summary.count("before.latency_p50_ms"));
        QVERIFY(!out.summary.count("latency_p50_ms"));
        QVERIFY(!out.summary.count("before.accuracy"));
        QCOMPARE(sink.samples.size(), std::size_t(5 + 1)); // five latencies, then the throughput point
        QCOMPARE(std::string(sink.samples[0].seriesName()), std::string("before/latency_ms/b4"));
        QCOMPARE(std::string(sink.samples[5].seriesName()), std::string("before/throughput_per_s"));
    }

    void memoryFigures() {
        QVERIFY(currentHostRssBytes() > 0);
        QVERIFY(peakHostRssBytes() >= currentHostRssBytes() / 2);
    }

    void environmentCapture() {
        const std::string file = test::tempDir() + "/data.bin";
        std::ofstream(file) << "abc";
        const auto env = captureEnvironment(m_backend.get(), 42, {file, test::tempDir() + "/missing"});
        for (const char* key : {"lathe_version", "git_revision", "hostname", "os", "cpu_model", "cpu_cores",
                                "openblas", "device", "seed", "dataset_files", "captured_at"})
            QVERIFY2(env.contains(key), key);
        QCOMPARE(env["seed"].get<std::uint64_t>(), std::uint64_t(42));
        QCOMPARE(env["device"]["backend"].get<std::string>(), std::string("cpu"));
        QVERIFY(env["openblas"]["threads"].get<int>() >= 1);
        QCOMPARE(env["dataset_files"][0]["sha256"].get<std::string>(),
                 std::string("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
        QVERIFY(env["dataset_files"][1].contains("error"));
        QCOMPARE(env["lathe_version"].get<std::string>(), std::string(LATHE_VERSION));
    }

private:
    std::shared_ptr<Backend> m_backend;
    std::unique_ptr<Model> m_model;
    Dataset m_data;
};

QTEST_GUILESS_MAIN(TestLatency)
#include "test_latency.moc"

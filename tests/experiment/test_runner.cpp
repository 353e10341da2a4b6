// The Runner end to end on the CPU with Fashion-MNIST subsets (a few hundred samples, one epoch)
// into a temporary run store: a done run with its summary, samples and stats; the baseline cache
// hit on the second run; a cancel mid-run stored as cancelled; a failing step stored as failed.
#include "engine/backends/registry.h"
#include "engine/core/errors.h"
#include "engine/experiment/runner.h"
#include "engine/experiment/spec.h"
#include "engine/io/zoo.h"
#include "engine/store/run_store.h"
#include "tests/support/test_support.h"

#include <QtTest>

#include <filesystem>

using namespace lathe;
using json = nlohmann::json;

namespace {

json tinyExperiment() {
    return json::parse(R"({
        "name": "tiny",
        "model": {"zoo": "mlp-784-256-128-10"},
        "dataset": {"name": "fashion-mnist", "split": "test", "limit": 200},
        "device": "cpu",
        "baseline": {"train": {"epochs": 1, "batch_size": 50, "limit": 500}},
        "steps": [
            {"strategy": "measure", "params": {"label": "mid", "batch_sizes": [4], "warmup": 1, "repeats": 5}},
            {"strategy": "finetune", "params": {"epochs": 1, "batch_size": 50, "limit": 300, "lr": 0.0005}}
        ],
        "measure": {"batch_sizes": [1, 16], "warmup": 1, "repeats": 12, "rotate_batches": 2},
        "seed": 7,
        "tags": ["test"]
    })");
}

class CountingSink final : public MetricSink {
public:
    void push(const MetricSample&) override { ++count; }
    std::int64_t count = 0;
};

// A strategy that fails on purpose, registered once for the failure test.
class FailingStrategy final : public Strategy {
public:
    void apply(StepContext&) override { throw DataError("test.fail: deliberate failure in step"); }
};

// A strategy that loads a second model through the context and makes it the run's model.
class ReplacingStrategy final : public Strategy {
public:
    void apply(StepContext& ctx) override {
        auto other = ctx.loadModel(ModelRef{"cnn-2conv", "", ""});
        if (other->backend() != &ctx.backend()) throw DataError("test.replace: loaded on another backend");
        ctx.replaceModel(std::move(other));
    }
};

// A strategy that says its figures are simulated, for the notes test.
class SimulatingStrategy final : public Strategy {
public:
    void apply(StepContext& ctx) override { ctx.markSimulated("test: latency from a model"); }
};

struct Fixture {
    std::string dir;
    std::unique_ptr<RunStore> store;
    std::vector<std::string> logs;
    RunnerEvents events;
    CountingSink live;

    explicit Fixture(const std::string& name) {
        dir = test::tempDir() + "/" + name;
        std::filesystem::create_directories(dir);
        store = std::make_unique<RunStore>(dir + "/runs.sqlite");
        events.log = [this](LogLevel, const std::string& m) { logs.push_back(m); };
        events.liveSink = &live;
    }
    bool logged(const std::string& needle) const {
        for (const auto& l : logs)
            if (l.find(needle) != std::string::npos) return true;
        return false;
    }
};

} // namespace

class TestRunner : public QObject {
    Q_OBJECT

private slots:
    // Functions that load Fashion-MNIST skip without it; the others run.
    void initTestCase() {
        m_cacheDir = test::tempDir() + "/baselines";
    }

    void runIsStoredWithSummarySamplesAndStats() {
        LATHE_REQUIRE_FASHION_MNIST();
        Fixture f("done");
        const json doc = tinyExperiment();
        const ExperimentSpec spec = parseExperiment(doc, "tiny.json");
        Runner runner(*f.store, RunnerOptions{"", m_cacheDir});
        std::atomic<bool> cancel{false};
        double lastFraction = -1;
        bool monotonic = true;
        f.events.progress = [&](double fr, const std::string&, double) {
            if (fr + 1e-9 < lastFraction) monotonic = false;
            lastFraction = fr;
        };
        const auto outcomes = runner.run(spec, doc, f.events, cancel);
        QCOMPARE(outcomes.size(), std::size_t(1));
        const RunOutcome& o = outcomes[0];
        QVERIFY2(o.status == run_status::kDone, o.error.c_str());
        QVERIFY(monotonic);
        QVERIFY(lastFraction > 0.95);

        const auto rec = f.store->run(o.runId);
        QVERIFY(rec);
        QCOMPARE(rec->status, std::string("done"));
        QCOMPARE(rec->strategyChain, std::string("train > measure > finetune"));
        QCOMPARE(rec->device, std::string("cpu"));
        QVERIFY(rec->startedAt > 0 && rec->finishedAt >= rec->startedAt);
        QCOMPARE(json::parse(rec->configJson), doc);
        const json env = json::parse(rec->environmentJson);
        QCOMPARE(env["dataset_files"].size(), std::size_t(4));
        QCOMPARE(env["dataset_files"][0]["sha256"].get<std::string>().size(), std::size_t(64));
        QCOMPARE(env["seed"].get<int>(), 7);

        for (const char* key : {"accuracy", "accuracy_delta", "loss", "latency_p50_ms", "latency_p95_ms",
                                "latency_p99_ms", "latency_mean_ms", "latency_cv", "throughput_per_s", "batch_size",
                                "model_bytes", "params", "peak_device_bytes", "peak_host_bytes", "compression_ratio",
                                "baseline_accuracy", "latency_p50_ms@b16", "mid.latency_p50_ms", "mid.accuracy",
                                "train_loss", "train_seconds"})
            QVERIFY2(rec->summary.count(key), key);
        QCOMPARE(rec->summary.at("batch_size"), 1.0);
        QCOMPARE(rec->summary.at("compression_ratio"), 1.0);
        QCOMPARE(rec->summary.at("baseline_cached"), 0.0);
        QVERIFY(std::abs(rec->summary.at("accuracy_delta") -
                         (rec->summary.at("accuracy") - rec->summary.at("baseline_accuracy"))) < 1e-12);
        // 500 samples, one epoch of Adam: well above chance (0.1) on 200 test images.
        QVERIFY2(rec->summary.at("accuracy") > 0.4, std::to_string(rec->summary.at("accuracy")).c_str());

        // Every latency sample is stored; the training loss, one sample per logging interval (10 steps, or
        // an epoch's end), continues across baseline and finetune.
        QCOMPARE(f.store->samples(o.runId, "latency_ms/b16").size(), std::size_t(12));
        QCOMPARE(f.store->samples(o.runId, "latency_ms/b1").size(), std::size_t(12));
        QCOMPARE(f.store->samples(o.runId, "mid/latency_ms/b4").size(), std::size_t(5));
        const auto loss = f.store->samples(o.runId, "loss");
        QCOMPARE(loss.size(), std::size_t(2)); // 500/50 baseline steps, then 300/50 finetune steps
        QCOMPARE(loss[0].step, std::int64_t(10));
        QCOMPARE(loss[1].step, std::int64_t(10 + 6));
        QCOMPARE(f.store->samples(o.runId, "val_accuracy").size(), std::size_t(2));
        QCOMPARE(f.store->samples(o.runId, "train_accuracy").size(), std::size_t(2));
        // The live sink saw exactly what the store holds.
        QCOMPARE(static_cast<std::size_t>(f.live.count), f.store->samples(o.runId).size());

        // Per-class recall and confusion counts add up to the evaluated samples.
        double confusion = 0;
        int recalls = 0;
        for (const auto& s : f.store->layerStats(o.runId)) {
            if (s.layer.rfind("class/", 0) == 0 && s.key.rfind("predicted/", 0) == 0) confusion += s.value;
            if (s.key == "recall") ++recalls;
        }
        QCOMPARE(confusion, 200.0);
        QCOMPARE(recalls, 10);
        QVERIFY(f.logged("baseline cached as"));
    }

    // Every timed batch size is placed on the roofline; with the device's peaks in the store the run also
    // gets its fraction of the attainable FLOP/s and a note saying which roofs those are.
    void rooflineFiguresAndFractionsFromStoredPeaks() {
        LATHE_REQUIRE_FASHION_MNIST();
        Fixture f("roofline");
        const json doc = tinyExperiment();
        const ExperimentSpec spec = parseExperiment(doc, "tiny.json");
        const std::string device = backendFor("cpu")->info().name;
        const DevicePeak peaks[] = {{device, "cpu", "gemm_f32_gflops", 1000.0, 1.0, "{}"},
                                    {device, "cpu", "copy_gbps", 20.0, 1.0, "{}"}};
        f.store->setDevicePeaks(peaks);
        Runner runner(*f.store, RunnerOptions{"", m_cacheDir});
        std::atomic<bool> cancel{false};
        const auto outcomes = runner.run(spec, doc, f.events, cancel);
        QVERIFY2(outcomes.at(0).status == run_status::kDone, outcomes.at(0).error.c_str());
        const auto rec = f.store->run(outcomes[0].runId);
        // 2 x (784*256 + 256*128 + 128*10) FLOPs per sample, bytes: the parameters plus 16 x (784 + 10) floats.
        QCOMPARE(rec->summary.at("flops"), 469504.0);
        const double bytes16 = rec->summary.at("model_bytes") + 16.0 * (784 + 10) * 4;
        QVERIFY(std::abs(rec->summary.at("arithmetic_intensity@b16") - 16 * 469504.0 / bytes16) < 1e-9);
        const double gflops16 = 16 * 469504.0 / (rec->summary.at("latency_p50_ms@b16") * 1e-3) * 1e-9;
        QVERIFY(std::abs(rec->summary.at("achieved_tflops@b16") - gflops16 * 1e-3) < 1e-12);
        const double roof = std::min(1000.0, 20.0 * rec->summary.at("arithmetic_intensity@b16"));
        QVERIFY(std::abs(rec->summary.at("roofline_fraction@b16") - gflops16 / roof) < 1e-9);
        QVERIFY(rec->summary.count("mid.roofline_fraction@b4"));
        QVERIFY(rec->notes.at("roofline").find("1000.0 GFLOP/s") != std::string::npos);
    }

    void secondRunUsesTheCachedBaseline() {
        LATHE_REQUIRE_FASHION_MNIST();
        Fixture f("cache");
        const json doc = tinyExperiment();
        const ExperimentSpec spec = parseExperiment(doc, "tiny.json");
        Runner runner(*f.store, RunnerOptions{"", m_cacheDir});
        std::atomic<bool> cancel{false};
        const auto first = runner.run(spec, doc, f.events, cancel);
        const auto second = runner.run(spec, doc, f.events, cancel);
        QCOMPARE(first[0].status, std::string("done"));
        QCOMPARE(second[0].status, std::string("done"));
        QVERIFY(f.logged("baseline from cache"));
        QCOMPARE(second[0].summary.at("baseline_cached"), 1.0);
        // The cached weights are the trained ones: the same baseline accuracy, no baseline loss samples.
        QCOMPARE(second[0].summary.at("baseline_accuracy"), first[0].summary.at("baseline_accuracy"));
        QCOMPARE(f.store->samples(second[0].runId, "loss").size(), std::size_t(1)); // the finetune's 6 steps

        // A different recipe is a different cache entry.
        json other = doc;
        other["baseline"]["train"]["lr"] = 0.002;
        const auto third = runner.run(parseExperiment(other, "tiny.json"), other, f.events, cancel);
        QCOMPARE(third[0].summary.at("baseline_cached"), 0.0);
        int cached = 0;
        for (const auto& e : std::filesystem::directory_iterator(m_cacheDir)) cached += e.path().extension() == ".safetensors";
        QCOMPARE(cached, 2);
    }

    void cancelMidRunIsStoredAsCancelled() {
        LATHE_REQUIRE_FASHION_MNIST();
        Fixture f("cancel");
        json doc = tinyExperiment();
        doc["baseline"]["train"]["limit"] = 1000; // not cached yet: the cancel lands in training
        doc["sweep"] = {{"steps[1].params.lr", {0.001, 0.0001}}};
        const ExperimentSpec spec = parseExperiment(doc, "tiny.json");
        Runner runner(*f.store, RunnerOptions{"", m_cacheDir});
        std::atomic<bool> cancel{false};
        f.events.progress = [&](double fraction, const std::string&, double) {
            if (fraction > 0.05) cancel = true;
        };
        const auto outcomes = runner.run(spec, doc, f.events, cancel);
        QCOMPARE(outcomes.size(), std::size_t(1)); // the second plan never starts
        QCOMPARE(outcomes[0].status, std::string("cancelled"));
        const auto rec = f.store->run(outcomes[0].runId);
        QCOMPARE(rec->status, std::string("cancelled"));
        QVERIFY(rec->finishedAt > 0);
        QCOMPARE(f.store->listRuns().size(), std::size_t(1));
        // The samples produced before the cancel are kept.
        QVERIFY(!f.store->samples(outcomes[0].runId, "loss").empty());
    }

    void measureStepInheritsTheMeasureSection() {
        // A measure step that sets only its label and repeats takes batch sizes, warm-up and rotation
        // from the experiment's measure section (issue: a measure step inherits that section).
        Fixture f("inherit");
        json doc = tinyExperiment();
        doc["steps"] = json::array({json{{"strategy", "measure"}, {"params", {{"label", "mid"}, {"repeats", 5}}}}});
        const ExperimentSpec spec = parseExperiment(doc, "tiny.json");
        QVERIFY(!spec.steps[0].paramsJson.contains("batch_sizes"));
        QCOMPARE(spec.steps[0].params.integers("batch_sizes"), (std::vector<std::int64_t>{1, 16}));
        Runner runner(*f.store, RunnerOptions{"", m_cacheDir});
        std::atomic<bool> cancel{false};
        const auto outcomes = runner.run(spec, doc, f.events, cancel);
        QVERIFY2(outcomes[0].status == run_status::kDone, outcomes[0].error.c_str());
        const auto& sum = outcomes[0].summary;
        QVERIFY(sum.count("mid.latency_p50_ms@b1"));
        QVERIFY(sum.count("mid.latency_p50_ms@b16"));
        QVERIFY(!sum.count("mid.latency_p50_ms@b64")); // the step's own old default is gone
        QCOMPARE(f.store->samples(outcomes[0].runId, "mid/latency_ms/b16").size(), std::size_t(5));
        QCOMPARE(f.store->samples(outcomes[0].runId, "latency_ms/b16").size(), std::size_t(12));
    }

    void notesAreStoredWithTheRun() {
        auto& registry = StrategyRegistry::instance();
        if (!registry.find("test.simulated"))
            registry.addEntry({"test.simulated", "test", "marks its figures as simulated", {}},
                              [](const ParamValues&) -> std::unique_ptr<Strategy> {
                                  return std::make_unique<SimulatingStrategy>();
                              });
        Fixture f("notes");
        json doc = tinyExperiment();
        doc["steps"] = json::array({json{{"strategy", "test.simulated"}}});
        const ExperimentSpec spec = parseExperiment(doc, "tiny.json");
        Runner runner(*f.store, RunnerOptions{"", m_cacheDir});
        std::atomic<bool> cancel{false};
        const auto outcomes = runner.run(spec, doc, f.events, cancel);
        QVERIFY2(outcomes[0].status == run_status::kDone, outcomes[0].error.c_str());
        const auto rec = f.store->run(outcomes[0].runId);
        QCOMPARE(rec->notes.at("simulated"), std::string("test: latency from a model"));
        QCOMPARE(rec->summary.at("simulated"), 1.0);
        QCOMPARE(f.store->notes(outcomes[0].runId).size(), std::size_t(1));
    }

    void stepReplacesTheModelWithALoadedOne() {
        // StepContext::loadModel + replaceModel: later steps and the final measurement see the new model.
        auto& registry = StrategyRegistry::instance();
        if (!registry.find("test.replace"))
            registry.addEntry({"test.replace", "test", "replaces the model with a fresh cnn-2conv", {}},
                              [](const ParamValues&) -> std::unique_ptr<Strategy> {
                                  return std::make_unique<ReplacingStrategy>();
                              });
        Fixture f("replace");
        json doc = tinyExperiment();
        doc["steps"] = json::array({json{{"strategy", "test.replace"}}});
        const ExperimentSpec spec = parseExperiment(doc, "tiny.json");
        Runner runner(*f.store, RunnerOptions{"", m_cacheDir});
        std::atomic<bool> cancel{false};
        const auto outcomes = runner.run(spec, doc, f.events, cancel);
        QVERIFY2(outcomes[0].status == run_status::kDone, outcomes[0].error.c_str());
        auto cnn = Model::fromArchitecture(zooArchitecture("cnn-2conv"));
        QCOMPARE(outcomes[0].summary.at("params"), double(cnn->parameterCount()));
    }

    void paramsNonzeroCountsWhatPruningKept() {
        LATHE_REQUIRE_FASHION_MNIST();
        Fixture f("nonzero");
        json doc = tinyExperiment();
        doc["steps"] = json::array({json{{"strategy", "prune.magnitude"},
                                         {"params", {{"sparsity", 0.5}, {"scope", "global"}, {"execution", "dense"}}}}});
        const ExperimentSpec spec = parseExperiment(doc, "tiny.json");
        Runner runner(*f.store, RunnerOptions{"", m_cacheDir});
        std::atomic<bool> cancel{false};
        const auto outcomes = runner.run(spec, doc, f.events, cancel);
        QVERIFY2(outcomes[0].status == run_status::kDone, outcomes[0].error.c_str());
        // Half of the 784*256 + 256*128 + 128*10 Linear weights are zero (floor(s * count)); the 394 biases stay.
        const auto& summary = outcomes[0].summary;
        QCOMPARE(summary.at("params"), 235146.0);
        QCOMPARE(summary.at("params_nonzero"), 235146.0 - 117376.0);
    }

    void failingStepIsStoredAsFailed() {
        LATHE_REQUIRE_FASHION_MNIST();
        auto& registry = StrategyRegistry::instance();
        if (!registry.find("test.fail"))
            registry.addEntry({"test.fail", "test", "fails on purpose", {}},
                         [](const ParamValues&) -> std::unique_ptr<Strategy> { return std::make_unique<FailingStrategy>(); });
        Fixture f("fail");
        json doc = tinyExperiment();
        doc["steps"] = json::array({json{{"strategy", "test.fail"}}});
        doc["sweep"] = {{"seed", {7, 8}}};
        const ExperimentSpec spec = parseExperiment(doc, "tiny.json");
        Runner runner(*f.store, RunnerOptions{"", m_cacheDir});
        std::atomic<bool> cancel{false};
        const auto outcomes = runner.run(spec, doc, f.events, cancel);
        // A failure does not stop the other plans.
        QCOMPARE(outcomes.size(), std::size_t(2));
        for (const auto& o : outcomes) {
            QCOMPARE(o.status, std::string("failed"));
            QCOMPARE(o.error, std::string("test.fail: deliberate failure in step"));
            const auto rec = f.store->run(o.runId);
            QCOMPARE(rec->status, std::string("failed"));
            QCOMPARE(rec->error, std::string("test.fail: deliberate failure in step"));
            QVERIFY(rec->summary.empty());
        }
        QVERIFY(f.store->run(outcomes[1].runId)->name.find("[seed=8]") != std::string::npos);
    }

    void missingDatasetFolderFailsTheRun() {
        Fixture f("nodata");
        json doc = tinyExperiment();
        doc["dataset"]["name"] = "./no-such-folder";
        const ExperimentSpec spec = parseExperiment(doc, "inline"); // no file: folder not checked up front
        Runner runner(*f.store, RunnerOptions{"", m_cacheDir});
        std::atomic<bool> cancel{false};
        const auto outcomes = runner.run(spec, doc, f.events, cancel);
        QCOMPARE(outcomes[0].status, std::string("failed"));
        QVERIFY2(outcomes[0].error.find("no-such-folder") != std::string::npos, outcomes[0].error.c_str());
        QCOMPARE(f.store->run(outcomes[0].runId)->status, std::string("failed"));
    }

private:
    std::string m_cacheDir;
};

LATHE_TEST_GUILESS_MAIN(TestRunner)
#include "test_runner.moc"

// A StepContext over a zoo model, the CPU backend and the synthetic band images, with what a step reports
// (series, summary, notes, layer stats, training hooks) collected for the strategy tests.
#pragma once

#include "engine/backends/registry.h"
#include "engine/experiment/runner.h"
#include "engine/experiment/spec.h"
#include "engine/io/model_io.h"
#include "engine/core/rng.h"
#include "engine/measure/latency.h"
#include "engine/nn/model_edit.h"
#include "engine/store/run_store.h"
#include "engine/io/zoo.h"
#include "engine/strategies/strategy.h"
#include "tests/nn/band_dataset.h"
#include "tests/support/test_support.h"

#include <QtTest>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace lathe::test {

// Keeps every sample pushed.
class CollectingSink final : public MetricSink {
public:
    void push(const MetricSample& s) override { samples.push_back(s); }
    // (step, value) of one series, in push order
    std::vector<std::pair<std::int64_t, double>> series(const std::string& name) const {
        std::vector<std::pair<std::int64_t, double>> out;
        for (const auto& s : samples)
            if (s.seriesName() == name) out.emplace_back(s.step, s.value);
        return out;
    }
    std::vector<MetricSample> samples;
};

// A StepContext over a model and the CPU backend, with summary, notes and layer stats collected here.
struct ContextFixture {
    std::unique_ptr<Model> model;
    DatasetSplits data;
    CollectingSink sink;
    std::map<std::string, double> summary;
    std::map<std::string, std::string> notes;
    std::vector<std::tuple<std::string, std::string, double>> stats;
    std::vector<RunTrainHook> hooks;
    std::int64_t trainStep = 0, trainEpoch = 0;
    TrainingState training;
    StepContext ctx;

    explicit ContextFixture(const std::string& zoo) {
        model = Model::fromArchitecture(zooArchitecture(zoo));
        model->initialize(*cpuBackend(), 11);
        model->to(*cpuBackend());
        ctx.modelSlot = &model;
        ctx.backendPtr = cpuBackend().get();
        data.train = bands(300, 1);
        data.test = bands(60, 2);
        ctx.dataPtr = &data;
        ctx.trainHooks = &hooks;
        ctx.sinkPtr = &sink;
        ctx.summaryPtr = &summary;
        ctx.notesPtr = &notes;
        ctx.layerStat = [this](const std::string& l, const std::string& k, double v) { stats.emplace_back(l, k, v); };
        ctx.trainStep = &trainStep;
        ctx.trainEpoch = &trainEpoch;
        ctx.training = &training;
        ctx.loadModel = [](const ModelRef& ref) { return lathe::loadModel(ref, 42, *cpuBackend()); };
    }

    // The per-layer stat a step reported, or NaN when it reported none.
    double stat(const std::string& layer, const std::string& key) const {
        for (const auto& [l, k, v] : stats)
            if (l == layer && k == key) return v;
        return std::numeric_limits<double>::quiet_NaN();
    }
};

// The largest |a - b| relative to the largest |a|: how far a converted model's logits moved from the original's.
inline double relativeDiff(const std::vector<float>& a, const std::vector<float>& b) {
    double largest = 0, diff = 0;
    for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
        largest = std::max(largest, std::fabs(double(a[i])));
        diff = std::max(diff, std::fabs(double(a[i]) - double(b[i])));
    }
    return largest > 0 ? diff / largest : diff;
}

// The defaults of a strategy that measures inside its step (before and after), with the timing made as
// short as possible: one batch of 4, 3 repeats, no accuracy. For tests of what the step does, not of timing.
inline ParamValues quickMeasuringDefaults(const std::string& strategy) {
    ParamValues v = defaultValues(*StrategyRegistry::instance().find(strategy));
    v.set("batch_sizes", std::vector<std::int64_t>{4});
    v.set("warmup", std::int64_t(0));
    v.set("repeats", std::int64_t(3));
    v.set("rotate_batches", std::int64_t(1));
    v.set("accuracy", false);
    return v;
}

// The parameter called name, downloaded.
inline std::vector<float> paramValues(Model& m, const std::string& name) {
    for (const auto& np : m.namedParameters())
        if (np.name == name) return cpuBackend()->downloadF32(np.param->value);
    throw ConfigError("no parameter " + name);
}

// The logits of the first 8 samples of data (inference).
inline std::vector<float> firstLogits(Model& m, const Dataset& data) {
    const auto batches = makeInputBatches(*cpuBackend(), m, data, 8, 1);
    return cpuBackend()->downloadF32(m.forward(batches[0], ForwardContext{}));
}

// A model of the given layers on 1x28x28 inputs (Fashion-MNIST's), PyTorch-default weights drawn from seed 5,
// on the CPU backend.
inline std::unique_ptr<Model> customModel(const nlohmann::json& layers, std::int64_t classes = 10) {
    auto m = Model::fromArchitecture({{"name", "custom"},
                                      {"input", {{"shape", {1, 28, 28}}, {"scale", 1.0 / 255}}},
                                      {"classes", classes},
                                      {"layers", layers}});
    m->initialize(*cpuBackend(), 5);
    m->to(*cpuBackend());
    return m;
}

// Batch-norm scales and shifts in [-1.5, 1.5], running means in [-0.5, 0.5] and variances in [0.2, 2], so that
// what a step does with them shows (fresh norms are the identity).
inline void randomizeNorms(Model& m) {
    Backend& be = *cpuBackend();
    Rng rng(77);
    auto fill = [&](Tensor& t, float lo, float hi) {
        std::vector<float> v(static_cast<std::size_t>(t.numel()));
        for (auto& f : v) f = static_cast<float>(lo + (hi - lo) * rng.uniform());
        be.copyFromHost(t, v.data());
    };
    for (const LayerInfo& info : ModelEditor(m).list()) {
        if (info.type != "batchnorm2d") continue;
        Layer& l = ModelEditor(m).layer(info.path);
        for (Parameter* p : l.parameters()) fill(p->value, -1.5f, 1.5f);
        for (Buffer* b : l.buffers())
            if (b->name == "running_mean") fill(b->value, -0.5f, 0.5f);
            else if (b->name == "running_var") fill(b->value, 0.2f, 2.0f);
    }
}

// An experiment over the Fashion-MNIST MLP with one step, for validation tests.
inline nlohmann::json experimentWith(const nlohmann::json& step, const std::string& name = "strategy-test") {
    return {{"name", name},
            {"model", {{"zoo", "mlp-784-256-128-10"}}},
            {"dataset", {{"name", "fashion-mnist"}}},
            {"steps", nlohmann::json::array({step})}};
}

// An experiment over a zoo model with one step and its params, for validation tests.
inline nlohmann::json experimentOnZoo(const std::string& zoo, const std::string& strategy, const nlohmann::json& params) {
    return {{"name", "t"},
            {"model", {{"zoo", zoo}}},
            {"dataset", {{"name", "fashion-mnist"}}},
            {"steps", {{{"strategy", strategy}, {"params", params}}}}};
}

// Validation of doc finds exactly one problem, at pointer, with message (unless message is empty).
inline void expectSingleIssue(const nlohmann::json& doc, const QString& pointer, const QString& message) {
    const auto issues = validateExperiment(doc);
    QCOMPARE(issues.size(), std::size_t(1));
    QCOMPARE(QString::fromStdString(issues[0].pointer), pointer);
    if (!message.isEmpty()) QCOMPARE(QString::fromStdString(issues[0].message), message);
}

// Runs one step with default params on the saved model `modelPath` (no signature at validation, so the
// step finds out at the run what it cannot do) through the Runner into a store under `dir`, on 50 test
// images; returns the outcome and the error the store kept for the run.
inline std::pair<RunOutcome, std::string> runStepOnSavedModel(const std::string& dir, const std::string& modelPath,
                                                              const std::string& strategy) {
    const nlohmann::json doc = {{"name", "saved-model"},
                                {"model", {{"path", modelPath}}},
                                {"dataset", {{"name", "fashion-mnist"}, {"split", "test"}, {"limit", 50}}},
                                {"device", "cpu"},
                                {"steps", {{{"strategy", strategy}, {"params", nlohmann::json::object()}}}},
                                {"measure", {{"batch_sizes", {1}}, {"warmup", 0}, {"repeats", 2}}}};
    if (!validateExperiment(doc).empty()) throw ConfigError("runStepOnSavedModel: the experiment does not validate");
    RunStore store(dir + "/runs.sqlite");
    Runner runner(store, RunnerOptions{"", dir + "/cache"});
    std::atomic<bool> cancel{false};
    const auto outcomes = runner.run(parseExperiment(doc, "inline"), doc, RunnerEvents{}, cancel);
    if (outcomes.size() != 1) throw ConfigError("runStepOnSavedModel: expected one run");
    return {outcomes[0], store.run(outcomes[0].runId)->error};
}

// Saves m, loads it back (into *loaded when given) and says whether the copy has m's parameter count and
// exactly m's logits on the first samples of data.
inline bool reloadsIdentically(Model& m, const Dataset& data, const std::string& name,
                               std::unique_ptr<Model>* loaded = nullptr) {
    const std::string path = tempDir() + "/" + name;
    saveModel(m, path);
    auto copy = loadModel(path);
    copy->to(*cpuBackend());
    const bool same = copy->parameterCount() == m.parameterCount() && firstLogits(*copy, data) == firstLogits(m, data);
    if (loaded) *loaded = std::move(copy);
    return same;
}

} // namespace lathe::test

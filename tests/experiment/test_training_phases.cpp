// Training phases of one run through the strategies: `train` for K steps then `finetune` with
// optimizer_state "continue" for M steps equals K + M steps of one `train`, bit for bit on the CPU;
// "fresh" (the default) does not continue; a layer replaced between the phases starts afresh.
#include "engine/backends/registry.h"
#include "engine/core/errors.h"
#include "engine/experiment/spec.h"
#include "engine/nn/model_edit.h"
#include "engine/strategies/strategy.h"
#include "tests/nn/band_dataset.h"
#include "tests/support/test_support.h"

#include <QtTest>

using namespace lathe;
using namespace lathe::test;
using json = nlohmann::json;

namespace {

const char* kMlp = R"({"name":"mlp-dropout","input":{"shape":[1,28,28]},"classes":10,"layers":[{"type":"flatten"},
  {"type":"linear","in":784,"out":24},{"type":"relu"},{"type":"dropout","p":0.2},{"type":"linear","in":24,"out":24},
  {"type":"relu"},{"type":"linear","in":24,"out":10}]})";

class Samples final : public MetricSink {
public:
    void push(const MetricSample& s) override {
        if (s.seriesName() == "loss") lossSteps.push_back(s.step);
    }
    std::vector<std::int64_t> lossSteps;
};

// The state a Runner keeps for one run, and a StepContext over it.
struct Run {
    Backend& be = *cpuBackend();
    std::unique_ptr<Model> model = Model::fromArchitecture(json::parse(kMlp));
    DatasetSplits data{bands(300, 1), bands(60, 2)};
    Samples sink;
    std::map<std::string, double> summary;
    std::map<std::string, std::string> notes;
    std::vector<std::string> logs;
    std::int64_t trainStep = 0, trainEpoch = 0;
    TrainingState training;

    Run() { model->initialize(be, 5); }

    void apply(const std::string& strategy, int stepIndex, const json& params) {
        const StrategySchema* schema = StrategyRegistry::instance().find(strategy);
        ParamValues values;
        const auto issues = validateParams(*schema, params, "/params", nullptr, &values);
        if (!issues.empty()) throw ConfigError(formatIssues("test", issues));
        StepContext ctx;
        ctx.modelSlot = &model;
        ctx.backendPtr = &be;
        ctx.dataPtr = &data;
        ctx.sinkPtr = &sink;
        ctx.runId = 1;
        ctx.seed = 42;
        ctx.log = [this](LogLevel, const std::string& m) { logs.push_back(m); };
        ctx.summaryPtr = &summary;
        ctx.notesPtr = &notes;
        ctx.trainStep = &trainStep;
        ctx.trainEpoch = &trainEpoch;
        ctx.training = &training;
        ctx.stepIndex = stepIndex;
        StrategyRegistry::instance().create(strategy, values)->apply(ctx);
    }

    std::vector<std::vector<float>> weights() {
        std::vector<std::vector<float>> out;
        for (const auto& np : model->namedParameters()) out.push_back(be.downloadF32(np.param->value));
        return out;
    }
    bool logged(const std::string& needle) const {
        for (const auto& l : logs)
            if (l.find(needle) != std::string::npos) return true;
        return false;
    }
};

json phase(std::int64_t maxSteps) {
    return {{"epochs", 5}, {"batch_size", 32}, {"lr", 0.002}, {"optimizer", "adam"}, {"max_steps", maxSteps}};
}

} // namespace

class TestTrainingPhases : public QObject {
    Q_OBJECT

private slots:
    void defaultIsFresh();
    void continueEqualsOneTraining();
    void replacedLayerStartsAfresh();
    void continueWithoutEarlierPhase();
};

void TestTrainingPhases::defaultIsFresh() {
    const StrategySchema* schema = StrategyRegistry::instance().find("finetune");
    QVERIFY(schema);
    const ParamField* f = schema->field("optimizer_state");
    QVERIFY(f);
    QCOMPARE(f->defaultJson, std::string("\"fresh\""));
    QCOMPARE(f->choices, (std::vector<std::string>{"fresh", "continue"}));
    QVERIFY(!StrategyRegistry::instance().find("train")->field("optimizer_state"));
}

// The data order continues because finetune "continue" takes the seed and the step offset of the phase
// before it (TrainingState); the reference is one `train` step at the same chain position (stepIndex 0).
void TestTrainingPhases::continueEqualsOneTraining() {
    const std::int64_t k = 13, m = 9; // the phases meet in the middle of the second epoch (10 batches each)
    Run whole;
    whole.apply("train", 0, phase(k + m));

    Run phased;
    phased.apply("train", 0, phase(k));
    json ft = phase(m);
    ft["optimizer_state"] = "continue";
    phased.apply("finetune", 1, ft);
    QCOMPARE(phased.weights(), whole.weights());
    QVERIFY(phased.logged("continuing the optimizer state and data order after step 13"));
    QCOMPARE(phased.training.nextStep, k + m);
    QCOMPARE(phased.trainStep, k + m);
    // "loss" samples of the two phases follow each other: one per 10-step interval or epoch end.
    QCOMPARE(phased.sink.lossSteps, (std::vector<std::int64_t>{10, 13, 20, 22}));

    Run fresh;
    fresh.apply("train", 0, phase(k));
    ft["optimizer_state"] = "fresh";
    fresh.apply("finetune", 1, ft);
    QVERIFY(fresh.weights() != whole.weights());
    QCOMPARE(fresh.training.optimizer.find("layers.1.weight")->steps, m);
}

void TestTrainingPhases::replacedLayerStartsAfresh() {
    const std::int64_t k = 10, m = 6;
    Run run;
    run.apply("train", 0, phase(k));
    QCOMPARE(run.training.optimizer.find("layers.4.weight")->steps, k);
    ModelEditor ed(*run.model);
    ed.replace("layers.4", ed.create({{"type", "linear"}, {"in", 24}, {"out", 24}}, 77)); // same name and shape
    json ft = phase(m);
    ft["optimizer_state"] = "continue";
    run.apply("finetune", 1, ft);
    QCOMPARE(run.training.optimizer.find("layers.4.weight")->steps, m);
    QCOMPARE(run.training.optimizer.find("layers.4.bias")->steps, m);
    QCOMPARE(run.training.optimizer.find("layers.1.weight")->steps, k + m);
    QCOMPARE(run.training.optimizer.find("layers.6.weight")->steps, k + m);
}

// A baseline read from the cache leaves no state: "continue" says so and starts afresh.
void TestTrainingPhases::continueWithoutEarlierPhase() {
    Run run;
    json ft = phase(4);
    ft["optimizer_state"] = "continue";
    run.apply("finetune", 1, ft);
    QVERIFY(run.logged("no earlier training phase in this run to continue"));
    QCOMPARE(run.training.optimizer.find("layers.1.weight")->steps, 4LL);
    // A different batch size continues the moments but not the data order.
    json other = phase(3);
    other["optimizer_state"] = "continue";
    other["batch_size"] = 16;
    run.apply("finetune", 2, other);
    QVERIFY(run.logged("the optimizer state continues, the data order starts anew"));
    QCOMPARE(run.training.optimizer.find("layers.1.weight")->steps, 7LL);
}

QTEST_GUILESS_MAIN(TestTrainingPhases)
#include "test_training_phases.moc"

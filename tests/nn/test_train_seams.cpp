// The training seams: a loss passed in, hooks after backward and after the optimizer step, losses read
// back once per logging interval, and optimizer state keyed by parameter name, carried between phases.
#include "engine/backends/registry.h"
#include "engine/core/errors.h"
#include "engine/nn/loss.h"
#include "engine/nn/model_edit.h"
#include "engine/nn/optim.h"
#include "engine/nn/trainer.h"
#include "tests/nn/band_dataset.h"
#include "tests/support/test_support.h"

#include <QtTest>

using namespace lathe;
using namespace lathe::test;

namespace {

// A residual MLP with dropout on 28x28 inputs: blocks, randomness per step and every optimizer path.
const char* kResidualMlp = R"({"name":"residual-mlp","input":{"shape":[1,28,28],"scale":0.00392156862745098,
  "mean":0.286,"std":0.353},"classes":10,"layers":[{"type":"flatten"},{"type":"linear","in":784,"out":32},
  {"type":"relu"},{"type":"residual","layers":[{"type":"linear","in":32,"out":32},{"type":"gelu"},
  {"type":"dropout","p":0.2}]},{"type":"layernorm","dim":32},{"type":"linear","in":32,"out":16},{"type":"relu"},
  {"type":"linear","in":16,"out":16},{"type":"relu"},{"type":"linear","in":16,"out":10}]})";

std::unique_ptr<Model> residualMlp(Backend& be, std::uint64_t seed) {
    auto m = Model::fromArchitecture(nlohmann::json::parse(kResidualMlp));
    m->initialize(be, seed);
    return m;
}

std::vector<std::vector<float>> weights(Model& m, Backend& be) {
    std::vector<std::vector<float>> out;
    for (const auto& np : m.namedParameters()) out.push_back(be.downloadF32(np.param->value));
    return out;
}

// Cross-entropy that also records what the trainer hands it.
class RecordingLoss final : public Loss {
public:
    std::string name() const override { return "recording"; }
    void compute(Backend& be, const Tensor& logits, const LossBatch& batch, Tensor& losses, Tensor& dlogits,
                 float gradScale) override {
        ++calls;
        lastStep = batch.step;
        inputRowsMatch = inputRowsMatch && batch.x.dim(0) == logits.dim(0) && batch.labels.dim(0) == logits.dim(0);
        m_ce.compute(be, logits, batch, losses, dlogits, gradScale);
    }
    int calls = 0;
    std::int64_t lastStep = 0;
    bool inputRowsMatch = true;

private:
    CrossEntropyLoss m_ce;
};

TrainParams smallParams(const std::string& optimizer) {
    TrainParams p;
    p.epochs = 4;
    p.batchSize = 32; // 300 samples: 10 batches per epoch, the last one of 12
    p.optimizer = optimizer;
    p.lr = optimizer == "sgd" ? 0.05f : 0.002f;
    p.weightDecay = optimizer == "adamw" ? 0.01f : 0.0f;
    p.seed = 11;
    return p;
}

} // namespace

class TestTrainSeams : public QObject {
    Q_OBJECT

private slots:
    void explicitCrossEntropyIsTheDefault();
    void lossAndHooksEveryStep();
    void lossReadBackPerInterval();
    void continuationIsBitIdentical_data();
    void continuationIsBitIdentical();
    void stateFollowsNamesNotLayers();
    void stateEntryRules();
};

// train() without a loss is train() with CrossEntropyLoss: same weights, bit for bit.
void TestTrainSeams::explicitCrossEntropyIsTheDefault() {
    Backend& be = *cpuBackend();
    const Dataset data = bands(300, 1);
    TrainParams p = smallParams("adam");
    p.epochs = 1;
    auto a = residualMlp(be, 3);
    auto b = residualMlp(be, 3);
    train(*a, be, data, p);
    CrossEntropyLoss ce;
    OptimizerState state;
    train(*b, be, data, p, {}, ce, state);
    QCOMPARE(weights(*a, be), weights(*b, be));
    QCOMPARE(state.size(), a->namedParameters().size());
}

void TestTrainSeams::lossAndHooksEveryStep() {
    Backend& be = *cpuBackend();
    const Dataset data = bands(300, 2);
    auto m = residualMlp(be, 4);
    TrainParams p = smallParams("adam");
    p.epochs = 2;
    RecordingLoss loss;
    OptimizerState state;
    // A pruning-like mask: afterBackward zeroes the gradient of the first linear's weight, so Adam never
    // moves it; afterOptimizerStep sees every step after the update.
    const std::string masked = "layers.1.weight";
    Parameter* maskedParam = nullptr;
    for (const auto& np : m->namedParameters())
        if (np.name == masked) maskedParam = np.param;
    QVERIFY(maskedParam);
    const std::vector<float> before = be.downloadF32(maskedParam->value);
    std::vector<char> order;
    TrainCallbacks cb;
    cb.afterBackward = [&](Model& model) {
        QCOMPARE(&model, m.get());
        order.push_back('b');
        be.fill(maskedParam->grad, 0.0f);
    };
    cb.afterOptimizerStep = [&](Model&) { order.push_back('o'); };
    const TrainResult r = train(*m, be, data, p, cb, loss, state);
    QCOMPARE(r.steps, 20LL);
    QCOMPARE(loss.calls, 20);
    QCOMPARE(loss.lastStep, 20LL);
    QVERIFY(loss.inputRowsMatch);
    QCOMPARE(order.size(), std::size_t{40});
    for (std::size_t i = 0; i < order.size(); ++i) QCOMPARE(order[i], i % 2 == 0 ? 'b' : 'o');
    QCOMPARE(be.downloadF32(maskedParam->value), before);
    // The unmasked layers did train.
    QVERIFY(state.find("layers.5.weight") && state.find("layers.5.weight")->steps == 20);
}

// Losses stay on the device for an interval: the epoch figures and weights do not depend on the interval,
// and each report is the mean of its interval's per-sample losses, at the interval's last step.
void TestTrainSeams::lossReadBackPerInterval() {
    Backend& be = *cpuBackend();
    const Dataset data = bands(300, 3);
    TrainParams p = smallParams("sgd");
    p.epochs = 2;
    struct Outcome {
        std::vector<StepReport> steps;
        std::vector<EpochReport> epochs;
        std::vector<std::vector<float>> w;
    };
    auto run = [&](int interval) {
        auto m = residualMlp(be, 5);
        p.logInterval = interval;
        Outcome o;
        TrainCallbacks cb;
        cb.onStep = [&](const StepReport& r) { o.steps.push_back(r); };
        cb.onEpoch = [&](const EpochReport& e) { o.epochs.push_back(e); };
        train(*m, be, data, p, cb);
        o.w = weights(*m, be);
        return o;
    };
    const Outcome every = run(1), seven = run(7);
    QCOMPARE(every.steps.size(), std::size_t{20});
    QCOMPARE(seven.w, every.w);
    QCOMPARE(seven.epochs.size(), std::size_t{2});
    for (std::size_t e = 0; e < 2; ++e) {
        QCOMPARE(seven.epochs[e].trainLoss, every.epochs[e].trainLoss);
        QCOMPARE(seven.epochs[e].trainAccuracy, every.epochs[e].trainAccuracy);
    }
    // Intervals restart at each epoch: steps 7, 10 | 17, 20.
    const std::vector<std::int64_t> ends = {7, 10, 17, 20}, counts = {7, 3, 7, 3};
    QCOMPARE(seven.steps.size(), ends.size());
    for (std::size_t i = 0; i < ends.size(); ++i) {
        const StepReport& r = seven.steps[i];
        QCOMPARE(r.step, ends[i]);
        QCOMPARE(r.steps, counts[i]);
        double sum = 0, rows = 0;
        for (std::int64_t s = r.step - r.steps + 1; s <= r.step; ++s) {
            const double n = (s % 10 == 0) ? 12 : 32; // the last batch of an epoch holds 12 samples
            sum += every.steps[static_cast<std::size_t>(s - 1)].loss * n;
            rows += n;
        }
        QVERIFY2(std::abs(r.loss - sum / rows) < 1e-9 * std::max(1.0, std::abs(r.loss)),
                 qPrintable(QString("interval %1: %2 vs %3").arg(i).arg(r.loss).arg(sum / rows)));
    }
    p.logInterval = 0;
    auto m = residualMlp(be, 5);
    QVERIFY_THROWS_EXCEPTION(ConfigError, train(*m, be, data, p));
}

void TestTrainSeams::continuationIsBitIdentical_data() {
    QTest::addColumn<QString>("optimizer");
    QTest::addColumn<int>("firstSteps");
    QTest::newRow("adam-mid-epoch") << "adam" << 7;
    QTest::newRow("sgd-epoch-boundary") << "sgd" << 10;
    QTest::newRow("adamw-second-epoch") << "adamw" << 13;
}

// K steps, then a phase with startStep = K and the same seed and state: the same weights as K + M steps in
// one go (the data order continues, dropout masks follow the global step, Adam's step counts continue).
void TestTrainSeams::continuationIsBitIdentical() {
    QFETCH(QString, optimizer);
    QFETCH(int, firstSteps);
    Backend& be = *cpuBackend();
    const Dataset data = bands(300, 4);
    const std::int64_t k = firstSteps, mSteps = 15;
    TrainParams p = smallParams(optimizer.toStdString());

    auto whole = residualMlp(be, 6);
    p.maxSteps = k + mSteps;
    train(*whole, be, data, p);

    auto phased = residualMlp(be, 6);
    OptimizerState state;
    CrossEntropyLoss ce;
    p.maxSteps = k;
    const TrainResult first = train(*phased, be, data, p, {}, ce, state);
    QCOMPARE(first.endStep, k);
    p.maxSteps = mSteps;
    p.startStep = first.endStep;
    std::vector<StepReport> reports;
    TrainCallbacks cb;
    cb.onStep = [&](const StepReport& r) { reports.push_back(r); };
    const TrainResult second = train(*phased, be, data, p, cb, ce, state);
    QCOMPARE(second.steps, mSteps);
    QCOMPARE(second.endStep, k + mSteps);
    QCOMPARE(reports.back().step, k + mSteps);
    QCOMPARE(weights(*phased, be), weights(*whole, be));
    QCOMPARE(state.find("layers.1.weight")->steps, k + mSteps);

    // The same second phase with a fresh state ends elsewhere: the check above is not vacuous.
    auto fresh = residualMlp(be, 6);
    OptimizerState s1, s2;
    p.startStep = 0;
    p.maxSteps = k;
    train(*fresh, be, data, p, {}, ce, s1);
    p.startStep = k;
    p.maxSteps = mSteps;
    train(*fresh, be, data, p, {}, ce, s2);
    QVERIFY(weights(*fresh, be) != weights(*whole, be));
}

// Between phases layers are replaced, shrunk, inserted and removed; the state follows names and the
// parameter objects, so no layer ever inherits another layer's moments.
void TestTrainSeams::stateFollowsNamesNotLayers() {
    Backend& be = *cpuBackend();
    const Dataset data = bands(300, 5);
    auto m = residualMlp(be, 7);
    TrainParams p = smallParams("adam");
    p.epochs = 1; // 10 steps per phase
    OptimizerState state;
    CrossEntropyLoss ce;
    train(*m, be, data, p, {}, ce, state);
    QCOMPARE(state.size(), m->namedParameters().size());
    QCOMPARE(state.find("layers.3.layers.0.weight")->steps, 10LL);

    ModelEditor ed(*m);
    // Same name, same shape, a new layer: fresh state.
    ed.replace("layers.3.layers.0", ed.create({{"type", "linear"}, {"in", 32}, {"out", 32}}, 99));
    // Shrunk: layers.5 (32 -> 16) keeps 12 outputs, layers.7 (16 -> 16) takes 12 inputs: both fresh.
    ed.shrinkLinearOutputs("layers.5", {0, 1, 2, 3, 5, 6, 8, 9, 10, 11, 13, 15});
    train(*m, be, data, p, {}, ce, state);
    QCOMPARE(state.find("layers.3.layers.0.weight")->steps, 10LL);
    QCOMPARE(state.find("layers.3.layers.0.bias")->steps, 10LL);
    QCOMPARE(state.find("layers.5.weight")->steps, 10LL);
    QCOMPARE(state.find("layers.5.weight")->shape, (Shape{12, 32}));
    QCOMPARE(state.find("layers.5.weight")->tensors.at(0).shape(), (Shape{12, 32}));
    QCOMPARE(state.find("layers.7.weight")->steps, 10LL);
    QCOMPARE(state.find("layers.7.weight")->shape, (Shape{16, 12}));
    QCOMPARE(state.find("layers.1.weight")->steps, 20LL); // untouched: continued
    QCOMPARE(state.find("layers.9.weight")->steps, 20LL);

    // An edit that breaks the shapes (layers.9 needs 16 inputs, layers.7 alone makes them) is undone.
    QVERIFY_THROWS_EXCEPTION(ConfigError, ed.remove("layers.7"));
    QCOMPARE(ed.layer("layers.7").config()["in"].get<int>(), 12);
    QCOMPARE(m->namedParameters().size(), state.size());

    // Layers that move take the names of others: insert a dropout before layers.9, so the last linear
    // becomes layers.10. Its old name layers.9 is dropped; layers.10 is fresh.
    ed.insertBefore("layers.9", ed.create({{"type", "dropout"}, {"p", 0.1}}, 0));
    train(*m, be, data, p, {}, ce, state);
    QVERIFY(!state.find("layers.9.weight"));
    QCOMPARE(state.find("layers.10.weight")->steps, 10LL);
    QCOMPARE(state.size(), m->namedParameters().size());

    // A removal hands a name to a different layer of the same shape: the second 16 -> 16 linear of this
    // chain becomes layers.3 and must not inherit the removed layer's moments.
    auto chain = Model::fromArchitecture(nlohmann::json::parse(R"({"name":"chain","input":{"shape":[1,28,28]},
      "classes":10,"layers":[{"type":"flatten"},{"type":"linear","in":784,"out":16},{"type":"relu"},
      {"type":"linear","in":16,"out":16},{"type":"relu"},{"type":"linear","in":16,"out":16},{"type":"relu"},
      {"type":"linear","in":16,"out":10}]})"));
    chain->initialize(be, 8);
    OptimizerState cs;
    train(*chain, be, data, p, {}, ce, cs);
    ModelEditor ce2(*chain);
    ce2.remove("layers.3"); // the linear 16 -> 16
    ce2.remove("layers.3"); // its relu: the second 16 -> 16 linear is now layers.3
    QCOMPARE(ce2.layer("layers.3").type(), std::string("linear"));
    train(*chain, be, data, p, {}, ce, cs);
    QCOMPARE(cs.find("layers.3.weight")->steps, 10LL); // fresh, not the removed layer's 10 + 10
    QCOMPARE(cs.find("layers.1.weight")->steps, 20LL);
    QVERIFY(!cs.find("layers.7.weight"));
    QCOMPARE(cs.size(), chain->namedParameters().size());
}

// The entry rules on their own: name, parameter object, shape and optimizer must all match.
void TestTrainSeams::stateEntryRules() {
    Backend& be = *cpuBackend();
    Parameter a, b;
    a.value = be.upload(randomVector(6, 1), {2, 3});
    a.grad = be.upload(randomVector(6, 2), {2, 3});
    b.value = be.upload(randomVector(6, 3), {2, 3});
    b.grad = be.upload(randomVector(6, 4), {2, 3});
    OptimizerState state;
    auto adam = makeAdam(AdamParams{});
    adam->step(be, {{"layers.0.weight", &a}}, state);
    adam->step(be, {{"layers.0.weight", &a}}, state);
    QCOMPARE(state.find("layers.0.weight")->steps, 2LL);
    QVERIFY(a.uid != b.uid);
    // Another parameter object under the same name and shape: fresh.
    adam->step(be, {{"layers.0.weight", &b}}, state);
    QCOMPARE(state.find("layers.0.weight")->steps, 1LL);
    QCOMPARE(state.find("layers.0.weight")->paramUid, b.uid);
    // Another optimizer: fresh (sgd's velocity is not adam's moment).
    makeSgd(SgdParams{0.1f, 0.9f, 0.0f, false})->step(be, {{"layers.0.weight", &b}}, state);
    QCOMPARE(state.find("layers.0.weight")->optimizer, std::string("sgd"));
    QCOMPARE(state.find("layers.0.weight")->tensors.size(), std::size_t{1});
    // Another shape: fresh.
    b.value = be.upload(randomVector(4, 5), {4});
    b.grad = be.upload(randomVector(4, 6), {4});
    makeSgd(SgdParams{0.1f, 0.9f, 0.0f, false})->step(be, {{"layers.0.weight", &b}}, state);
    QCOMPARE(state.find("layers.0.weight")->steps, 1LL);
    QCOMPARE(state.find("layers.0.weight")->shape, (Shape{4}));
    state.retainOnly({});
    QCOMPARE(state.size(), std::size_t{0});
}

QTEST_GUILESS_MAIN(TestTrainSeams)
#include "test_train_seams.moc"

// `train` and `finetune`: one training loop, two sets of defaults. `train` carries the fields of a
// baseline's training; `finetune` continues from the current weights with a gentler default rate.
#include "engine/strategies/builtin/builtin.h"

#include "engine/core/errors.h"
#include "engine/core/rng.h"
#include "engine/measure/model_measure.h"

#include <algorithm>
#include <cmath>

namespace lathe {
namespace {

std::vector<ParamField> trainingFields(const char* epochs, const char* lr) {
    std::vector<ParamField> f;
    ParamField p;

    p = {};
    p.name = "epochs";
    p.type = ParamType::Integer;
    p.help = "passes over the training split";
    p.min = 1;
    p.max = 1000;
    p.unit = "epochs";
    p.defaultJson = epochs;
    f.push_back(p);

    p = {};
    p.name = "batch_size";
    p.type = ParamType::Integer;
    p.help = "samples per optimizer step";
    p.min = 1;
    p.max = 65536;
    p.unit = "samples";
    p.defaultJson = "128";
    f.push_back(p);

    p = {};
    p.name = "optimizer";
    p.type = ParamType::Choice;
    p.help = "adam, adamw (decoupled weight decay) or sgd (with momentum)";
    p.choices = {"adam", "adamw", "sgd"};
    p.defaultJson = "\"adam\"";
    f.push_back(p);

    p = {};
    p.name = "lr";
    p.type = ParamType::Number;
    p.help = "learning rate";
    p.min = 0;
    p.minExclusive = true;
    p.max = 10;
    p.defaultJson = lr;
    f.push_back(p);

    p = {};
    p.name = "momentum";
    p.type = ParamType::Number;
    p.help = "SGD momentum (ignored by adam and adamw)";
    p.min = 0;
    p.max = 1;
    p.maxExclusive = true;
    p.defaultJson = "0.9";
    f.push_back(p);

    p = {};
    p.name = "weight_decay";
    p.type = ParamType::Number;
    p.help = "L2 penalty (adam, sgd) or decoupled decay (adamw)";
    p.min = 0;
    p.max = 1;
    p.defaultJson = "0";
    f.push_back(p);

    p = {};
    p.name = "limit";
    p.type = ParamType::Integer;
    p.help = "train on the first N training samples (0: all)";
    p.min = 0;
    p.max = 1e9;
    p.unit = "samples";
    p.defaultJson = "0";
    f.push_back(p);

    p = {};
    p.name = "max_steps";
    p.type = ParamType::Integer;
    p.help = "stop after this many optimizer steps (0: no limit)";
    p.min = 0;
    p.max = 1e12;
    p.unit = "steps";
    p.defaultJson = "0";
    f.push_back(p);
    return f;
}

class TrainingStrategy final : public Strategy {
public:
    TrainingStrategy(std::string name, const ParamValues& params) : m_name(std::move(name)), m_params(params) {}
    void apply(StepContext& ctx) override {
        // Each step shuffles differently from the baseline and from other steps, reproducibly.
        const std::uint64_t seed = mix64(ctx.seed ^ (0x5eedull + static_cast<std::uint64_t>(ctx.stepIndex)));
        runTrainingPhase(ctx, trainParamsFrom(m_params, seed), m_name);
    }

private:
    std::string m_name;
    ParamValues m_params;
};

} // namespace

std::unique_ptr<Strategy> makeTrainingStrategy(const std::string& name, const ParamValues& params) {
    return std::make_unique<TrainingStrategy>(name, params);
}

StrategySchema trainSchema() {
    return {"train", "train", "train the current model (the fields of an experiment's baseline.train)",
            trainingFields("10", "0.001")};
}

StrategySchema finetuneSchema() {
    return {"finetune", "train", "continue training the current model, e.g. to recover accuracy after a step",
            trainingFields("1", "0.0001")};
}

TrainParams trainParamsFrom(const ParamValues& params, std::uint64_t seed) {
    TrainParams p;
    p.epochs = static_cast<int>(params.integer("epochs"));
    p.batchSize = static_cast<int>(params.integer("batch_size"));
    p.optimizer = params.string("optimizer");
    p.lr = static_cast<float>(params.number("lr"));
    p.momentum = static_cast<float>(params.number("momentum"));
    p.weightDecay = static_cast<float>(params.number("weight_decay"));
    p.limit = params.integer("limit");
    p.maxSteps = params.integer("max_steps");
    p.seed = seed;
    return p;
}

TrainResult runTrainingPhase(StepContext& ctx, const TrainParams& params, const std::string& what, bool validate) {
    const std::int64_t stepOffset = ctx.trainStep ? *ctx.trainStep : 0;
    const std::int64_t epochOffset = ctx.trainEpoch ? *ctx.trainEpoch : 0;
    const std::int64_t samples =
        params.limit > 0 ? std::min<std::int64_t>(params.limit, ctx.data.train.size()) : ctx.data.train.size();
    std::int64_t totalSteps = static_cast<std::int64_t>(params.epochs) *
                              ((samples + params.batchSize - 1) / std::max(1, params.batchSize));
    if (params.maxSteps > 0) totalSteps = std::min(totalSteps, params.maxSteps);
    totalSteps = std::max<std::int64_t>(totalSteps, 1);

    auto tMs = [&] { return steadyClockMs() - ctx.runStartMs; };
    TrainCallbacks cb;
    cb.cancel = ctx.cancel;
    cb.onStep = [&](const StepReport& r) {
        ctx.sink.push(makeSample(ctx.runId, "loss", stepOffset + r.step, tMs(), r.loss));
        if (ctx.progress && (r.step % 8 == 0 || r.step == totalSteps))
            ctx.progress(std::min(1.0, double(r.step) / double(totalSteps)), what);
    };
    cb.onEpoch = [&](const EpochReport& e) {
        const std::int64_t epoch = epochOffset + e.epoch;
        ctx.sink.push(makeSample(ctx.runId, "train_loss", epoch, tMs(), e.trainLoss));
        ctx.sink.push(makeSample(ctx.runId, "train_accuracy", epoch, tMs(), e.trainAccuracy));
        std::string line = what + ": epoch " + std::to_string(e.epoch) + "/" + std::to_string(params.epochs) +
                           " loss " + std::to_string(e.trainLoss) + " train accuracy " +
                           std::to_string(e.trainAccuracy);
        if (validate) {
            const EvalResult v = evaluate(ctx.model, ctx.backend, ctx.evalData(), 256, ctx.cancel);
            ctx.sink.push(makeSample(ctx.runId, "val_accuracy", epoch, tMs(), v.accuracy));
            line += " val accuracy " + std::to_string(v.accuracy);
        }
        if (ctx.log) ctx.log(LogLevel::Info, line + " (" + std::to_string(e.seconds) + " s)");
    };
    const TrainResult r = train(ctx.model, ctx.backend, ctx.data.train, params, cb);
    if (ctx.trainStep) *ctx.trainStep += r.steps;
    if (ctx.trainEpoch) *ctx.trainEpoch += r.epochs;
    ctx.summary["train_seconds"] += r.seconds;
    ctx.summary["train_loss"] = r.finalTrainLoss;
    return r;
}

} // namespace lathe

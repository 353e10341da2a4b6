// The `train` family: `train` and `finetune`, one training loop with two sets of defaults. `train` carries
// the fields of a baseline's training; `finetune` continues from the current weights with a gentler rate.
#include "engine/strategies/train/training.h"

#include "engine/core/errors.h"
#include "engine/core/rng.h"
#include "engine/measure/model_measure.h"

#include <algorithm>
#include <cmath>

namespace lathe {
namespace {

SchemaBuilder<TrainParams> trainingFields(const char* name, const char* summary, std::int64_t epochs, double lr) {
    SchemaBuilder<TrainParams> b(name, "train", summary);
    b.integer("epochs", &TrainParams::epochs, epochs,
              {.min = 1, .max = 1000, .unit = "epochs", .help = "passes over the training split"});
    b.integer("batch_size", &TrainParams::batchSize, 128,
              {.min = 1, .max = 65536, .unit = "samples", .help = "samples per optimizer step"});
    b.choice("optimizer", &TrainParams::optimizer, {"adam", "adamw", "sgd"}, "adam",
             "adam, adamw (decoupled weight decay) or sgd (with momentum)");
    b.number("lr", &TrainParams::lr, lr, {.min = 0, .max = 10, .minExclusive = true, .help = "learning rate"});
    b.number("momentum", &TrainParams::momentum, 0.9,
             {.min = 0, .max = 1, .maxExclusive = true, .help = "SGD momentum (ignored by adam and adamw)"});
    b.number("weight_decay", &TrainParams::weightDecay, 0,
             {.min = 0, .max = 1, .help = "L2 penalty (adam, sgd) or decoupled decay (adamw)"});
    b.integer("limit", &TrainParams::limit, 0,
              {.min = 0, .max = 1e9, .unit = "samples", .help = "train on the first N training samples (0: all)"});
    b.integer("max_steps", &TrainParams::maxSteps, 0,
              {.min = 0, .max = 1e12, .unit = "steps", .help = "stop after this many optimizer steps (0: no limit)"});
    return b;
}

class TrainingStrategy final : public Strategy {
public:
    TrainingStrategy(std::string name, TrainParams params) : m_name(std::move(name)), m_params(std::move(params)) {}
    void apply(StepContext& ctx) override {
        // Each step shuffles differently from the baseline and from other steps, reproducibly.
        TrainParams p = m_params;
        p.seed = mix64(ctx.seed ^ (0x5eedull + static_cast<std::uint64_t>(ctx.stepIndex)));
        runTrainingPhase(ctx, p, m_name);
    }

private:
    std::string m_name;
    TrainParams m_params;
};

} // namespace

const SchemaBuilder<TrainParams>& trainSchemaBuilder() {
    static const auto b = trainingFields("train", "train the current model (the fields of an experiment's baseline.train)",
                                         10, 0.001);
    return b;
}

TrainResult runTrainingPhase(StepContext& ctx, const TrainParams& params, const std::string& what, bool validate) {
    const std::int64_t stepOffset = ctx.trainStep ? *ctx.trainStep : 0;
    const std::int64_t epochOffset = ctx.trainEpoch ? *ctx.trainEpoch : 0;
    const std::int64_t samples =
        params.limit > 0 ? std::min<std::int64_t>(params.limit, ctx.data().train.size()) : ctx.data().train.size();
    std::int64_t totalSteps = static_cast<std::int64_t>(params.epochs) *
                              ((samples + params.batchSize - 1) / std::max(1, params.batchSize));
    if (params.maxSteps > 0) totalSteps = std::min(totalSteps, params.maxSteps);
    totalSteps = std::max<std::int64_t>(totalSteps, 1);

    auto tMs = [&] { return steadyClockMs() - ctx.runStartMs; };
    TrainCallbacks cb;
    cb.cancel = ctx.cancel;
    cb.onStep = [&](const StepReport& r) {
        ctx.sink().push(makeSample(ctx.runId, "loss", stepOffset + r.step, tMs(), r.loss));
        if (ctx.progress && (r.step % 8 == 0 || r.step == totalSteps))
            ctx.progress(std::min(1.0, double(r.step) / double(totalSteps)), what);
    };
    cb.onEpoch = [&](const EpochReport& e) {
        const std::int64_t epoch = epochOffset + e.epoch;
        ctx.sink().push(makeSample(ctx.runId, "train_loss", epoch, tMs(), e.trainLoss));
        ctx.sink().push(makeSample(ctx.runId, "train_accuracy", epoch, tMs(), e.trainAccuracy));
        std::string line = what + ": epoch " + std::to_string(e.epoch) + "/" + std::to_string(params.epochs) +
                           " loss " + std::to_string(e.trainLoss) + " train accuracy " +
                           std::to_string(e.trainAccuracy);
        if (validate) {
            const EvalResult v = evaluate(ctx.model(), ctx.backend(), ctx.evalData(), 256, ctx.cancel);
            ctx.sink().push(makeSample(ctx.runId, "val_accuracy", epoch, tMs(), v.accuracy));
            line += " val accuracy " + std::to_string(v.accuracy);
        }
        if (ctx.log) ctx.log(LogLevel::Info, line + " (" + std::to_string(e.seconds) + " s)");
    };
    const TrainResult r = train(ctx.model(), ctx.backend(), ctx.data().train, params, cb);
    if (ctx.trainStep) *ctx.trainStep += r.steps;
    if (ctx.trainEpoch) *ctx.trainEpoch += r.epochs;
    ctx.summary()["train_seconds"] += r.seconds;
    ctx.summary()["train_loss"] = r.finalTrainLoss;
    return r;
}

} // namespace lathe

LATHE_STRATEGY_FAMILY(train) {
    using namespace lathe;
    registry.add(trainSchemaBuilder(), [](const TrainParams& p) { return std::make_unique<TrainingStrategy>("train", p); });
    static const auto finetune = trainingFields(
        "finetune", "continue training the current model, e.g. to recover accuracy after a step", 1, 0.0001);
    registry.add(finetune, [](const TrainParams& p) { return std::make_unique<TrainingStrategy>("finetune", p); });
}

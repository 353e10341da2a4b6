// `train` and `finetune`: one training loop, two sets of defaults. `train` carries the fields of a
// baseline's training; `finetune` continues from the current weights with a gentler default rate and may
// continue the optimizer state of the run's previous training phase.
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

std::vector<ParamField> finetuneFields() {
    std::vector<ParamField> f = trainingFields("1", "0.0001");
    ParamField p;
    p.name = "optimizer_state";
    p.type = ParamType::Choice;
    p.help = "continue: the optimizer state (moments, step counts) and the data order of the run's previous "
             "training phase go on, as if it had not stopped (layers replaced since then start afresh); "
             "fresh (default): a new optimizer, so the result does not depend on whether the baseline was "
             "trained in this run or read from the cache, which keeps weights only";
    p.choices = {"fresh", "continue"};
    p.defaultJson = "\"fresh\"";
    f.push_back(p);
    return f;
}

class TrainingStrategy final : public Strategy {
public:
    TrainingStrategy(std::string name, const ParamValues& params) : m_name(std::move(name)), m_params(params) {}
    void apply(StepContext& ctx) override {
        // Each step shuffles differently from the baseline and from other steps, reproducibly.
        const std::uint64_t seed = mix64(ctx.seed ^ (0x5eedull + static_cast<std::uint64_t>(ctx.stepIndex)));
        TrainingPhaseOptions options;
        if (m_params.has("optimizer_state") && m_params.string("optimizer_state") == "continue")
            options.optimizerState = OptimizerStateMode::Continue;
        runTrainingPhase(ctx, trainParamsFrom(m_params, seed), m_name, options);
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
            finetuneFields()};
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
    TrainingPhaseOptions options;
    options.validate = validate;
    return runTrainingPhase(ctx, params, what, options);
}

TrainResult runTrainingPhase(StepContext& ctx, const TrainParams& requested, const std::string& what,
                             const TrainingPhaseOptions& options) {
    const bool validate = options.validate;
    TrainParams params = requested;
    const std::int64_t stepOffset = ctx.trainStep ? *ctx.trainStep : 0;
    const std::int64_t epochOffset = ctx.trainEpoch ? *ctx.trainEpoch : 0;
    const std::int64_t samples =
        params.limit > 0 ? std::min<std::int64_t>(params.limit, ctx.data.train.size()) : ctx.data.train.size();
    std::int64_t totalSteps = static_cast<std::int64_t>(params.epochs) *
                              ((samples + params.batchSize - 1) / std::max(1, params.batchSize));
    if (params.maxSteps > 0) totalSteps = std::min(totalSteps, params.maxSteps);
    totalSteps = std::max<std::int64_t>(totalSteps, 1);

    // The run's training state: continued, or cleared for a fresh optimizer.
    TrainingState local;
    TrainingState& state = ctx.training ? *ctx.training : local;
    if (options.optimizerState == OptimizerStateMode::Continue) {
        if (!state.hasOrder) {
            state.optimizer.clear();
            if (ctx.log)
                ctx.log(LogLevel::Warning, what + ": no earlier training phase in this run to continue (a cached "
                                                  "baseline keeps only weights): the optimizer starts afresh");
        } else if (state.batchSize == params.batchSize && state.samples == samples) {
            params.seed = state.seed;
            params.startStep = state.nextStep;
            if (ctx.log)
                ctx.log(LogLevel::Info, what + ": continuing the optimizer state and data order after step " +
                                            std::to_string(state.nextStep) + " of the previous phase");
        } else if (ctx.log) {
            ctx.log(LogLevel::Warning, what + ": batch size or training samples differ from the previous phase: "
                                              "the optimizer state continues, the data order starts anew");
        }
    } else {
        state.optimizer.clear();
    }

    auto tMs = [&] { return steadyClockMs() - ctx.runStartMs; };
    TrainCallbacks cb;
    cb.cancel = ctx.cancel;
    cb.onStep = [&](const StepReport& r) {
        // One sample per logging interval: its last step, its mean loss.
        const std::int64_t phaseStep = r.step - params.startStep;
        ctx.sink.push(makeSample(ctx.runId, "loss", stepOffset + phaseStep, tMs(), r.loss));
        if (ctx.progress) ctx.progress(std::min(1.0, double(phaseStep) / double(totalSteps)), what);
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
    cb.afterBackward = options.afterBackward;
    cb.afterOptimizerStep = options.afterOptimizerStep;
    CrossEntropyLoss crossEntropy;
    Loss& loss = options.loss ? *options.loss : crossEntropy;
    const TrainResult r = train(ctx.model, ctx.backend, ctx.data.train, params, cb, loss, state.optimizer);
    state.hasOrder = true;
    state.seed = params.seed;
    state.batchSize = params.batchSize;
    state.samples = samples;
    state.nextStep = r.endStep;
    if (ctx.trainStep) *ctx.trainStep += r.steps;
    if (ctx.trainEpoch) *ctx.trainEpoch += r.epochs;
    ctx.summary["train_seconds"] += r.seconds;
    ctx.summary["train_loss"] = r.finalTrainLoss;
    return r;
}

} // namespace lathe

// The `train` family: `train` and `finetune`, one training loop with two sets of defaults. `train` carries
// the fields of a baseline's training; `finetune` continues from the current weights with a gentler rate,
// optionally quantization-aware (`qat`, engine/strategies/quantize/fake_quant.h).
#include "engine/strategies/train/training.h"

#include "engine/core/errors.h"
#include "engine/core/rng.h"
#include "engine/measure/model_measure.h"
#include "engine/strategies/quantize/fake_quant.h"

#include <algorithm>
#include <cmath>
#include <memory>

namespace lathe {
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

namespace {

// `finetune`: the training fields, whether the optimizer state of the run's previous phase goes on, and
// whether the phase trains through a weight quantizer.
struct FinetuneParams {
    TrainParams train;
    OptimizerStateMode optimizerState = OptimizerStateMode::Fresh;
    quant::QatSettings qat;
};

class TrainingStrategy final : public Strategy {
public:
    TrainingStrategy(std::string name, TrainParams params, OptimizerStateMode state = OptimizerStateMode::Fresh,
                     quant::QatSettings qat = {})
        : m_name(std::move(name)), m_params(std::move(params)), m_state(state), m_qat(std::move(qat)) {}
    void apply(StepContext& ctx) override {
        // Each step shuffles differently from the baseline and from other steps, reproducibly.
        TrainParams p = m_params;
        p.seed = mix64(ctx.seed ^ (0x5eedull + static_cast<std::uint64_t>(ctx.stepIndex)));
        TrainingPhaseOptions options;
        options.optimizerState = m_state;
        // The fake quantizer is this phase's own hook: later phases train in float again.
        std::unique_ptr<quant::WeightFakeQuantizer> fakeQuant;
        if (m_qat.enabled()) {
            fakeQuant = quant::startQat(ctx, m_qat, m_name);
            options.afterOptimizerStep = [&fakeQuant](Model&) { fakeQuant->afterOptimizerStep(); };
        }
        runTrainingPhase(ctx, p, m_name, options);
        if (fakeQuant) quant::reportQat(ctx, *fakeQuant, m_qat);
    }

private:
    std::string m_name;
    TrainParams m_params;
    OptimizerStateMode m_state;
    quant::QatSettings m_qat;
};

} // namespace

const SchemaBuilder<TrainParams>& trainSchemaBuilder() {
    static const auto b = trainingFields("train", "train the current model (the fields of an experiment's baseline.train)",
                                         10, 0.001);
    return b;
}

namespace {
std::int64_t phaseSamples(const StepContext& ctx, const TrainParams& params) {
    return params.limit > 0 ? std::min<std::int64_t>(params.limit, ctx.data().train.size()) : ctx.data().train.size();
}
} // namespace

std::int64_t trainingPhaseSteps(const StepContext& ctx, const TrainParams& params) {
    std::int64_t steps = static_cast<std::int64_t>(params.epochs) *
                         ((phaseSamples(ctx, params) + params.batchSize - 1) / std::max(1, params.batchSize));
    if (params.maxSteps > 0) steps = std::min(steps, params.maxSteps);
    return std::max<std::int64_t>(steps, 1);
}

TrainResult runTrainingPhase(StepContext& ctx, const TrainParams& requested, const std::string& what,
                             const TrainingPhaseOptions& options) {
    const bool validate = options.validate;
    TrainParams params = requested;
    const std::int64_t stepOffset = ctx.trainStep ? *ctx.trainStep : 0;
    const std::int64_t epochOffset = ctx.trainEpoch ? *ctx.trainEpoch : 0;
    const std::int64_t samples = phaseSamples(ctx, params);
    const std::int64_t totalSteps = trainingPhaseSteps(ctx, params);

    // The run's training state: continued, or cleared for a fresh optimizer.
    TrainingState local;
    TrainingState& state = ctx.training ? *ctx.training : local;
    if (options.optimizerState == OptimizerStateMode::Continue) {
        if (!state.hasOrder) {
            state.optimizer.clear();
            ctx.warn(what + ": no earlier training phase in this run to continue (a cached baseline keeps only "
                            "weights): the optimizer starts afresh");
        } else if (state.batchSize == params.batchSize && state.samples == samples) {
            params.seed = state.seed;
            params.startStep = state.nextStep;
            ctx.info(what + ": continuing the optimizer state and data order after step " +
                     std::to_string(state.nextStep) + " of the previous phase");
        } else {
            ctx.warn(what + ": batch size or training samples differ from the previous phase: the optimizer state "
                            "continues, the data order starts anew");
        }
    } else {
        state.optimizer.clear();
    }

    auto tMs = [&] { return steadyClockMs() - ctx.runStartMs; };
    const std::string& suffix = options.seriesSuffix;
    TrainCallbacks cb;
    cb.cancel = ctx.cancel;
    cb.onStep = [&](const StepReport& r) {
        // One sample per logging interval: its last step, its mean loss.
        const std::int64_t phaseStep = r.step - params.startStep;
        const double t = tMs();
        ctx.sink().push(makeSample(ctx.runId, "loss" + suffix, stepOffset + phaseStep, t, r.loss));
        if (options.onInterval) options.onInterval(stepOffset + phaseStep, t);
        if (ctx.progress) ctx.progress(std::min(1.0, double(phaseStep) / double(totalSteps)), what);
    };
    cb.onEpoch = [&](const EpochReport& e) {
        const std::int64_t epoch = epochOffset + e.epoch;
        ctx.sink().push(makeSample(ctx.runId, "train_loss" + suffix, epoch, tMs(), e.trainLoss));
        ctx.sink().push(makeSample(ctx.runId, "train_accuracy" + suffix, epoch, tMs(), e.trainAccuracy));
        std::string line = what + ": epoch " + std::to_string(e.epoch) + "/" + std::to_string(params.epochs) +
                           " loss " + std::to_string(e.trainLoss) + " train accuracy " +
                           std::to_string(e.trainAccuracy);
        if (validate) {
            const EvalResult v = evaluate(ctx.model(), ctx.backend(), ctx.evalData(), 256, ctx.cancel);
            ctx.sink().push(makeSample(ctx.runId, "val_accuracy" + suffix, epoch, tMs(), v.accuracy));
            line += " val accuracy " + std::to_string(v.accuracy);
            if (ctx.model().outputRowsPerSample() > 1) { // a language model: per-token loss and perplexity
                ctx.sink().push(makeSample(ctx.runId, "val_loss" + suffix, epoch, tMs(), v.loss));
                line += " val loss " + std::to_string(v.loss) + " perplexity " + std::to_string(std::exp(v.loss));
            }
        }
        ctx.info(line + " (" + std::to_string(e.seconds) + " s)");
    };
    // The phase's own hooks, then those earlier steps of the run keep (e.g. pruning masks).
    const std::vector<RunTrainHook> kept = ctx.trainHooks ? *ctx.trainHooks : std::vector<RunTrainHook>{};
    if (options.afterBackward || !kept.empty())
        cb.afterBackward = [&](Model& m) {
            if (options.afterBackward) options.afterBackward(m);
            for (const auto& h : kept)
                if (h.afterBackward) h.afterBackward(m);
        };
    if (options.afterOptimizerStep || !kept.empty())
        cb.afterOptimizerStep = [&](Model& m) {
            if (options.afterOptimizerStep) options.afterOptimizerStep(m);
            for (const auto& h : kept)
                if (h.afterOptimizerStep) h.afterOptimizerStep(m);
        };
    if (!kept.empty()) {
        std::string owners;
        for (const auto& h : kept) owners += (owners.empty() ? "" : ", ") + h.owner;
        ctx.info(what + ": keeping the training hooks of " + owners);
    }
    CrossEntropyLoss crossEntropy;
    Loss& loss = options.loss ? *options.loss : crossEntropy;
    const TrainResult r = train(ctx.model(), ctx.backend(), ctx.data().train, params, cb, loss, state.optimizer);
    state.hasOrder = true;
    state.seed = params.seed;
    state.batchSize = params.batchSize;
    state.samples = samples;
    state.nextStep = r.endStep;
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
    SchemaBuilder<FinetuneParams> finetune("finetune", "train",
                                           "continue training the current model, e.g. to recover accuracy after a step");
    finetune.include(trainingFields("finetune", "", 1, 0.0001), &FinetuneParams::train);
    finetune.choice("optimizer_state", &FinetuneParams::optimizerState,
                    {{"fresh", OptimizerStateMode::Fresh}, {"continue", OptimizerStateMode::Continue}},
                    OptimizerStateMode::Fresh,
                    "continue: the optimizer state (moments, step counts) and the data order of the run's previous "
                    "training phase go on, as if it had not stopped (layers replaced since then start afresh); "
                    "fresh (default): a new optimizer, so the result does not depend on whether the baseline was "
                    "trained in this run or read from the cache, which keeps weights only");
    finetune.include(quant::qatSchemaBuilder(), &FinetuneParams::qat);
    finetune.checkModel([](const FinetuneParams& p, ModelCheck& c) { quant::checkQat(p.qat, c, "finetune"); });
    registry.add(finetune, [](const FinetuneParams& p) {
        return std::make_unique<TrainingStrategy>("finetune", p.train, p.optimizerState, p.qat);
    });
}

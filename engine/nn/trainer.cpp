// Training and evaluation loops: seeded mini-batches, a pluggable loss (mean over the batch), backward,
// hooks, optimizer step; losses are read back once per logging interval; cancel is checked between batches.
#include "engine/nn/trainer.h"

#include "engine/core/errors.h"
#include "engine/nn/optim.h"

#include <algorithm>
#include <chrono>

namespace lathe {
namespace {

using Clock = std::chrono::steady_clock;

double msSince(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

void checkCompatible(const Model& model, const Dataset& data) {
    if (data.size() == 0) throw DataError(data.name + ": the dataset is empty");
    if (!data.labelled)
        throw ConfigError(data.name + " has no labels: a model is not trained or scored for accuracy on it; its "
                          "quality is measured against reference outputs (embedding_cosine_mean, retrieval_recall_at_10)");
    if (data.sampleSize() != numel(model.inputShape()))
        throw ConfigError("model " + model.name() + " expects samples of shape " + shapeToString(model.inputShape()) +
                          " but " + data.name + " has samples of shape " + shapeToString(data.sampleShape));
    if (data.numClasses > model.numClasses())
        throw ConfigError("model " + model.name() + " has " + std::to_string(model.numClasses()) + " classes but " +
                          data.name + " has " + std::to_string(data.numClasses));
    if (data.labelsPerSample != model.outputRowsPerSample())
        throw ConfigError("model " + model.name() + " predicts " + std::to_string(model.outputRowsPerSample()) +
                          " label(s) per sample but " + data.name + " has " + std::to_string(data.labelsPerSample));
}

std::unique_ptr<Optimizer> makeOptimizer(const TrainParams& p) {
    if (p.optimizer == "adam" || p.optimizer == "adamw") {
        AdamParams a;
        a.lr = p.lr;
        a.weightDecay = p.weightDecay;
        a.decoupled = p.optimizer == "adamw";
        return makeAdam(a);
    }
    if (p.optimizer == "sgd") {
        SgdParams s;
        s.lr = p.lr;
        s.momentum = p.momentum;
        s.weightDecay = p.weightDecay;
        return makeSgd(s);
    }
    throw ConfigError("unknown optimizer \"" + p.optimizer + "\" (known: adam, adamw, sgd)");
}

// Device-side buffers for one batch, sized for the largest batch and sliced for a short last one. A token model
// (i32 input) gets its ids as they are and R = outputRowsPerSample() rows of logits and labels per sample (a
// language model's T positions); losses, predictions and dlogits then have B * R rows.
struct BatchBuffers {
    std::vector<float> xHost;
    std::vector<std::int32_t> idsHost, yHost;
    Tensor x, y, losses, dlogits;
    std::int64_t rowsPerSample = 1;
    bool tokens = false;

    BatchBuffers(Backend& be, const Model& model, int batchSize)
        : rowsPerSample(model.outputRowsPerSample()), tokens(model.inputDType() == DType::I32) {
        Shape xs = {batchSize};
        xs.insert(xs.end(), model.inputShape().begin(), model.inputShape().end());
        (tokens ? idsHost.resize(static_cast<std::size_t>(numel(xs))) : xHost.resize(static_cast<std::size_t>(numel(xs))));
        const std::int64_t rows = batchSize * rowsPerSample;
        yHost.resize(static_cast<std::size_t>(rows));
        x = be.empty(xs, tokens ? DType::I32 : DType::F32); // (B, inputShape...)
        y = be.empty({rows}, DType::I32);                   // (B * R)
        losses = be.empty({rows});                          // (B * R)
        dlogits = be.empty({rows, model.numClasses()});     // (B * R, classes)
    }

    // Fills and uploads the batch; returns its size in samples (its rows are that times rowsPerSample).
    std::int64_t load(Backend& be, const Dataset& data, std::span<const std::int64_t> idx,
                      const InputPreprocess& pre, Tensor& xb, Tensor& yb) {
        const auto n = static_cast<std::int64_t>(idx.size());
        if (tokens) makeTokenBatch(data, idx, idsHost.data(), yHost.data());
        else makeBatch(data, idx, pre, xHost.data(), yHost.data());
        xb = x.slice0(0, n);
        yb = y.slice0(0, n * rowsPerSample);
        be.copyFromHost(xb, tokens ? static_cast<const void*>(idsHost.data()) : static_cast<const void*>(xHost.data()));
        be.copyFromHost(yb, yHost.data());
        return n;
    }
};

struct BatchOutcome {
    double lossSum = 0;
    std::int64_t correct = 0;
};

// Loss sum and number of correct predictions of one batch; predictions go to `pred` (host).
BatchOutcome summarize(Backend& be, const Tensor& logits, const Tensor& losses, const std::int32_t* labels,
                       std::vector<std::int32_t>& pred) {
    const std::int64_t n = logits.dim(0);
    Tensor predDev = be.empty({n}, DType::I32);
    be.argmaxRows(logits, predDev);
    Tensor predHost = be.download(predDev);
    const std::vector<float> l = be.downloadF32(losses);
    BatchOutcome out;
    pred.assign(predHost.ptr<std::int32_t>(), predHost.ptr<std::int32_t>() + n);
    for (std::int64_t i = 0; i < n; ++i) {
        out.lossSum += l[static_cast<std::size_t>(i)];
        out.correct += pred[static_cast<std::size_t>(i)] == labels[i];
    }
    return out;
}

// Losses and predictions of the steps of one logging interval, packed row after row on the device and
// read back together when the interval ends.
struct IntervalBuffers {
    Tensor losses; // (logInterval * B)
    Tensor pred;   // I32 (logInterval * B)
    std::vector<std::int32_t> labels;   // host labels of the packed rows
    std::vector<std::int64_t> batchRows; // rows of each step, in order
    std::int64_t rows = 0;

    IntervalBuffers(Backend& be, int logInterval, int batchSize) {
        const std::int64_t cap = static_cast<std::int64_t>(logInterval) * batchSize;
        losses = be.empty({cap});
        pred = be.empty({cap}, DType::I32);
    }
    bool empty() const { return batchRows.empty(); }
};

} // namespace

TrainResult train(Model& model, Backend& be, const Dataset& data, const TrainParams& params,
                  const TrainCallbacks& callbacks) {
    CrossEntropyLoss loss;
    OptimizerState state;
    return train(model, be, data, params, callbacks, loss, state);
}

TrainResult train(Model& model, Backend& be, const Dataset& data, const TrainParams& params,
                  const TrainCallbacks& callbacks, Loss& loss, OptimizerState& state) {
    if (params.epochs < 1) throw ConfigError("epochs must be at least 1, got " + std::to_string(params.epochs));
    if (params.batchSize < 1) throw ConfigError("batch size must be at least 1, got " + std::to_string(params.batchSize));
    if (params.logInterval < 1)
        throw ConfigError("log interval must be at least 1 step, got " + std::to_string(params.logInterval));
    if (params.startStep < 0) throw ConfigError("start step must be >= 0, got " + std::to_string(params.startStep));
    checkCompatible(model, data);
    auto optimizer = makeOptimizer(params);
    if (model.backend() != &be) model.to(be);

    const std::int64_t n = params.limit > 0 ? std::min(params.limit, data.size()) : data.size();
    BatchIterator batches(n, params.batchSize, /*shuffle=*/true, params.seed);
    const std::int64_t perEpoch = batches.batchesPerEpoch();
    BatchBuffers buf(be, model, params.batchSize);
    const std::int64_t rowsPer = buf.rowsPerSample;
    IntervalBuffers interval(be, params.logInterval, static_cast<int>(params.batchSize * rowsPer));
    const auto named = model.namedParameters();
    state.retainOnly(named);

    TrainResult result;
    const auto t0 = Clock::now();
    std::int64_t step = params.startStep;
    bool stop = false;
    for (int epoch = 1; epoch <= params.epochs && !stop; ++epoch) {
        const auto tEpoch = Clock::now();
        const std::int64_t scheduleEpoch = params.startStep / perEpoch + (epoch - 1);
        batches.startEpoch(static_cast<int>(scheduleEpoch));
        std::span<const std::int64_t> idx;
        if (epoch == 1)
            for (std::int64_t i = 0; i < params.startStep % perEpoch; ++i) batches.next(idx);
        double lossSum = 0;
        std::int64_t seen = 0, correct = 0, epochSteps = 0;

        // Reads the interval's losses and predictions back (the one synchronisation), adds them to the
        // epoch's figures batch by batch, and reports the interval.
        auto flush = [&] {
            if (interval.empty()) return;
            const std::vector<float> l = be.downloadF32(interval.losses.slice0(0, interval.rows));
            const Tensor predHost = be.download(interval.pred.slice0(0, interval.rows));
            const std::int32_t* pr = predHost.ptr<std::int32_t>();
            double intervalSum = 0;
            std::size_t row = 0;
            for (const std::int64_t bn : interval.batchRows) {
                double batchSum = 0;
                for (std::int64_t i = 0; i < bn; ++i, ++row) {
                    batchSum += l[row];
                    correct += pr[row] == interval.labels[row];
                }
                lossSum += batchSum;
                intervalSum += batchSum;
            }
            seen += interval.rows;
            StepReport r;
            r.epoch = epoch;
            r.step = step;
            r.loss = intervalSum / static_cast<double>(interval.rows);
            r.tMs = msSince(t0);
            r.steps = static_cast<std::int64_t>(interval.batchRows.size());
            interval.batchRows.clear();
            interval.labels.clear();
            interval.rows = 0;
            if (callbacks.onStep) callbacks.onStep(r);
        };

        while (batches.next(idx)) {
            if (callbacks.cancel && callbacks.cancel->load()) {
                model.releaseCache();
                throw CancelledError();
            }
            Tensor xb, yb;
            const std::int64_t bn = buf.load(be, data, idx, model.preprocess(), xb, yb) * rowsPer; // rows
            ++step;
            ForwardContext ctx;
            ctx.training = true;
            ctx.seed = params.seed;
            ctx.step = step;

            model.zeroGrad();
            Tensor feature, dfeature;
            ctx.tapLayer = loss.featureLayer();
            ctx.tap = ctx.tapLayer >= 0 ? &feature : nullptr;
            Tensor logits = model.forward(xb, ctx).view({bn, model.numClasses()}); // (rows, classes)
            Tensor losses = interval.losses.slice0(interval.rows, interval.rows + bn); // (bn)
            Tensor dlogits = buf.dlogits.slice0(0, bn);                                // (bn, classes)
            loss.compute(be, logits, LossBatch{xb, yb, step, idx, ctx.tap, ctx.tap ? &dfeature : nullptr}, losses, dlogits,
                         1.0f / static_cast<float>(bn));
            Tensor pred = interval.pred.slice0(interval.rows, interval.rows + bn); // I32 (bn)
            be.argmaxRows(logits, pred);
            model.backward(dlogits, ctx.tapLayer, dfeature.defined() ? &dfeature : nullptr);
            if (callbacks.afterBackward) callbacks.afterBackward(model);
            optimizer->step(be, named, state);
            if (callbacks.afterOptimizerStep) callbacks.afterOptimizerStep(model);
            model.releaseCache();

            interval.labels.insert(interval.labels.end(), buf.yHost.begin(), buf.yHost.begin() + bn);
            interval.batchRows.push_back(bn);
            interval.rows += bn;
            ++epochSteps;
            if (static_cast<int>(interval.batchRows.size()) == params.logInterval) flush();
            if (params.maxSteps > 0 && step - params.startStep >= params.maxSteps) {
                stop = true;
                break;
            }
        }
        flush();
        be.synchronize();
        EpochReport report;
        report.epoch = epoch;
        report.steps = epochSteps;
        report.trainLoss = seen ? lossSum / static_cast<double>(seen) : 0.0;
        report.trainAccuracy = seen ? static_cast<double>(correct) / static_cast<double>(seen) : 0.0;
        report.seconds = msSince(tEpoch) / 1000.0;
        result.epochs = epoch;
        result.finalTrainLoss = report.trainLoss;
        if (callbacks.onEpoch) callbacks.onEpoch(report);
    }
    result.steps = step - params.startStep;
    result.endStep = step;
    result.seconds = msSince(t0) / 1000.0;
    return result;
}

EvalResult evaluate(Model& model, Backend& be, const Dataset& data, int batchSize, const std::atomic<bool>* cancel) {
    if (batchSize < 1) throw ConfigError("batch size must be at least 1, got " + std::to_string(batchSize));
    checkCompatible(model, data);
    if (model.backend() != &be) model.to(be);

    const int classes = model.numClasses();
    EvalResult r;
    r.numClasses = classes;
    r.confusion.assign(static_cast<std::size_t>(classes) * classes, 0);

    BatchIterator batches(data.size(), batchSize, /*shuffle=*/false, 0);
    batches.startEpoch(0);
    BatchBuffers buf(be, model, batchSize);
    std::vector<std::int32_t> pred;
    std::span<const std::int64_t> idx;
    double lossSum = 0;
    std::int64_t correct = 0;
    ForwardContext ctx; // inference: no caches, no dropout
    const Model::InferenceScope scope(model);
    while (batches.next(idx)) {
        if (cancel && cancel->load()) throw CancelledError();
        Tensor xb, yb;
        const std::int64_t bn = buf.load(be, data, idx, model.preprocess(), xb, yb) * buf.rowsPerSample; // rows
        Tensor logits = model.forward(xb, ctx).view({bn, classes});
        Tensor losses = buf.losses.slice0(0, bn);
        Tensor dlogits = buf.dlogits.slice0(0, bn);
        be.softmaxCrossEntropy(logits, yb, losses, dlogits, 1.0f);
        const auto o = summarize(be, logits, losses, buf.yHost.data(), pred);
        lossSum += o.lossSum;
        correct += o.correct;
        for (std::int64_t i = 0; i < bn; ++i) {
            const auto t = static_cast<std::size_t>(buf.yHost[static_cast<std::size_t>(i)]);
            const auto p = static_cast<std::size_t>(pred[static_cast<std::size_t>(i)]);
            ++r.confusion[t * static_cast<std::size_t>(classes) + p];
        }
        r.count += bn;
    }
    r.accuracy = r.count ? static_cast<double>(correct) / static_cast<double>(r.count) : 0.0;
    r.loss = r.count ? lossSum / static_cast<double>(r.count) : 0.0;
    r.perClassAccuracy.assign(static_cast<std::size_t>(classes), 0.0);
    for (int c = 0; c < classes; ++c) {
        std::int64_t total = 0;
        for (int p = 0; p < classes; ++p) total += r.confusion[static_cast<std::size_t>(c) * classes + p];
        r.perClassAccuracy[static_cast<std::size_t>(c)] =
            total ? static_cast<double>(r.confusion[static_cast<std::size_t>(c) * classes + c]) / total : 0.0;
    }
    return r;
}

} // namespace lathe

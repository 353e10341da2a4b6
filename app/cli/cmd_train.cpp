// lathe-cli train / eval: train a zoo model (or continue from saved weights) on a dataset and evaluate
// it on the 10k test split; or evaluate a saved model. Progress goes to stderr, --json to stdout.
#include "app/cli/cli.h"

#include "engine/backends/registry.h"
#include "engine/core/errors.h"
#include "engine/data/text_corpus.h"
#include "engine/io/model_io.h"
#include "engine/nn/trainer.h"
#include "engine/io/zoo.h"

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <iostream>

namespace lathe::cli {
namespace {

nlohmann::json evalJson(const EvalResult& r, const Dataset& data) {
    nlohmann::json perClass = nlohmann::json::object();
    for (std::size_t c = 0; c < r.perClassAccuracy.size(); ++c) {
        const std::string name = c < data.classNames.size() ? data.classNames[c] : std::to_string(c);
        perClass[name] = r.perClassAccuracy[c];
    }
    nlohmann::json confusion = nlohmann::json::array();
    for (int t = 0; t < r.numClasses; ++t) {
        nlohmann::json row = nlohmann::json::array();
        for (int p = 0; p < r.numClasses; ++p) row.push_back(r.confusion[static_cast<std::size_t>(t) * r.numClasses + p]);
        confusion.push_back(row);
    }
    return {{"accuracy", r.accuracy}, {"loss", r.loss}, {"count", r.count}, {"per_class_accuracy", perClass},
            {"confusion", confusion}};
}

void printEvalText(const EvalResult& r, const Dataset& data, double seconds) {
    std::fprintf(stderr, "test: accuracy %.4f  loss %.4f  (%lld samples, %.1f s)\n", r.accuracy, r.loss,
                 static_cast<long long>(r.count), seconds);
    for (std::size_t c = 0; c < r.perClassAccuracy.size(); ++c) {
        const std::string name = c < data.classNames.size() ? data.classNames[c] : std::to_string(c);
        std::fprintf(stderr, "  %-14s %.4f\n", name.c_str(), r.perClassAccuracy[c]);
    }
}

double secondsSince(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int runTrain(const std::vector<std::string>& argv) {
    Args args(argv,
              {"--model", "--dataset", "--epochs", "--batch-size", "--lr", "--optimizer", "--seed", "--limit",
               "--device", "--save", "--init", "--arch", "--momentum", "--weight-decay", "--max-steps"},
              {"--json", "--eval-each-epoch"});
    if (!args.positional().empty()) throw ConfigError("unexpected argument \"" + args.positional()[0] + "\"");

    TrainParams p;
    p.epochs = static_cast<int>(args.integer("--epochs", 10));
    p.batchSize = static_cast<int>(args.integer("--batch-size", 128));
    p.optimizer = args.value("--optimizer", "adam");
    p.lr = static_cast<float>(args.number("--lr", p.optimizer == "sgd" ? 0.05 : 1e-3));
    p.momentum = static_cast<float>(args.number("--momentum", 0.9));
    p.weightDecay = static_cast<float>(args.number("--weight-decay", 0.0));
    p.seed = static_cast<std::uint64_t>(args.integer("--seed", 42));
    p.limit = args.integer("--limit", 0);
    p.maxSteps = args.integer("--max-steps", 0);
    if (p.epochs < 1) throw ConfigError("option --epochs: expected an integer >= 1, got " + std::to_string(p.epochs));
    if (p.batchSize < 1)
        throw ConfigError("option --batch-size: expected an integer >= 1, got " + std::to_string(p.batchSize));
    if (p.optimizer != "adam" && p.optimizer != "adamw" && p.optimizer != "sgd")
        throw ConfigError("option --optimizer: unknown optimizer \"" + p.optimizer + "\" (known: adam, adamw, sgd)");
    if (!(p.lr > 0.0f)) throw ConfigError("option --lr: expected a positive number");
    if (p.limit < 0) throw ConfigError("option --limit: expected an integer >= 0");

    // Check the cheap things (model name, device) before reading 60,000 images.
    const auto modelName = args.value("--model");
    const auto init = args.value("--init");
    std::unique_ptr<Model> model;
    if (init) {
        model = loadModel(*init, args.value("--arch", ""));
        if (modelName && *modelName != model->name())
            throw ConfigError("--model " + *modelName + " does not match the model in " + *init + " (" +
                              model->name() + ")");
    } else {
        if (!modelName) {
            std::string known;
            for (const auto& n : zooNames()) known += (known.empty() ? "" : ", ") + n;
            throw ConfigError("train needs --model NAME (known: " + known + ") or --init model.safetensors");
        }
        model = Model::fromArchitecture(zooArchitecture(*modelName));
    }
    auto backend = backendFor(args.value("--device", "auto"));
    Backend& be = *backend;
    if (!init) model->initialize(be, p.seed);

    const std::string datasetName = args.value("--dataset", "fashion-mnist");
    const DatasetSplits data = loadDataset(datasetName);
    const std::int64_t trainSamples = p.limit > 0 ? std::min(p.limit, data.train.size()) : data.train.size();
    std::fprintf(stderr, "training %s (%lld parameters) on %s (%lld samples) with %s, device %s\n",
                 model->name().c_str(), static_cast<long long>(model->parameterCount()), datasetName.c_str(),
                 static_cast<long long>(trainSamples), p.optimizer.c_str(), be.name().c_str());

    // --eval-each-epoch: test accuracy after every epoch (to choose the number of epochs); the time it
    // takes is not counted in the training seconds.
    const bool evalEachEpoch = args.flag("--eval-each-epoch");
    nlohmann::json epochLog = nlohmann::json::array();
    double evalEachSeconds = 0;
    TrainCallbacks callbacks;
    callbacks.cancel = &cancelFlag();
    callbacks.onEpoch = [&](const EpochReport& r) {
        std::fprintf(stderr, "epoch %d/%d  loss %.4f  train accuracy %.4f  %lld steps  %.1f s", r.epoch, p.epochs,
                     r.trainLoss, r.trainAccuracy, static_cast<long long>(r.steps), r.seconds);
        nlohmann::json e = {{"epoch", r.epoch}, {"train_loss", r.trainLoss}, {"train_accuracy", r.trainAccuracy},
                            {"seconds", r.seconds}};
        if (evalEachEpoch) {
            const auto t = std::chrono::steady_clock::now();
            const EvalResult ev = evaluate(*model, be, data.test, 256, &cancelFlag());
            evalEachSeconds += secondsSince(t);
            std::fprintf(stderr, "  test accuracy %.4f  test loss %.4f", ev.accuracy, ev.loss);
            e["test_accuracy"] = ev.accuracy;
            e["test_loss"] = ev.loss;
        }
        std::fprintf(stderr, "\n");
        epochLog.push_back(e);
    };
    InterruptGuard guard;
    const TrainResult tr = train(*model, be, data.train, p, callbacks);

    const auto tEval = std::chrono::steady_clock::now();
    const EvalResult ev = evaluate(*model, be, data.test, 256, &cancelFlag());
    const double evalSeconds = secondsSince(tEval);
    // A language model: per-token loss against the entropy of the validation bytes' own frequencies (the best a
    // model without context can do), and perplexity; its 256 "classes" are bytes, not worth a table.
    const bool languageModel = model->outputRowsPerSample() > 1;
    const double unigram = languageModel ? unigramEntropyNats(data.test) : 0.0;
    if (languageModel)
        std::fprintf(stderr, "validation: loss %.4f nats/token (perplexity %.3f), unigram entropy %.4f nats/token, "
                             "%lld tokens, %.1f s\n",
                     ev.loss, std::exp(ev.loss), unigram, static_cast<long long>(ev.count), evalSeconds);
    else
        printEvalText(ev, data.test, evalSeconds);

    if (auto save = args.value("--save")) {
        saveModel(*model, *save);
        std::fprintf(stderr, "saved %s\n", save->c_str());
    }
    if (args.flag("--json")) {
        nlohmann::json out = evalJson(ev, data.test);
        out["model"] = model->name();
        out["dataset"] = datasetName;
        out["params"] = model->parameterCount();
        out["model_bytes"] = model->parameterBytes();
        out["device"] = be.name();
        out["epochs"] = tr.epochs;
        out["steps"] = tr.steps;
        out["seconds"] = tr.seconds - evalEachSeconds;
        out["epoch_log"] = epochLog;
        out["eval_seconds"] = evalSeconds;
        out["train_loss"] = tr.finalTrainLoss;
        out["train_samples"] = trainSamples;
        out["batch_size"] = p.batchSize;
        out["optimizer"] = p.optimizer;
        out["lr"] = p.lr;
        out["seed"] = p.seed;
        if (languageModel) {
            out["perplexity"] = std::exp(ev.loss);
            out["unigram_entropy"] = unigram;
            out.erase("confusion");
            out.erase("per_class_accuracy");
        }
        if (auto save = args.value("--save")) out["saved"] = *save;
        std::cout << out.dump(2) << "\n";
    }
    return kExitOk;
}

int runEval(const std::vector<std::string>& argv) {
    Args args(argv, {"--dataset", "--device", "--arch", "--batch-size", "--limit"}, {"--json"});
    if (args.positional().size() != 1) throw ConfigError("eval needs exactly one model file (model.safetensors)");
    const std::string path = args.positional()[0];
    const int batchSize = static_cast<int>(args.integer("--batch-size", 256));
    if (batchSize < 1) throw ConfigError("option --batch-size: expected an integer >= 1");
    const std::int64_t limit = args.integer("--limit", 0);

    auto model = loadModel(path, args.value("--arch", ""));
    auto backend = backendFor(args.value("--device", "auto"));
    Backend& be = *backend;
    model->to(be);
    const std::string datasetName = args.value("--dataset", "fashion-mnist");
    const DatasetSplits data = loadDataset(datasetName);
    const Dataset test = data.test.head(limit);

    InterruptGuard guard;
    const auto t0 = std::chrono::steady_clock::now();
    const EvalResult ev = evaluate(*model, be, test, batchSize, &cancelFlag());
    const double seconds = secondsSince(t0);
    std::fprintf(stderr, "%s (%lld parameters) on %s, device %s\n", model->name().c_str(),
                 static_cast<long long>(model->parameterCount()), datasetName.c_str(), be.name().c_str());
    printEvalText(ev, test, seconds);
    if (args.flag("--json")) {
        nlohmann::json out = evalJson(ev, test);
        out["model"] = model->name();
        out["file"] = path;
        out["dataset"] = datasetName;
        out["params"] = model->parameterCount();
        out["model_bytes"] = model->parameterBytes();
        out["device"] = be.name();
        out["seconds"] = seconds;
        std::cout << out.dump(2) << "\n";
    }
    return kExitOk;
}

const Registrar kTrain({"train",
                        "train --model NAME --dataset fashion-mnist|fortunes|text:PATH|DIR --epochs N [--batch-size B] [--lr X]\n"
                        "       [--optimizer adam|adamw|sgd] [--momentum M] [--weight-decay W] [--seed S]\n"
                        "       [--limit N] [--max-steps N] [--device cpu|cuda|auto] [--save model.safetensors]\n"
                        "       [--init model.safetensors [--arch arch.json]] [--eval-each-epoch] [--json]",
                        "train a model from the zoo (or from saved weights) and evaluate it on the test split",
                        runTrain});

const Registrar kEval({"eval",
                       "eval model.safetensors [--dataset fashion-mnist|DIR] [--arch arch.json] [--device cpu|cuda|auto]\n"
                       "       [--batch-size B] [--limit N] [--json]",
                       "evaluate a saved model on the test split: accuracy, loss, per-class accuracy", runEval});

} // namespace
} // namespace lathe::cli

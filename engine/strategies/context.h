// StepContext: everything a strategy may touch while it runs — the current model (to change in place,
// edit with ModelEditor, or replace), the backend, the data, a loader for a second model (a teacher, a
// reference), the run's metric sink, summary and notes, and the training seams shared by the run.
#pragma once

#include "engine/backends/backend.h"
#include "engine/core/errors.h"
#include "engine/core/metrics.h"
#include "engine/data/dataset.h"
#include "engine/io/model_io.h"
#include "engine/measure/fidelity.h"
#include "engine/nn/model.h"
#include "engine/nn/trainer.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace lathe {

// Logging from the engine to whoever runs it (CLI stderr, GUI log pane).
enum class LogLevel { Info, Warning, Error };
using LogFn = std::function<void(LogLevel, const std::string&)>;

// A hook that every training phase after the step that added it runs (see StepContext::addTrainHook).
struct RunTrainHook {
    std::string owner;                              // the step that added it, for messages
    std::function<void(Model&)> afterBackward;      // e.g. mask gradients
    std::function<void(Model&)> afterOptimizerStep; // e.g. re-apply a mask
};

struct StepContext {
    // The run's current model. Steps after this one see whatever this step leaves here.
    std::unique_ptr<Model>* modelSlot = nullptr;
    Backend* backendPtr = nullptr;
    const DatasetSplits* dataPtr = nullptr;
    MetricSink* sinkPtr = nullptr;
    std::int64_t runId = 0;
    std::uint64_t seed = 42;
    const std::atomic<bool>* cancel = nullptr;
    LogFn log;
    double runStartMs = 0;                          // steady-clock ms at run start, for MetricSample::tMs
    std::map<std::string, double>* summaryPtr = nullptr;   // shared keys, ARCHITECTURE.md §4
    std::map<std::string, std::string>* notesPtr = nullptr; // stored with the run (RunStore::setNotes)
    std::function<void(double fraction, const std::string& what)> progress; // within this step
    // The split (and limit) the experiment evaluates on; null: data.test.
    const Dataset* evaluation = nullptr;
    // For an evaluated split without labels: the outputs of the run's model before its steps on it, which
    // every measurement compares the current model with (engine/measure/fidelity.h). Null otherwise.
    const OutputSet* outputReference = nullptr;
    // Counters shared by every training phase of the run, so "loss" and "val_accuracy" samples of
    // consecutive phases follow each other instead of restarting at step 1. Null: start at 0.
    std::int64_t* trainStep = nullptr;
    std::int64_t* trainEpoch = nullptr;
    int stepIndex = 0; // position of this step in the chain (seeds, default labels)
    // The optimizer state and data order the run's training phases hand on (finetune's
    // optimizer_state "continue"). Null: every phase starts afresh.
    TrainingState* training = nullptr;
    // Hooks every later training phase of the run installs besides its own. Null: not kept.
    std::vector<RunTrainHook>* trainHooks = nullptr;
    // A second model on this run's backend: {"zoo": name} with fresh weights from the run's seed, or
    // {"path": file} with its weights; relative paths resolve against the experiment file's folder.
    std::function<std::unique_ptr<Model>(const ModelRef&)> loadModel;
    // A path as the experiment file writes it (a trace, a table), resolved against the file's folder.
    // Null: paths are used as written.
    std::function<std::string(const std::string&)> resolvePath;
    // Per-layer figures stored with the run (e.g. "layers.0.weight", "sparsity", 0.8); shown as the
    // per-layer views and heatmaps of a comparison. Null: dropped.
    std::function<void(const std::string& layer, const std::string& key, double value)> layerStat;

    Model& model() const { return **modelSlot; }
    Backend& backend() const { return *backendPtr; }
    const DatasetSplits& data() const { return *dataPtr; }
    MetricSink& sink() const { return *sinkPtr; }
    std::map<std::string, double>& summary() const { return *summaryPtr; }
    std::map<std::string, std::string>& notes() const { return *notesPtr; }
    const Dataset& evalData() const { return evaluation ? *evaluation : dataPtr->test; }

    // Makes `model` the run's current model (moved onto this run's backend first), e.g. a distilled
    // student. The previous model is destroyed: take what you need from it before.
    void replaceModel(std::unique_ptr<Model> model) const {
        if (!model) throw ConfigError("replaceModel: no model");
        model->to(*backendPtr);
        *modelSlot = std::move(model);
    }
    // Records that some figure of this run comes from a model of the hardware instead of execution:
    // the note says which, and the summary flag `simulated` becomes 1 (ARCHITECTURE.md §4).
    void markSimulated(const std::string& what) const {
        auto& n = (*notesPtr)["simulated"];
        n += (n.empty() ? "" : "; ") + what;
        (*summaryPtr)["simulated"] = 1;
    }
    // Keeps a hook for every later training phase of this run: e.g. prune.magnitude's mask keeps the
    // pruned weights exactly zero through a later finetune. Throws where the run keeps no hooks.
    void addTrainHook(RunTrainHook hook) const {
        if (!trainHooks) throw ConfigError(hook.owner + ": this run keeps no training hooks");
        trainHooks->push_back(std::move(hook));
    }
    void addLayerStat(const std::string& layer, const std::string& key, double value) const {
        if (layerStat) layerStat(layer, key, value);
    }
    void info(const std::string& message) const {
        if (log) log(LogLevel::Info, message);
    }
    void warn(const std::string& message) const {
        if (log) log(LogLevel::Warning, message);
    }
};

class Strategy {
public:
    virtual ~Strategy() = default;
    // Refuses, before the run loads its model or trains anything, a step the run's backend cannot execute: ConfigError
    // naming the step, what it needs, the backend and why (e.g. an FP8 GEMM on a device below compute
    // capability 8.9). The runner calls it for every enabled step first.
    virtual void checkBackend(const Backend&) const {}
    virtual void apply(StepContext& ctx) = 0;
};

} // namespace lathe

// ExperimentSpec: the experiment file as typed structs. The whole file is validated before anything
// runs; every error names the file, the JSON pointer and what was expected (ARCHITECTURE.md §5).
#pragma once

#include "engine/nn/trainer.h"
#include "engine/strategies/strategy.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lathe {

struct ModelSpec {
    std::string zoo;              // "mlp-784-256-128-10", or empty when path is set
    std::string path;             // a .safetensors model
    std::string architecturePath; // architecture JSON for files exported from PyTorch
};

struct DatasetSpec {
    std::string name = "fashion-mnist"; // a known name or a folder
    std::string split = "test";         // evaluated split: "test" or "train"
    std::int64_t limit = 0;             // evaluate on the first N samples (0: all)
};

struct BaselineSpec {
    std::optional<TrainParams> train; // train (cached by hash) ...
    std::string modelPath;            // ... or start from a saved model
};

struct StepSpec {
    std::string strategy;
    ParamValues params;        // validated, defaults filled in
    nlohmann::json paramsJson; // the same, as JSON (for storage and the editor)
    bool enabled = true;
};

struct MeasureSpec {
    std::vector<std::int64_t> batchSizes{1, 64, 256};
    int warmup = 20;
    int repeats = 200;
    int rotateBatches = 4;      // distinct input batches cycled through while timing
    bool accuracy = true;
    double noisyCv = 0.10;      // a latency CV above this flags the run as noisy
};

struct ExperimentSpec {
    std::string name;
    std::string description;
    ModelSpec model;
    DatasetSpec dataset;
    std::string device = "auto";
    BaselineSpec baseline;
    std::vector<StepSpec> steps;
    MeasureSpec measure;
    nlohmann::json sweep = nlohmann::json::object(); // {"steps[0].params.sparsity": [0.5, 0.7]}
    std::uint64_t seed = 42;
    std::vector<std::string> tags;
    std::string notes;
    std::string sourceName; // the file it came from, for messages
};

struct ValidationIssue {
    std::string pointer; // JSON pointer, "/steps/0/params/sparsity"
    std::string message; // "expected a number in [0, 1), got \"high\""
};

// Every problem in the document (the GUI shows them at their fields). Empty: valid.
std::vector<ValidationIssue> validateExperiment(const nlohmann::json& doc);
// Throws ConfigError "<sourceName>: <pointer>: <message>" for the first problem (all of them listed).
ExperimentSpec parseExperiment(const nlohmann::json& doc, const std::string& sourceName);
// Reads, parses JSON (syntax errors with line and column) and validates.
ExperimentSpec loadExperimentFile(const std::string& path);
nlohmann::json toJson(const ExperimentSpec& spec);

struct RunPlan {
    int index = 0;             // 0-based within the sweep
    int total = 1;
    std::string label;         // "steps[0].params.sparsity=0.5" ("" without a sweep)
    nlohmann::json resolved;   // the experiment JSON with the sweep values applied and no sweep key
    ExperimentSpec spec;       // parsed from resolved
};

// The cartesian product of the sweep axes, in file order; a spec without a sweep gives one plan.
// Throws ConfigError for a path that addresses nothing.
std::vector<RunPlan> expandSweep(const ExperimentSpec& spec, const nlohmann::json& doc);

} // namespace lathe

// ExperimentSpec: the experiment file as typed structs. The whole file is validated before anything
// runs; every error names the file, the JSON pointer and what was expected (ARCHITECTURE.md §5).
#pragma once

#include "engine/nn/trainer.h"
#include "engine/strategies/strategy.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
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
    nlohmann::json trainJson;         // the same, as validated JSON with defaults (cache key, storage)
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
    double noisyCi = 0.05;      // a median latency CI wider than this fraction of the median: noisy
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
    // Sweep axes in file order when loaded from a file (nlohmann::json sorts keys); else empty and
    // the axes follow key order.
    std::vector<std::string> sweepOrder;
};

struct ValidationIssue {
    std::string pointer; // JSON pointer, "/steps/0/params/sparsity"
    std::string message; // "expected a number in [0, 1), got \"high\""
};

// Keys given twice in one object of JSON text (a parsed document keeps only the last): each issue has
// the pointer of the second occurrence and says on which line the first one was. Text that is not
// valid JSON yields the duplicates found before the syntax error.
std::vector<ValidationIssue> findDuplicateKeys(std::string_view text);

// Every problem in the document (the GUI shows them at their fields). Empty: valid.
std::vector<ValidationIssue> validateExperiment(const nlohmann::json& doc);
// The same, plus checks that need the file's location: relative paths (model.path,
// model.architecture, baseline.model, a dataset folder) are resolved against the folder of
// sourcePath and must exist.
std::vector<ValidationIssue> validateExperiment(const nlohmann::json& doc, const std::string& sourcePath);
// Parameters of one strategy: unknown keys (with suggestions), types and ranges. pointer is where
// the params object sits ("/steps/0/params"). filled/values (optional) receive the parameters with
// defaults filled in.
std::vector<ValidationIssue> validateParams(const StrategySchema& schema, const nlohmann::json& params,
                                            const std::string& pointer, nlohmann::json* filled = nullptr,
                                            ParamValues* values = nullptr);
// "<source>: <pointer>: <message>" per issue, one per line.
std::string formatIssues(const std::string& sourceName, const std::vector<ValidationIssue>& issues);
// The closest candidate within a small edit distance (case-insensitive), or "".
std::string closestMatch(const std::string& word, const std::vector<std::string>& candidates);
// A strategy schema as JSON (for the GUI's forms and `lathe-cli strategies`).
nlohmann::json schemaToJson(const StrategySchema& schema);
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

// ExperimentSpec: the experiment file as typed structs. The whole file is validated before anything
// runs; every error names the file, the JSON pointer and what was expected (ARCHITECTURE.md §5).
#pragma once

#include "engine/measure/model_measure.h"
#include "engine/nn/trainer.h"
#include "engine/strategies/strategy.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lathe {

// The experiment's "model" section.
using ModelSpec = ModelRef;

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

// The experiment's "measure" section (fields: engine/strategies/measure/measure_fields.h).
using MeasureSpec = MeasureSettings;

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
    nlohmann::json search;                           // the validated `search` section (search_spec.h); null: none
    std::uint64_t seed = 42;
    std::vector<std::string> tags;
    std::string notes;
    std::string sourceName; // the file it came from, for messages
    // Sweep axes in file order when loaded from a file (nlohmann::json sorts keys); else empty and
    // the axes follow key order.
    std::vector<std::string> sweepOrder;
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
// "<source>: <pointer>: <message>" per issue, one per line.
std::string formatIssues(const std::string& sourceName, const std::vector<ValidationIssue>& issues);
// The fields of the experiment's "dataset" section (besides "name") and "measure" section, with their
// defaults (for the GUI's forms). Strategy schemas, validateParams and schemaToJson: strategies/schema.h.
const StrategySchema& datasetSectionSchema();
const StrategySchema& measureSectionSchema();
// Throws ConfigError "<sourceName>: <pointer>: <message>" for the first problem (all of them listed).
ExperimentSpec parseExperiment(const nlohmann::json& doc, const std::string& sourceName);
// A path as an experiment file means it: relative paths resolve against the file's folder (absolute ones,
// and any path of an experiment not read from a file, stay as they are).
std::string resolveAgainstFolder(const std::string& folder, const std::string& path);
std::string resolveAgainstExperiment(const ExperimentSpec& spec, const std::string& path);
// Reads, parses JSON (syntax errors with line and column) and validates.
ExperimentSpec loadExperimentFile(const std::string& path);
nlohmann::json toJson(const ExperimentSpec& spec);

struct RunPlan {
    int index = 0;             // 0-based within the sweep
    int total = 1;
    std::string label;         // "steps[0].params.sparsity=0.5" ("" without a sweep)
    nlohmann::json resolved;   // the experiment JSON with the sweep values applied and no sweep key (a search kept)
    ExperimentSpec spec;       // parsed from resolved
};

// The cartesian product of the sweep axes, in file order; a spec without a sweep gives one plan.
// Throws ConfigError for a path that addresses nothing. A search stays in every plan (one search per
// plan; the sweep's paths may address it, e.g. "search.seed"), the plan's name then carrying its label.
std::vector<RunPlan> expandSweep(const ExperimentSpec& spec, const nlohmann::json& doc);
// "steps[0].params.sparsity=0.5, seed=1" -> "sparsity=0.5, seed=1" (the last path segment).
std::string shortPlanLabel(const std::string& label);

} // namespace lathe

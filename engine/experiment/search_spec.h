// The `search` section of an experiment file: objectives, constraints, the space of strategy chains (which
// strategies may appear, in which order, with which ranges; by default the ranges of the registry's
// schemas), the budget and the algorithm. Validated with JSON-pointer errors like the rest of the file.
#pragma once

#include "engine/strategies/schema.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lathe {

struct SearchObjective {
    std::string metric;    // a summary key, e.g. "latency_p50_ms@b256"
    bool maximize = false; // minimised unless the file says "maximize"
};

struct SearchConstraint {
    std::string metric;
    std::optional<double> min, max; // ">=" and "<=" bounds
};

// One field a strategy option searches over.
struct SearchField {
    std::string name;
    ParamType type = ParamType::Number; // the schema's type
    bool categorical = false;           // choices (Choice, Boolean, or an explicit list)
    double low = 0, high = 0;           // numeric range
    bool log = false;
    std::vector<nlohmann::json> choices; // categorical values
};

struct SearchOption {
    std::string strategy;
    nlohmann::json fixedParams = nlohmann::json::object(); // values the file fixed
    std::vector<SearchField> fields;                       // values searched
};

// One position of the chain: one of its options, or nothing when optional.
struct SearchSlot {
    std::vector<SearchOption> options;
    bool optional = false;
};

struct SearchHalving {
    double minEpochs = 1, maxEpochs = 4, eta = 2; // the `epochs` of every finetune step of a trial
};

struct SearchSpec {
    std::string algorithm = "tpe"; // "random", "tpe", "motpe" (several objectives: the default)
    std::vector<SearchObjective> objectives;
    std::vector<SearchConstraint> constraints;
    std::vector<SearchSlot> space;
    int trials = 20;
    double wallS = 0;              // 0: no limit
    std::optional<std::uint64_t> seed; // absent: the experiment's seed
    int startupTrials = 10;
    bool multivariate = true;      // TPE / MOTPE: one joint estimator over whole chains (false: per field)
    bool warmStart = true;
    std::optional<SearchHalving> halving;
};

// Problems of a `search` section at their pointers under `pointer` ("/search"). `hasSweep`: the file has a
// sweep too (refused: a search is the sweep).
std::vector<ValidationIssue> validateSearchSection(const nlohmann::json& section, const std::string& pointer);
// Throws ConfigError listing the problems ("<source>: /search/...: ...").
SearchSpec parseSearchSection(const nlohmann::json& section, const std::string& sourceName);

} // namespace lathe

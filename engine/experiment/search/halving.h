// Successive halving and Hyperband (Li et al. 2017) over a resource such as fine-tuning epochs: many
// configurations get a small resource, the best 1/eta of each rung go on with eta times more. Lower
// scores are better; the evaluation is the caller's (a run, or a synthetic curve in the tests).
#pragma once

#include <functional>
#include <vector>

namespace lathe::search {

struct HalvingOptions {
    double minResource = 1;
    double maxResource = 8;
    double eta = 2;
};

// The resources of the rungs: min, min*eta, ... up to max (the last rung is max itself).
std::vector<double> halvingRungs(const HalvingOptions& options);

struct HalvingEvaluation {
    int config = 0;      // index into the bracket's configurations
    int rung = 0;
    double resource = 0;
    double score = 0;    // lower is better; NaN: failed (never promoted)
};

struct HalvingResult {
    std::vector<HalvingEvaluation> evaluations; // in the order they ran
    int best = -1;            // the configuration with the best score on the highest rung reached
    double bestScore = 0;
    double resourceSpent = 0; // sum of the resources of every evaluation
};

// One bracket: `configs` configurations start at the first rung. evaluate(config, resource) -> score;
// a `stop` that returns true ends the bracket early (budget spent, cancel).
HalvingResult successiveHalving(int configs, const HalvingOptions& options,
                                const std::function<double(int config, double resource)>& evaluate,
                                const std::function<bool()>& stop = {});

// Hyperband's brackets for a maximal resource ratio: (configurations, first resource) per bracket, from
// the most exploratory to plain full-resource evaluation.
struct Bracket {
    int configs = 0;
    double minResource = 0;
};
std::vector<Bracket> hyperbandBrackets(const HalvingOptions& options);

} // namespace lathe::search

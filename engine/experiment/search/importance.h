// Why the winner won: per dimension, how much of the spread of the trials' ranks that dimension alone
// explains (a first-order, fANOVA-style effect measured as epsilon-squared of a one-way analysis of
// variance over the dimension's values binned), and which values the best trials had.
#pragma once

#include "engine/experiment/search/samplers.h"

#include <string>
#include <vector>

namespace lathe::search {

// Fields seen in fewer trials are not rated (importance 0): with a handful of ranks split into two bins,
// chance alone explains most of their spread.
constexpr int kMinTrialsForImportance = 6;

struct FieldImportance {
    std::string name;
    double importance = 0;  // epsilon-squared in [0, 1]: share of the rank variance explained, bias-corrected
    int trials = 0;         // trials in which the dimension was active
    std::string bestValues; // the bin with the best mean rank: "quantize.int8" or "[0.62, 0.81]"
    double bestMeanRank = 0; // its mean rank as a fraction (0: always the best trial, 1: always the worst)
};

// Every dimension of the space, most important first. Ranks come from rankObservations (feasible first),
// so constraints count: a field that makes trials infeasible is important too.
std::vector<FieldImportance> fieldImportance(const Space& space, const std::vector<Observation>& obs);

} // namespace lathe::search

// Samplers of a search: random search (the baseline), TPE (tree-structured Parzen estimator, Bergstra et
// al. 2011, independent per dimension as Optuna's default or, with `multivariate`, one joint estimator over
// whole points as Falkner et al. 2018; constraint-aware as c-TPE: infeasible trials always count as bad),
// and its multi-objective variant (MOTPE-style: the good group chosen by
// non-dominated rank, ties by crowding distance as NSGA-II). Every objective is minimised.
#pragma once

#include "engine/core/rng.h"
#include "engine/experiment/search/space.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lathe::search {

struct Observation {
    Point point;                     // normalized
    std::vector<double> objectives;  // minimised; empty or NaN: the trial failed (counts as worst)
    double violation = 0;            // sum of constraint violations, 0: feasible
};

bool failed(const Observation& o);
bool feasible(const Observation& o);

// a dominates b (every objective <=, one <).
bool dominates(const std::vector<double>& a, const std::vector<double>& b);
// Non-dominated rank of each of the given objective vectors (0: the front).
std::vector<int> nondominatedRanks(const std::vector<std::vector<double>>& objectives);
// Crowding distance (NSGA-II) of each vector within its own rank.
std::vector<double> crowdingDistances(const std::vector<std::vector<double>>& objectives, const std::vector<int>& ranks);
// Indices of the feasible, successful observations on the Pareto front, in input order.
std::vector<std::size_t> paretoFront(const std::vector<Observation>& obs);
// Every observation ordered best first: feasible before infeasible (by violation), failed last; feasible
// ones by objective (single) or by rank then crowding distance (several).
std::vector<std::size_t> rankObservations(const std::vector<Observation>& obs);
// The best feasible observation (single objective: lowest; several: the first of rankObservations), or -1.
int incumbent(const std::vector<Observation>& obs);

class Sampler {
public:
    virtual ~Sampler() = default;
    virtual std::string name() const = 0;
    // The next point to evaluate given every observation so far (normalized, inactive dimensions NaN).
    virtual Point suggest(const Space& space, const std::vector<Observation>& history, Rng& rng) = 0;
};

Point samplePrior(const Space& space, Rng& rng);

class RandomSampler final : public Sampler {
public:
    std::string name() const override { return "random"; }
    Point suggest(const Space& space, const std::vector<Observation>& history, Rng& rng) override;
};

struct TpeOptions {
    int startupTrials = 10;   // random points before the model takes over
    int candidates = 24;      // draws from l(x) per dimension, the best l/g kept
    double gamma = 0.25;      // fraction of observations in the good group (hyperopt's default) ...
    int maxGood = 25;         // ... at most this many
    double priorWeight = 1.0; // weight of the uniform prior component in each estimator
    bool multivariate = false; // one joint estimator over whole points instead of one per dimension
};

// Single objective (objectives[0]) or, with several, the MOTPE-style split. The same class serves both:
// the good group is the first gamma of rankObservations.
class TpeSampler final : public Sampler {
public:
    explicit TpeSampler(TpeOptions options = {}) : m_options(options) {}
    std::string name() const override { return "tpe"; }
    Point suggest(const Space& space, const std::vector<Observation>& history, Rng& rng) override;

private:
    TpeOptions m_options;
};

// "random", "tpe", "motpe" (TPE with the multi-objective split); throws std::invalid_argument otherwise.
std::unique_ptr<Sampler> makeSampler(const std::string& name, TpeOptions options = {});

} // namespace lathe::search

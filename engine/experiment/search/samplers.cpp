// Random and TPE samplers, Pareto ranking. TPE follows Optuna's independent sampler: per dimension, a
// Parzen estimator (truncated Gaussians; bandwidth from the neighbours' gaps) over the good trials, l(x),
// and one over the rest, g(x), each with a uniform prior component; candidates drawn from l, the best l/g
// kept. Dimensions that a trial did not have (conditional fields) use only the trials that had them. The
// multivariate variant (JointParzen below) models whole points instead.
#include "engine/experiment/search/samplers.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace lathe::search {
namespace {

constexpr double kPi = 3.14159265358979323846;

double uniform01(Rng& rng) {
    // 53 random bits: the float uniform() has only 24, too coarse for narrow kernels.
    return static_cast<double>(rng.next() >> 11) * (1.0 / 9007199254740992.0);
}

double normalCdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

// A dimension's internal coordinate: log for log scales; integers widened by half a step each side.
struct Interval {
    double low, high;
};
Interval internalRange(const Dimension& d) {
    double lo = d.low, hi = d.high;
    if (d.kind == DimKind::Integer) {
        lo = std::ceil(d.low) - 0.5;
        hi = std::floor(d.high) + 0.5;
        if (d.log) lo = std::max(lo, d.low * 0.5);
    }
    if (d.log) return {std::log(lo), std::log(hi)};
    return {lo, hi};
}
double toInternal(const Dimension& d, double v) { return d.log ? std::log(v) : v; }
double fromInternal(const Dimension& d, double u) {
    double v = d.log ? std::exp(u) : u;
    if (d.kind == DimKind::Integer) v = std::round(v);
    return std::clamp(v, d.low, d.high);
}

// The log density of a Gaussian (mu, sigma) truncated to the range, at x.
double truncatedNormalLogPdf(double x, double mu, double sigma, Interval r) {
    const double z = (x - mu) / sigma;
    const double mass = normalCdf((r.high - mu) / sigma) - normalCdf((r.low - mu) / sigma);
    return -0.5 * z * z - std::log(sigma * std::sqrt(2 * kPi) * std::max(mass, 1e-300));
}

// A draw from that truncated Gaussian (rejection; mu clamped into the range after 64 misses).
double truncatedNormalSample(double mu, double sigma, Interval r, Rng& rng) {
    for (int tries = 0; tries < 64; ++tries) {
        const double x = mu + sigma * static_cast<double>(rng.normal());
        if (x >= r.low && x <= r.high) return x;
    }
    return std::clamp(mu, r.low, r.high);
}

// A mixture of truncated Gaussians on [low, high] with equal weights plus a prior component.
struct Parzen {
    std::vector<double> mu, sigma, weight;
    Interval range;

    Parzen(const std::vector<double>& values, Interval r, double priorWeight) : range(r) {
        const double width = std::max(r.high - r.low, 1e-12);
        const double priorMu = 0.5 * (r.low + r.high);
        std::vector<double> all = values;
        all.push_back(priorMu);
        std::vector<std::size_t> order(all.size());
        std::iota(order.begin(), order.end(), 0);
        std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return all[a] < all[b]; });
        std::vector<double> sig(all.size(), width);
        for (std::size_t k = 0; k < order.size(); ++k) {
            const double left = k == 0 ? all[order[k]] - r.low : all[order[k]] - all[order[k - 1]];
            const double right = k + 1 == order.size() ? r.high - all[order[k]] : all[order[k + 1]] - all[order[k]];
            sig[order[k]] = std::max(left, right);
        }
        const double minSigma = width / std::min(100.0, 1.0 + static_cast<double>(all.size()));
        for (std::size_t i = 0; i < values.size(); ++i) {
            mu.push_back(values[i]);
            sigma.push_back(std::clamp(sig[i], minSigma, width));
            weight.push_back(1.0);
        }
        mu.push_back(priorMu);
        sigma.push_back(width);
        weight.push_back(priorWeight);
        const double total = std::accumulate(weight.begin(), weight.end(), 0.0);
        for (double& w : weight) w /= total;
    }

    double logPdf(double x) const {
        double p = 0;
        for (std::size_t i = 0; i < mu.size(); ++i) p += weight[i] * std::exp(truncatedNormalLogPdf(x, mu[i], sigma[i], range));
        return std::log(std::max(p, 1e-300));
    }

    double sample(Rng& rng) const {
        double u = uniform01(rng), acc = 0;
        std::size_t i = 0;
        for (; i + 1 < weight.size(); ++i) {
            acc += weight[i];
            if (u < acc) break;
        }
        return truncatedNormalSample(mu[i], sigma[i], range, rng);
    }
};

double sampleDimension(const Dimension& d, Rng& rng) {
    if (d.kind == DimKind::Categorical) return static_cast<double>(rng.below(d.choices.size()));
    const Interval r = internalRange(d);
    return fromInternal(d, r.low + (r.high - r.low) * uniform01(rng));
}

// Categorical estimator: counts plus the prior spread evenly over the choices.
std::vector<double> categoricalLogP(const std::vector<double>& values, std::size_t k, double priorWeight) {
    std::vector<double> w(k, priorWeight / static_cast<double>(k));
    for (double v : values) w[static_cast<std::size_t>(v)] += 1.0;
    const double total = std::accumulate(w.begin(), w.end(), 0.0);
    for (double& x : w) x = std::log(x / total);
    return w;
}

// Multivariate TPE (Falkner et al. 2018; Optuna's multivariate sampler): one estimator over whole points
// instead of one per dimension, so that values which are good together (a low-rank energy with a finetune
// after it) are drawn together. Each trial of the group is a kernel, the product over the dimensions of a
// truncated Gaussian (its bandwidth from the neighbours' gaps, as in the independent estimator) or, for a
// categorical, its own value with weight 1 and the others sharing kCategoricalSmoothing; a dimension the
// trial did not have contributes the uniform prior. A uniform component of weight priorWeight completes the
// mixture. Only the dimensions active in the point scored enter its density, the same ones in l and g.
constexpr double kCategoricalSmoothing = 0.5;

class JointParzen {
public:
    JointParzen(const Space& space, std::vector<const Point*> members, double priorWeight)
        : m_space(space), m_members(std::move(members)), m_priorWeight(priorWeight),
          m_sigma(space.size(), std::vector<double>(m_members.size(), 0.0)) {
        for (std::size_t d = 0; d < space.size(); ++d) {
            const Dimension& dim = space.dims()[d];
            if (dim.kind == DimKind::Categorical) continue;
            std::vector<double> values;
            std::vector<std::size_t> who;
            for (std::size_t m = 0; m < m_members.size(); ++m) {
                const Point& p = *m_members[m];
                if (d < p.size() && isActive(p[d])) {
                    values.push_back(toInternal(dim, p[d]));
                    who.push_back(m);
                }
            }
            const Parzen bandwidths(values, internalRange(dim), priorWeight);
            for (std::size_t k = 0; k < who.size(); ++k) m_sigma[d][who[k]] = bandwidths.sigma[k];
        }
    }

    double logPdf(const Point& x) const {
        std::vector<double> terms;
        terms.reserve(m_members.size() + 1);
        double prior = std::log(m_priorWeight);
        for (std::size_t d = 0; d < x.size(); ++d)
            if (isActive(x[d])) prior += logUniform(d);
        terms.push_back(prior);
        for (std::size_t m = 0; m < m_members.size(); ++m) {
            double t = 0;
            for (std::size_t d = 0; d < x.size(); ++d)
                if (isActive(x[d])) t += logKernel(d, m, x[d]);
            terms.push_back(t);
        }
        const double top = *std::max_element(terms.begin(), terms.end());
        double sum = 0;
        for (double t : terms) sum += std::exp(t - top);
        return top + std::log(sum) - std::log(static_cast<double>(m_members.size()) + m_priorWeight);
    }

    Point sample(Rng& rng) const {
        // The component: a member with weight 1 each, or the prior.
        const double total = static_cast<double>(m_members.size()) + m_priorWeight;
        const double u = uniform01(rng) * total;
        const std::size_t c = u < static_cast<double>(m_members.size()) ? static_cast<std::size_t>(u) : m_members.size();
        Point x(m_space.size(), inactive());
        for (std::size_t d = 0; d < m_space.size(); ++d) {
            if (!m_space.active(d, x)) continue;
            const Dimension& dim = m_space.dims()[d];
            const bool own = c < m_members.size() && d < m_members[c]->size() && isActive((*m_members[c])[d]);
            if (!own) {
                x[d] = sampleDimension(dim, rng);
                continue;
            }
            const double center = (*m_members[c])[d];
            if (dim.kind == DimKind::Categorical) {
                // Its own value with probability 1 / (1 + s), else any value uniformly: the kernel's law.
                x[d] = uniform01(rng) < 1.0 / (1.0 + kCategoricalSmoothing) ? center
                                                                             : static_cast<double>(rng.below(dim.choices.size()));
                continue;
            }
            x[d] = fromInternal(dim, truncatedNormalSample(toInternal(dim, center), m_sigma[d][c], internalRange(dim), rng));
        }
        return m_space.normalize(x);
    }

private:
    double logUniform(std::size_t d) const {
        const Dimension& dim = m_space.dims()[d];
        if (dim.kind == DimKind::Categorical) return -std::log(static_cast<double>(dim.choices.size()));
        const Interval r = internalRange(dim);
        return -std::log(std::max(r.high - r.low, 1e-12));
    }

    double logKernel(std::size_t d, std::size_t m, double value) const {
        const Point& p = *m_members[m];
        if (d >= p.size() || !isActive(p[d])) return logUniform(d);
        const Dimension& dim = m_space.dims()[d];
        if (dim.kind == DimKind::Categorical) {
            const double k = static_cast<double>(dim.choices.size());
            const double same = value == p[d] ? 1.0 : 0.0;
            return std::log((same + kCategoricalSmoothing / k) / (1.0 + kCategoricalSmoothing));
        }
        return truncatedNormalLogPdf(toInternal(dim, value), toInternal(dim, p[d]), m_sigma[d][m], internalRange(dim));
    }

    const Space& m_space;
    std::vector<const Point*> m_members;
    double m_priorWeight;
    std::vector<std::vector<double>> m_sigma; // [dimension][member]: a real dimension's kernel bandwidth
};

} // namespace

bool failed(const Observation& o) {
    if (o.objectives.empty()) return true;
    return std::any_of(o.objectives.begin(), o.objectives.end(), [](double v) { return !std::isfinite(v); });
}
bool feasible(const Observation& o) { return !failed(o) && o.violation <= 0; }

bool dominates(const std::vector<double>& a, const std::vector<double>& b) {
    bool strictly = false;
    for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
        if (a[i] > b[i]) return false;
        if (a[i] < b[i]) strictly = true;
    }
    return strictly;
}

std::vector<int> nondominatedRanks(const std::vector<std::vector<double>>& objectives) {
    const std::size_t n = objectives.size();
    std::vector<int> rank(n, -1);
    std::vector<int> dominatedBy(n, 0);
    std::vector<std::vector<std::size_t>> dominating(n);
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < n; ++j) {
            if (i == j) continue;
            if (dominates(objectives[i], objectives[j])) dominating[i].push_back(j);
            else if (dominates(objectives[j], objectives[i])) ++dominatedBy[i];
        }
    std::vector<std::size_t> front;
    for (std::size_t i = 0; i < n; ++i)
        if (dominatedBy[i] == 0) front.push_back(i);
    for (int r = 0; !front.empty(); ++r) {
        std::vector<std::size_t> next;
        for (std::size_t i : front) {
            rank[i] = r;
            for (std::size_t j : dominating[i])
                if (--dominatedBy[j] == 0) next.push_back(j);
        }
        front = std::move(next);
    }
    return rank;
}

std::vector<double> crowdingDistances(const std::vector<std::vector<double>>& objectives, const std::vector<int>& ranks) {
    const std::size_t n = objectives.size();
    std::vector<double> dist(n, 0.0);
    if (n == 0) return dist;
    const int maxRank = *std::max_element(ranks.begin(), ranks.end());
    const std::size_t m = objectives[0].size();
    for (int r = 0; r <= maxRank; ++r) {
        std::vector<std::size_t> members;
        for (std::size_t i = 0; i < n; ++i)
            if (ranks[i] == r) members.push_back(i);
        for (std::size_t k = 0; k < m; ++k) {
            std::sort(members.begin(), members.end(),
                      [&](std::size_t a, std::size_t b) { return objectives[a][k] < objectives[b][k]; });
            const double span = objectives[members.back()][k] - objectives[members.front()][k];
            dist[members.front()] = dist[members.back()] = std::numeric_limits<double>::infinity();
            if (span <= 0) continue;
            for (std::size_t t = 1; t + 1 < members.size(); ++t)
                dist[members[t]] += (objectives[members[t + 1]][k] - objectives[members[t - 1]][k]) / span;
        }
    }
    return dist;
}

std::vector<std::size_t> paretoFront(const std::vector<Observation>& obs) {
    std::vector<std::size_t> good;
    for (std::size_t i = 0; i < obs.size(); ++i)
        if (feasible(obs[i])) good.push_back(i);
    std::vector<std::size_t> front;
    for (std::size_t i : good) {
        bool dominated = false;
        for (std::size_t j : good)
            if (j != i && dominates(obs[j].objectives, obs[i].objectives)) {
                dominated = true;
                break;
            }
        if (!dominated) front.push_back(i);
    }
    return front;
}

std::vector<std::size_t> rankObservations(const std::vector<Observation>& obs) {
    std::vector<std::size_t> feas, infeas, bad;
    for (std::size_t i = 0; i < obs.size(); ++i) {
        if (failed(obs[i])) bad.push_back(i);
        else if (obs[i].violation > 0) infeas.push_back(i);
        else feas.push_back(i);
    }
    const bool multi = !feas.empty() && obs[feas[0]].objectives.size() > 1;
    if (multi) {
        std::vector<std::vector<double>> objs;
        for (std::size_t i : feas) objs.push_back(obs[i].objectives);
        const auto ranks = nondominatedRanks(objs);
        const auto crowd = crowdingDistances(objs, ranks);
        std::vector<std::size_t> order(feas.size());
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
            if (ranks[a] != ranks[b]) return ranks[a] < ranks[b];
            return crowd[a] > crowd[b];
        });
        std::vector<std::size_t> sorted;
        for (std::size_t k : order) sorted.push_back(feas[k]);
        feas = std::move(sorted);
    } else {
        std::stable_sort(feas.begin(), feas.end(),
                         [&](std::size_t a, std::size_t b) { return obs[a].objectives[0] < obs[b].objectives[0]; });
    }
    std::stable_sort(infeas.begin(), infeas.end(),
                     [&](std::size_t a, std::size_t b) { return obs[a].violation < obs[b].violation; });
    feas.insert(feas.end(), infeas.begin(), infeas.end());
    feas.insert(feas.end(), bad.begin(), bad.end());
    return feas;
}

int incumbent(const std::vector<Observation>& obs) {
    const auto order = rankObservations(obs);
    if (order.empty() || !feasible(obs[order[0]])) return -1;
    return static_cast<int>(order[0]);
}

Point samplePrior(const Space& space, Rng& rng) {
    Point p(space.size(), inactive());
    for (std::size_t i = 0; i < space.size(); ++i)
        if (space.active(i, p)) p[i] = sampleDimension(space.dims()[i], rng);
    return space.normalize(p);
}

Point RandomSampler::suggest(const Space& space, const std::vector<Observation>&, Rng& rng) {
    return samplePrior(space, rng);
}

Point TpeSampler::suggest(const Space& space, const std::vector<Observation>& history, Rng& rng) {
    if (static_cast<int>(history.size()) < m_options.startupTrials) return samplePrior(space, rng);
    const auto order = rankObservations(history);
    const std::size_t nGood = std::clamp<std::size_t>(
        static_cast<std::size_t>(std::ceil(m_options.gamma * static_cast<double>(history.size()))), 1,
        static_cast<std::size_t>(m_options.maxGood));
    std::vector<char> isGood(history.size(), 0);
    for (std::size_t k = 0; k < nGood && k < order.size(); ++k)
        // A good trial must be feasible and have succeeded; when none is, the least violating ones lead.
        if (!failed(history[order[k]])) isGood[order[k]] = 1;

    if (m_options.multivariate) {
        std::vector<const Point*> good, bad;
        for (std::size_t t = 0; t < history.size(); ++t) (isGood[t] ? good : bad).push_back(&history[t].point);
        const JointParzen l(space, std::move(good), m_options.priorWeight), g(space, std::move(bad), m_options.priorWeight);
        Point chosen;
        double best = -1e300;
        for (int c = 0; c < m_options.candidates; ++c) {
            Point x = l.sample(rng);
            const double score = l.logPdf(x) - g.logPdf(x);
            if (chosen.empty() || score > best) {
                best = score;
                chosen = std::move(x);
            }
        }
        return chosen;
    }

    Point p(space.size(), inactive());
    for (std::size_t i = 0; i < space.size(); ++i) {
        if (!space.active(i, p)) continue;
        const Dimension& d = space.dims()[i];
        std::vector<double> below, above;
        for (std::size_t t = 0; t < history.size(); ++t) {
            const Point& hp = history[t].point;
            if (i >= hp.size() || !isActive(hp[i])) continue;
            const double v = d.kind == DimKind::Categorical ? hp[i] : toInternal(d, hp[i]);
            (isGood[t] ? below : above).push_back(v);
        }
        if (d.kind == DimKind::Categorical) {
            const auto lp = categoricalLogP(below, d.choices.size(), m_options.priorWeight);
            const auto gp = categoricalLogP(above, d.choices.size(), m_options.priorWeight);
            // Draw candidates from l and keep the best ratio (a draw, not an argmax over choices, so that
            // a choice with a high ratio but few draws is still explored in proportion).
            double best = -1e300;
            double chosen = 0;
            for (int c = 0; c < m_options.candidates; ++c) {
                double u = uniform01(rng), acc = 0;
                std::size_t k = 0;
                for (; k + 1 < lp.size(); ++k) {
                    acc += std::exp(lp[k]);
                    if (u < acc) break;
                }
                const double score = lp[k] - gp[k];
                if (score > best) {
                    best = score;
                    chosen = static_cast<double>(k);
                }
            }
            p[i] = chosen;
        } else {
            const Interval r = internalRange(d);
            const Parzen l(below, r, m_options.priorWeight), g(above, r, m_options.priorWeight);
            double best = -1e300, chosen = l.sample(rng);
            for (int c = 0; c < m_options.candidates; ++c) {
                const double x = l.sample(rng);
                const double score = l.logPdf(x) - g.logPdf(x);
                if (score > best) {
                    best = score;
                    chosen = x;
                }
            }
            p[i] = fromInternal(d, chosen);
        }
    }
    return space.normalize(p);
}

std::unique_ptr<Sampler> makeSampler(const std::string& name, TpeOptions options) {
    if (name == "random") return std::make_unique<RandomSampler>();
    if (name == "tpe" || name == "motpe") return std::make_unique<TpeSampler>(options);
    throw std::invalid_argument("unknown search algorithm \"" + name + "\" (random, tpe, motpe)");
}

} // namespace lathe::search

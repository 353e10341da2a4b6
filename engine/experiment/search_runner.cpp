// The search loop: space from the `search` section, trials as runs with the search's run as parent,
// look-ups of identical configurations, resume and warm start from the store, the winner as a plain
// experiment file, importances stored with the search's run.
#include "engine/experiment/search_runner.h"

#include "engine/core/clock.h"
#include "engine/core/errors.h"
#include "engine/experiment/search/halving.h"
#include "engine/strategies/registry.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

namespace lathe {
namespace {

using json = nlohmann::json;
using search::DimKind;
using search::Point;

// Three significant digits: readable configurations, and a near-repeat is the same configuration.
double roundSignificant(double v) {
    if (v == 0 || !std::isfinite(v)) return v;
    const double scale = std::pow(10.0, 2 - std::floor(std::log10(std::abs(v))));
    return std::round(v * scale) / scale;
}

// The space of a search section and the map between points and chains of steps.
class ChainSpace {
public:
    explicit ChainSpace(const SearchSpec& spec) : m_spec(spec) {
        std::set<std::string> seen;
        for (std::size_t s = 0; s < spec.space.size(); ++s)
            for (const auto& o : spec.space[s].options)
                for (const auto& f : o.fields) {
                    const std::string n = o.strategy + "." + f.name;
                    if (seen.count(n)) m_qualify = true;
                    seen.insert(n);
                }
        for (std::size_t s = 0; s < spec.space.size(); ++s) {
            const SearchSlot& slot = spec.space[s];
            search::Dimension d;
            d.name = "step " + std::to_string(s + 1); // which strategy holds this position of the chain
            d.kind = DimKind::Categorical;
            for (const auto& o : slot.options) d.choices.push_back(o.strategy);
            if (slot.optional) d.choices.push_back("none");
            const int slotDim = m_space.add(d);
            m_slotDims.push_back(slotDim);
            std::vector<std::vector<int>> optionDims;
            for (std::size_t oi = 0; oi < slot.options.size(); ++oi) {
                std::vector<int> dims;
                for (const auto& f : slot.options[oi].fields) {
                    search::Dimension fd;
                    fd.name = (m_qualify ? d.name + "." : std::string()) + slot.options[oi].strategy + "." + f.name;
                    fd.parent = slotDim;
                    fd.parentValues = {static_cast<int>(oi)};
                    if (f.categorical) {
                        fd.kind = DimKind::Categorical;
                        for (const auto& c : f.choices) fd.choices.push_back(c.is_string() ? c.get<std::string>() : c.dump());
                    } else {
                        fd.kind = f.type == ParamType::Integer ? DimKind::Integer : DimKind::Real;
                        fd.low = f.low;
                        fd.high = f.high;
                        fd.log = f.log;
                    }
                    dims.push_back(m_space.add(fd));
                }
                optionDims.push_back(std::move(dims));
            }
            m_fieldDims.push_back(std::move(optionDims));
        }
    }

    const search::Space& space() const { return m_space; }

    Point tidy(Point p) const {
        for (std::size_t i = 0; i < p.size(); ++i)
            if (search::isActive(p[i]) && m_space.dims()[i].kind == DimKind::Real) p[i] = roundSignificant(p[i]);
        return m_space.normalize(std::move(p));
    }

    // The searched part of the chain for a point.
    json decode(const Point& p) const {
        json steps = json::array();
        for (std::size_t s = 0; s < m_spec.space.size(); ++s) {
            const auto choice = static_cast<std::size_t>(p[static_cast<std::size_t>(m_slotDims[s])]);
            if (choice >= m_spec.space[s].options.size()) continue; // "none"
            const SearchOption& o = m_spec.space[s].options[choice];
            json params = o.fixedParams;
            for (std::size_t k = 0; k < o.fields.size(); ++k) {
                const SearchField& f = o.fields[k];
                const double v = p[static_cast<std::size_t>(m_fieldDims[s][choice][k])];
                if (f.categorical) params[f.name] = f.choices[static_cast<std::size_t>(v)];
                else if (f.type == ParamType::Integer) params[f.name] = static_cast<std::int64_t>(std::llround(v));
                else params[f.name] = v;
            }
            steps.push_back(json{{"strategy", o.strategy}, {"params", params}});
        }
        return steps;
    }

    // The point of a searched chain as written (params as the run stored them), if the space holds it.
    // The caller checks the round trip (decode of the result against the stored chain, defaults filled).
    std::optional<Point> encode(const json& steps) const {
        Point p(m_space.size(), search::inactive());
        std::size_t at = 0;
        for (std::size_t s = 0; s < m_spec.space.size(); ++s) {
            const SearchSlot& slot = m_spec.space[s];
            bool matched = false;
            if (at < steps.size()) {
                const json& st = steps[at];
                for (std::size_t oi = 0; oi < slot.options.size() && !matched; ++oi) {
                    const SearchOption& o = slot.options[oi];
                    if (st.value("strategy", "") != o.strategy) continue;
                    const json params = st.contains("params") ? st.at("params") : json::object();
                    Point q = p;
                    q[static_cast<std::size_t>(m_slotDims[s])] = static_cast<double>(oi);
                    bool ok = true;
                    for (std::size_t k = 0; k < o.fields.size() && ok; ++k) {
                        const SearchField& f = o.fields[k];
                        const auto dim = static_cast<std::size_t>(m_fieldDims[s][oi][k]);
                        if (!params.contains(f.name)) {
                            ok = false;
                        } else if (f.categorical) {
                            auto it = std::find(f.choices.begin(), f.choices.end(), params.at(f.name));
                            ok = it != f.choices.end();
                            if (ok) q[dim] = static_cast<double>(it - f.choices.begin());
                        } else {
                            ok = params.at(f.name).is_number();
                            if (ok) q[dim] = params.at(f.name).get<double>();
                            ok = ok && q[dim] >= f.low && q[dim] <= f.high;
                        }
                    }
                    if (ok) {
                        p = q;
                        matched = true;
                        ++at;
                    }
                }
            }
            if (!matched) {
                if (!slot.optional) return std::nullopt;
                p[static_cast<std::size_t>(m_slotDims[s])] = static_cast<double>(slot.options.size());
            }
        }
        if (at != steps.size()) return std::nullopt;
        return m_space.normalize(p);
    }

private:
    const SearchSpec& m_spec;
    search::Space m_space;
    bool m_qualify = false;
    std::vector<int> m_slotDims;
    std::vector<std::vector<std::vector<int>>> m_fieldDims; // slot -> option -> field -> dimension
};

// What determines a run's figures besides its name and notes: the parsed experiment with defaults filled,
// without the labels. Two runs with the same identity are the same configuration.
std::optional<json> identityOf(const json& doc) {
    try {
        json d = toJson(parseExperiment(doc, ""));
        for (const char* k : {"name", "description", "tags", "notes", "sweep", "search"}) d.erase(k);
        json steps = json::array();
        for (const auto& s : d.at("steps"))
            if (!s.contains("enabled") || s.at("enabled").get<bool>()) steps.push_back(s);
        d["steps"] = steps;
        return d;
    } catch (const std::exception&) {
        return std::nullopt; // a stored config this version cannot read: not comparable
    }
}
json baselineOf(json identity) {
    identity.erase("steps");
    return identity;
}

std::string chainText(const json& steps) {
    std::string out;
    for (const auto& s : steps) {
        if (!out.empty()) out += " > ";
        out += s.value("strategy", "?");
        const json params = s.contains("params") ? s.at("params") : json::object();
        if (!params.empty()) {
            std::string inner;
            for (const auto& [k, v] : params.items()) {
                if (!inner.empty()) inner += ", ";
                char buf[64];
                if (v.is_number_float()) std::snprintf(buf, sizeof(buf), "%.4g", v.get<double>());
                inner += k + "=" + (v.is_number_float() ? std::string(buf) : v.is_string() ? v.get<std::string>() : v.dump());
            }
            out += "{" + inner + "}";
        }
    }
    return out.empty() ? "(no steps)" : out;
}

std::string fmt(double v) {
    char buf[48];
    std::snprintf(buf, sizeof(buf), "%.5g", v);
    return buf;
}

// What a search knows of its experiment: the space, the plain part every trial shares, and the map from a
// stored run's configuration back to a point of the space.
struct SearchSetup {
    SearchSpec ss;
    ChainSpace chain;
    std::string name;
    json base, prefix, baseSteps, baseline;

    SearchSetup(const ExperimentSpec& spec, const json& doc)
        : ss(parseSearchSection(spec.search, spec.sourceName)), chain(ss), name(spec.name) {
        base = doc;
        base.erase("search");
        prefix = base.contains("steps") ? base.at("steps") : json::array();
        const auto id = identityOf(trialDoc(json::array(), 0));
        if (!id) throw ConfigError(spec.sourceName + ": the experiment without its search is not valid");
        baseline = baselineOf(*id);
        baseSteps = id->at("steps");
    }
    // The experiment of one trial: the plain part with the searched chain appended to its steps.
    json trialDoc(const json& searched, int index) const {
        json d = base;
        json steps = prefix;
        for (const auto& s : searched) steps.push_back(s);
        d["steps"] = steps;
        d["name"] = name + " #" + std::to_string(index + 1);
        return d;
    }
    // A stored run's identity -> this space's point, when it is the prefix plus a chain the space holds.
    std::optional<Point> pointOf(const json& identity) const {
        if (baselineOf(identity) != baseline) return std::nullopt;
        const json& steps = identity.at("steps");
        if (steps.size() < baseSteps.size()) return std::nullopt;
        for (std::size_t i = 0; i < baseSteps.size(); ++i)
            if (steps[i] != baseSteps[i]) return std::nullopt;
        const json searched(json(steps.begin() + static_cast<std::ptrdiff_t>(baseSteps.size()), steps.end()));
        auto p = chain.encode(searched);
        if (!p) return std::nullopt;
        const auto back = identityOf(trialDoc(stepsOf(identity, *p), 0));
        if (!back || back->at("steps") != steps) return std::nullopt;
        return p;
    }
    // The searched chain of a stored run at point p, as the search writes it. With halving the epochs of its
    // finetune steps are the rung's, not the point's: they are taken from the run.
    json stepsOf(const json& identity, const Point& p) const {
        json steps = chain.decode(p);
        if (!ss.halving) return steps;
        std::vector<json> epochs;
        const json& stored = identity.at("steps");
        for (std::size_t i = baseSteps.size(); i < stored.size(); ++i)
            if (stored[i].value("strategy", "") == "finetune") epochs.push_back(stored[i].at("params").value("epochs", json(1)));
        std::size_t k = 0;
        for (auto& s : steps)
            if (s.at("strategy") == "finetune" && k < epochs.size()) s["params"]["epochs"] = epochs[k++];
        return steps;
    }
    // A stored configuration's point and searched chain, when the space holds it.
    std::optional<std::pair<Point, json>> trialOfConfig(const std::string& configJson) const {
        try {
            const auto id = identityOf(json::parse(configJson));
            const auto p = id ? pointOf(*id) : std::nullopt;
            if (!p) return std::nullopt;
            return std::make_pair(*p, stepsOf(*id, *p));
        } catch (const std::exception&) {
            return std::nullopt;
        }
    }
};

// Best (or Pareto set, or the closest when nothing is feasible), importances over every observation, the
// winner's experiment file and the explanation.
void concludeSearch(const SearchSetup& setup, SearchResult& result) {
    const SearchSpec& ss = setup.ss;
    std::vector<search::Observation> obs;
    for (const auto& t : result.trials) obs.push_back(t.observation);
    result.best = -1;
    result.pareto.clear();
    result.closest.clear();
    if (ss.objectives.size() == 1) {
        result.best = search::incumbent(obs);
    } else {
        for (std::size_t i : search::paretoFront(obs)) result.pareto.push_back(static_cast<int>(i));
        if (!result.pareto.empty()) result.best = result.pareto.front();
    }
    if (result.best < 0) {
        const auto order = search::rankObservations(obs);
        for (std::size_t k = 0; k < order.size() && result.closest.size() < 3; ++k)
            if (!search::failed(obs[order[k]])) result.closest.push_back(static_cast<int>(order[k]));
    }
    result.importance = search::fieldImportance(setup.chain.space(), obs);
    result.winner = json();
    if (result.best >= 0) {
        json w = setup.base;
        const SearchTrial& best = result.trials[static_cast<std::size_t>(result.best)];
        w["name"] = setup.name + "-best";
        json steps = setup.prefix;
        for (const auto& s : best.steps) steps.push_back(s);
        w["steps"] = steps;
        std::string desc = "Found by search run " + std::to_string(result.searchRunId) + " (run " + std::to_string(best.runId) +
                           (best.origin == "warm" ? ", a stored run of the same baseline" : "") + "):";
        for (const auto& o : ss.objectives)
            if (best.summary.count(o.metric)) desc += " " + o.metric + " " + fmt(best.summary.at(o.metric)) + ";";
        for (const auto& c : ss.constraints)
            if (best.summary.count(c.metric)) desc += " " + c.metric + " " + fmt(best.summary.at(c.metric)) + ";";
        w["description"] = desc;
        if (result.pareto.size() > 1) {
            w["name"] = setup.name + "-pareto";
            w["description"] = "The Pareto set of search run " + std::to_string(result.searchRunId) + ", one run per chain.";
            json chains = json::array();
            for (int i : result.pareto) {
                json c = setup.prefix;
                for (const auto& s : result.trials[static_cast<std::size_t>(i)].steps) c.push_back(s);
                chains.push_back(c);
            }
            w["sweep"] = json{{"steps", chains}};
        }
        result.winner = w;
    }
    result.explanation = explainSearch(ss, result);
}

} // namespace

search::Observation observe(const SearchSpec& spec, const std::map<std::string, double>& summary, std::string* missing) {
    search::Observation o;
    auto get = [&](const std::string& key) -> std::optional<double> {
        auto it = summary.find(key);
        if (it == summary.end() || !std::isfinite(it->second)) {
            if (missing && missing->empty()) *missing = key;
            return std::nullopt;
        }
        return it->second;
    };
    for (const auto& obj : spec.objectives) {
        const auto v = get(obj.metric);
        o.objectives.push_back(v ? (obj.maximize ? -*v : *v) : NAN);
    }
    for (const auto& c : spec.constraints) {
        const auto v = get(c.metric);
        if (!v) {
            o.violation += 1e9;
            continue;
        }
        if (c.min && *v < *c.min) o.violation += (*c.min - *v) / std::max(std::abs(*c.min), 1e-3);
        if (c.max && *v > *c.max) o.violation += (*v - *c.max) / std::max(std::abs(*c.max), 1e-3);
    }
    return o;
}

SearchRunner::SearchRunner(RunStore& store, RunnerOptions options) : m_store(store), m_options(std::move(options)) {}

SearchResult SearchRunner::run(const ExperimentSpec& spec, const nlohmann::json& doc, const SearchEvents& events,
                               const std::atomic<bool>& cancel) {
    if (spec.search.is_null()) throw ConfigError(spec.sourceName + ": the experiment has no \"search\" section");
    const SearchSetup setup(spec, doc);
    const SearchSpec& ss = setup.ss;
    const ChainSpace& chain = setup.chain;
    auto log = [&](LogLevel level, const std::string& msg) {
        if (events.run.log) events.run.log(level, msg);
    };
    auto trialDoc = [&](const json& searched, int index) { return setup.trialDoc(searched, index); };
    SearchResult result;
    for (const auto& d : chain.space().dims()) result.dimensionNames.push_back(d.name);

    // The store: identities of every finished run (look-ups, warm start), and this search's own run.
    RunFilter all;
    all.withJson = true;
    const std::vector<RunRecord> stored = m_store.listRuns(all);
    // identity dump -> the run that has it (done preferred over failed); trials run now are added.
    struct Known {
        std::int64_t runId;
        std::string status;
        std::map<std::string, double> summary;
    };
    std::map<std::string, Known> byIdentity;
    std::map<std::int64_t, json> identities;
    const std::string docText = doc.dump();
    std::int64_t searchRunId = 0;
    for (const RunRecord& r : stored) { // newest first
        if (r.strategyChain == "search") {
            if (!searchRunId && r.configJson == docText) searchRunId = r.id;
            continue;
        }
        // Failed runs too: a configuration that fails fails again (looked up, and learned from).
        if (r.status != run_status::kDone && r.status != run_status::kFailed) continue;
        json cfg;
        try {
            cfg = json::parse(r.configJson);
        } catch (const std::exception&) {
            continue;
        }
        const auto id = identityOf(cfg);
        if (!id) continue;
        identities[r.id] = *id;
        auto [it, fresh] = byIdentity.emplace(id->dump(), Known{r.id, r.status, r.summary});
        if (!fresh && it->second.status != run_status::kDone && r.status == run_status::kDone)
            it->second = Known{r.id, r.status, r.summary};
    }

    if (searchRunId) {
        log(LogLevel::Info, "resuming search run " + std::to_string(searchRunId) + " from the store");
    } else {
        NewRun nr;
        nr.name = spec.name + " (search)";
        nr.model = !spec.model.zoo.empty() ? spec.model.zoo : spec.model.path;
        nr.dataset = spec.dataset.name + "/" + spec.dataset.split;
        nr.device = m_options.deviceOverride.empty() ? spec.device : m_options.deviceOverride;
        nr.strategyChain = "search";
        nr.tags = spec.tags;
        nr.tags.push_back("search");
        nr.configJson = docText;
        nr.environmentJson = "{}";
        searchRunId = m_store.createRun(nr);
    }
    m_store.startRun(searchRunId);
    result.searchRunId = searchRunId;
    const std::int64_t experimentId = m_store.addExperiment(spec.name, docText);

    auto pointOf = [&](const json& identity) { return setup.pointOf(identity); };
    std::vector<search::Observation> history; // one per entry of result.trials
    std::set<std::string> seenKeys;
    auto finish = [&](SearchTrial& t) {
        std::string missing;
        t.observation = t.status == run_status::kDone ? observe(ss, t.summary, &missing) : search::Observation{};
        t.observation.point = t.point;
        if (t.status == run_status::kDone && !missing.empty())
            log(LogLevel::Warning, "run " + std::to_string(t.runId) + " has no summary key \"" + missing +
                                       "\": the trial counts as failed");
        history.push_back(t.observation);
        seenKeys.insert(chain.space().key(t.point));
    };

    // Resume: this search's finished trials (done or failed) count, in the order they ran.
    std::vector<const RunRecord*> children;
    for (const RunRecord& r : stored)
        if (r.parentRunId && *r.parentRunId == searchRunId &&
            (r.status == run_status::kDone || r.status == run_status::kFailed))
            children.push_back(&r);
    std::sort(children.begin(), children.end(), [](auto* a, auto* b) { return a->id < b->id; });
    std::set<std::int64_t> childIds;
    for (const RunRecord* r : children) childIds.insert(r->id);
    // Warm start: other finished runs of the same baseline whose chain the space holds.
    if (ss.warmStart) {
        for (const RunRecord& r : stored) {
            if (childIds.count(r.id) || !identities.count(r.id)) continue;
            const auto p = pointOf(identities.at(r.id));
            if (!p || seenKeys.count(chain.space().key(*p))) continue;
            SearchTrial t;
            t.runId = r.id;
            t.origin = "warm";
            t.status = r.status;
            t.point = *p;
            t.steps = setup.stepsOf(identities.at(r.id), *p);
            t.summary = r.summary;
            finish(t);
            result.trials.push_back(std::move(t));
            ++result.warm;
        }
    }
    std::set<std::int64_t> used;
    for (const RunRecord* r : children) {
        json cfg;
        try {
            cfg = json::parse(r->configJson);
        } catch (const std::exception&) {
            continue;
        }
        const auto id = identityOf(cfg);
        const auto p = id ? pointOf(*id) : std::nullopt;
        if (!p) continue;
        const json steps = setup.stepsOf(*id, *p);
        if (!p) continue;
        SearchTrial t;
        t.index = result.own();
        t.runId = r->id;
        t.origin = "resumed";
        t.status = r->status;
        t.error = r->error;
        t.point = *p;
        t.steps = steps;
        t.summary = r->summary;
        used.insert(r->id);
        finish(t);
        result.trials.push_back(std::move(t));
        ++result.resumed;
    }
    if (result.warm > 0)
        log(LogLevel::Info, "warm start: " + std::to_string(result.warm) + " stored run(s) of the same baseline");
    if (events.searchStarted) events.searchStarted(result);

    search::TpeOptions tpe;
    tpe.startupTrials = ss.startupTrials;
    tpe.multivariate = ss.multivariate;
    auto sampler = search::makeSampler(ss.algorithm, tpe);
    const std::uint64_t seed = ss.seed.value_or(spec.seed);
    const double startMs = steadyClockMs();
    auto stopReason = [&]() -> std::string {
        if (cancel.load()) return "cancelled";
        if (result.own() >= ss.trials) return "trials";
        if (ss.wallS > 0 && (steadyClockMs() - startMs) / 1000.0 >= ss.wallS) return "wall time";
        return {};
    };

    // One trial: look the configuration up, or run it.
    // Returns the trial's observation; a cancelled run is no trial (a resume runs it again).
    auto runTrial = [&](const Point& p, std::optional<double> epochs) -> search::Observation {
        SearchTrial t;
        t.index = result.own();
        t.point = p;
        t.steps = chain.decode(p);
        if (epochs)
            for (auto& s : t.steps)
                if (s.at("strategy") == "finetune") s["params"]["epochs"] = static_cast<std::int64_t>(std::llround(*epochs));
        const json tdoc = trialDoc(t.steps, t.index);
        const auto id = identityOf(tdoc);
        const auto hit = id ? byIdentity.find(id->dump()) : byIdentity.end();
        if (hit != byIdentity.end()) {
            t.origin = "stored";
            t.runId = hit->second.runId;
            t.status = hit->second.status;
            t.summary = hit->second.summary;
            ++result.lookedUp;
            log(LogLevel::Info, "trial " + std::to_string(t.index + 1) + ": identical to run " + std::to_string(t.runId) +
                                    ", looked up: " + chainText(t.steps));
        } else {
            log(LogLevel::Info, "trial " + std::to_string(t.index + 1) + ": " + chainText(t.steps));
            RunnerOptions opt = m_options;
            opt.parentRunId = searchRunId;
            opt.experimentId = experimentId;
            Runner runner(m_store, opt);
            ExperimentSpec ts = parseExperiment(tdoc, spec.sourceName);
            ts.name = tdoc.at("name").get<std::string>();
            const auto outcomes = runner.run(ts, tdoc, events.run, cancel);
            t.origin = "run";
            if (!outcomes.empty()) {
                t.runId = outcomes[0].runId;
                t.status = outcomes[0].status;
                t.error = outcomes[0].error;
                t.summary = outcomes[0].summary;
            } else {
                t.status = run_status::kCancelled;
            }
            ++result.ran;
            if (id && (t.status == run_status::kDone || t.status == run_status::kFailed))
                byIdentity.emplace(id->dump(), Known{t.runId, t.status, t.summary});
        }
        if (t.status == run_status::kCancelled) return search::Observation{};
        finish(t);
        result.trials.push_back(std::move(t));
        if (events.trialFinished) events.trialFinished(result.trials.back(), result);
        return result.trials.back().observation;
    };
    auto suggest = [&]() {
        std::vector<search::Observation> all = history;
        Rng rng(mix64(seed ^ mix64(static_cast<std::uint64_t>(result.own()) + 1)));
        // A configuration already tried teaches nothing new: ask again, and when the model keeps proposing
        // tried ones (it has converged on a small discrete corner), draw from the prior instead.
        Point p;
        for (int tries = 0; tries < 64; ++tries) {
            p = chain.tidy(tries < 32 ? sampler->suggest(chain.space(), all, rng) : search::samplePrior(chain.space(), rng));
            if (!seenKeys.count(chain.space().key(p))) break;
        }
        return p;
    };

    if (ss.halving) {
        // Hyperband over the finetune epochs: brackets of successive halving, each configuration drawn
        // by the sampler from everything observed so far.
        const search::HalvingOptions ho{ss.halving->minEpochs, ss.halving->maxEpochs, ss.halving->eta};
        const auto brackets = search::hyperbandBrackets(ho);
        for (std::size_t b = 0; stopReason().empty(); b = (b + 1) % brackets.size()) {
            std::vector<Point> configs;
            for (int c = 0; c < brackets[b].configs; ++c) {
                configs.push_back(suggest());
                seenKeys.insert(chain.space().key(configs.back()));
            }
            search::successiveHalving(
                brackets[b].configs, {brackets[b].minResource, ho.maxResource, ho.eta},
                [&](int c, double epochs) {
                    const search::Observation o = runTrial(configs[static_cast<std::size_t>(c)], epochs);
                    // Feasible trials by their objective, then infeasible ones by how far they missed.
                    if (search::failed(o)) return static_cast<double>(NAN);
                    return o.violation > 0 ? 1e6 + o.violation : o.objectives[0];
                },
                [&] { return !stopReason().empty(); });
        }
    } else {
        while (stopReason().empty()) runTrial(suggest(), std::nullopt);
    }
    result.stopReason = stopReason();

    concludeSearch(setup, result);
    std::vector<search::Observation> own;
    for (const auto& t : result.trials) own.push_back(t.observation);

    // The search's own run: what it found, so the window and `lathe-cli show` have it.
    std::map<std::string, double> summary{{"search_trials", static_cast<double>(result.own())},
                                          {"search_trials_run", static_cast<double>(result.ran)},
                                          {"search_trials_looked_up", static_cast<double>(result.lookedUp)},
                                          {"search_trials_resumed", static_cast<double>(result.resumed)},
                                          {"search_warm_start", static_cast<double>(result.warm)}};
    int feasibleCount = 0;
    for (const auto& o : own) feasibleCount += search::feasible(o) ? 1 : 0;
    summary["search_feasible_trials"] = feasibleCount;
    if (result.best >= 0) {
        const SearchTrial& best = result.trials[static_cast<std::size_t>(result.best)];
        summary["search_best_run_id"] = static_cast<double>(best.runId);
        for (const auto& [k, v] : best.summary) summary[k] = v; // the winner's figures, on the charts
    }
    json record{{"trials", json::array()}, {"best", result.best}, {"pareto", result.pareto}, {"closest", result.closest},
                {"stop", result.stopReason}, {"importance", json::array()}, {"dimensions", result.dimensionNames}};
    for (const auto& t : result.trials)
        record["trials"].push_back({{"run_id", t.runId}, {"origin", t.origin}, {"status", t.status}, {"steps", t.steps}});
    for (const auto& fi : result.importance)
        record["importance"].push_back({{"field", fi.name}, {"importance", fi.importance}, {"trials", fi.trials},
                                        {"best_values", fi.bestValues}, {"best_mean_rank", fi.bestMeanRank}});
    std::map<std::string, std::string> notes{{"search_result", record.dump()}, {"search_explanation", result.explanation}};
    if (!result.winner.is_null()) notes["search_best_experiment"] = result.winner.dump(2);
    m_store.setNotes(searchRunId, notes);
    m_store.setSummary(searchRunId, summary);
    const bool cancelled = result.stopReason == "cancelled";
    m_store.finishRun(searchRunId, cancelled ? run_status::kCancelled : run_status::kDone, cancelled ? "cancelled" : "");
    return result;
}

SearchResult inspectSearch(const RunStore& store, std::int64_t searchRunId, SearchSpec* specOut) {
    const auto run = store.run(searchRunId);
    if (!run || run->strategyChain != "search") throw ConfigError("run " + std::to_string(searchRunId) + " is not a search");
    const json doc = json::parse(run->configJson);
    const ExperimentSpec spec = parseExperiment(doc, "");
    const SearchSetup setup(spec, doc);
    if (specOut) *specOut = setup.ss;
    SearchResult result;
    result.searchRunId = searchRunId;
    for (const auto& d : setup.chain.space().dims()) result.dimensionNames.push_back(d.name);
    // Finished: the trials as the search recorded them (warm start and look-ups included); still running:
    // its own runs so far.
    std::vector<std::pair<std::int64_t, std::string>> ids;
    if (run->notes.count("search_result")) {
        const json rec = json::parse(run->notes.at("search_result"));
        for (const auto& t : rec.at("trials")) ids.push_back({t.at("run_id").get<std::int64_t>(), t.at("origin").get<std::string>()});
        result.stopReason = rec.value("stop", "");
    } else {
        RunFilter f;
        f.withJson = true;
        auto runs = store.listRuns(f);
        std::sort(runs.begin(), runs.end(), [](const RunRecord& a, const RunRecord& b) { return a.id < b.id; });
        for (const auto& r : runs)
            if (r.parentRunId && *r.parentRunId == searchRunId &&
                (r.status == run_status::kDone || r.status == run_status::kFailed))
                ids.push_back({r.id, "run"});
    }
    for (const auto& [id, origin] : ids) {
        const auto r = store.run(id);
        if (!r) continue; // deleted since
        const auto found = setup.trialOfConfig(r->configJson);
        if (!found) continue;
        const Point* p = &found->first;
        SearchTrial t;
        t.index = origin == "warm" ? -1 : result.own();
        t.runId = id;
        t.origin = origin;
        t.status = r->status;
        t.error = r->error;
        t.point = *p;
        t.steps = found->second;
        t.summary = r->summary;
        t.observation = t.status == run_status::kDone ? observe(setup.ss, t.summary, nullptr) : search::Observation{};
        t.observation.point = t.point;
        result.warm += origin == "warm" ? 1 : 0;
        result.ran += origin == "run" ? 1 : 0;
        result.lookedUp += origin == "stored" ? 1 : 0;
        result.resumed += origin == "resumed" ? 1 : 0;
        result.trials.push_back(std::move(t));
    }
    concludeSearch(setup, result);
    return result;
}

std::string explainSearch(const SearchSpec& ss, const SearchResult& r) {
    std::string out = "search run " + std::to_string(r.searchRunId) + ": " + std::to_string(r.own()) + " trial(s) (" +
                      std::to_string(r.ran) + " run, " + std::to_string(r.lookedUp) + " looked up, " +
                      std::to_string(r.resumed) + " resumed), " + std::to_string(r.warm) +
                      " warm-start run(s); " + (r.stopReason.empty() ? std::string("still running") : "stopped by " + r.stopReason) + "\n";
    auto figures = [&](const SearchTrial& t) {
        std::string s;
        for (const auto& o : ss.objectives)
            s += "  " + o.metric + " " + (t.summary.count(o.metric) ? fmt(t.summary.at(o.metric)) : "?") +
                 (o.maximize ? " (max)" : " (min)");
        for (const auto& c : ss.constraints) {
            s += "  " + c.metric + " " + (t.summary.count(c.metric) ? fmt(t.summary.at(c.metric)) : "?");
            if (c.min) s += " (>= " + fmt(*c.min) + ")";
            if (c.max) s += " (<= " + fmt(*c.max) + ")";
        }
        return s;
    };
    if (r.best < 0) {
        out += "no trial met the constraints; the closest:\n";
        for (int i : r.closest) {
            const SearchTrial& t = r.trials[static_cast<std::size_t>(i)];
            out += "  run " + std::to_string(t.runId) + ": " + chainText(t.steps) + "\n   " + figures(t) + "\n";
        }
    } else if (r.pareto.size() > 1) {
        out += "Pareto set (" + std::to_string(r.pareto.size()) + " chains):\n";
        for (int i : r.pareto) {
            const SearchTrial& t = r.trials[static_cast<std::size_t>(i)];
            out += "  run " + std::to_string(t.runId) + ": " + chainText(t.steps) + "\n   " + figures(t) + "\n";
        }
    } else {
        const SearchTrial& t = r.trials[static_cast<std::size_t>(r.best)];
        out += "best: run " + std::to_string(t.runId) +
               (t.origin == "warm" ? std::string(" (warm start)") : " (trial " + std::to_string(t.index + 1) + ")") + ": " + chainText(t.steps) +
               "\n " + figures(t) + "\n";
    }
    out += "why (share of the spread of the trials' ranks each field explains alone; best values):\n";
    for (const auto& fi : r.importance) {
        if (fi.trials < search::kMinTrialsForImportance) continue; // not rated
        const int bars = static_cast<int>(std::lround(fi.importance * 20));
        char line[256];
        std::snprintf(line, sizeof(line), "  %-36s %5.2f %-20s best %s (%d trials)\n", fi.name.c_str(), fi.importance,
                      std::string(static_cast<std::size_t>(bars), '#').c_str(), fi.bestValues.c_str(), fi.trials);
        out += line;
    }
    return out;
}

} // namespace lathe

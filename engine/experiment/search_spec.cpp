// Parsing and validation of the `search` section. Every strategy named must be registered, every searched
// range must lie inside its field's range in the schema (the same messages as a step's params), and the
// budget must allow at least one trial.
#include "engine/experiment/search_spec.h"

#include "engine/core/errors.h"
#include "engine/experiment/spec.h"
#include "engine/strategies/registry.h"

#include <algorithm>
#include <cmath>

namespace lathe {
namespace {

using json = nlohmann::json;
using Issues = std::vector<ValidationIssue>;

const std::vector<std::string> kSearchKeys{"algorithm", "objectives", "constraints", "space", "budget",
                                           "seed", "startup_trials", "multivariate", "warm_start", "halving"};

void unknownKeys(const json& obj, const std::string& ptr, const std::vector<std::string>& known, Issues& issues) {
    for (const auto& [key, value] : obj.items())
        if (std::find(known.begin(), known.end(), key) == known.end())
            issues.push_back({jsonPointerChild(ptr, key), unknownKeyMessage(key, known)});
}

bool isObject(const json& v, const std::string& ptr, Issues& issues) {
    if (v.is_object()) return true;
    issues.push_back({ptr, "expected an object, got " + describeJson(v)});
    return false;
}

std::optional<double> number(const json& v, const std::string& ptr, Issues& issues) {
    if (v.is_number()) return v.get<double>();
    issues.push_back({ptr, "expected a number, got " + describeJson(v)});
    return std::nullopt;
}

std::string metricOf(const json& v, const std::string& ptr, Issues& issues) {
    if (v.is_string() && !v.get<std::string>().empty()) return v.get<std::string>();
    issues.push_back({ptr, "expected a summary metric key such as \"latency_p50_ms@b256\", got " + describeJson(v)});
    return {};
}

// The schema's own range for a numeric field, made closed: an exclusive end moves in by a step.
std::pair<double, double> schemaRange(const ParamField& f) {
    double lo = f.min, hi = f.max;
    if (f.type == ParamType::Integer) {
        if (f.minExclusive) lo = std::floor(lo) + 1;
        if (f.maxExclusive) hi = std::ceil(hi) - 1;
    } else {
        const double eps = 1e-6 * std::max(1.0, std::abs(hi - lo));
        if (f.minExclusive) lo += eps;
        if (f.maxExclusive) hi -= eps;
    }
    return {lo, hi};
}

void parseField(const ParamField& f, const json& spec, const std::string& ptr, Issues& issues, SearchOption& opt) {
    SearchField sf;
    sf.name = f.name;
    sf.type = f.type;
    ParamValue scratch;
    if (!spec.is_object()) { // a fixed value
        if (const std::string problem = checkValue(f, spec, scratch); !problem.empty()) issues.push_back({ptr, problem});
        else opt.fixedParams[f.name] = spec;
        return;
    }
    const std::size_t before = issues.size();
    unknownKeys(spec, ptr, {"min", "max", "log", "choices"}, issues);
    if (spec.contains("choices")) {
        const json& c = spec.at("choices");
        if (!c.is_array() || c.empty()) {
            issues.push_back({jsonPointerChild(ptr, "choices"), "expected a non-empty list of values, got " + describeJson(c)});
            return;
        }
        for (std::size_t i = 0; i < c.size(); ++i)
            if (const std::string problem = checkValue(f, c[i], scratch); !problem.empty())
                issues.push_back({jsonPointerChild(jsonPointerChild(ptr, "choices"), i), problem});
        if (spec.contains("min") || spec.contains("max") || spec.contains("log"))
            issues.push_back({ptr, "give either \"choices\" or a range (\"min\", \"max\", \"log\"), not both"});
        sf.categorical = true;
        sf.choices.assign(c.begin(), c.end());
    } else if (f.type == ParamType::Choice || f.type == ParamType::Boolean) {
        if (spec.contains("min") || spec.contains("max") || spec.contains("log")) {
            issues.push_back({ptr, "\"" + f.name + "\" is " + expectation(f) + ": search it with \"choices\" or {} (all of them)"});
            return;
        }
        sf.categorical = true;
        if (f.type == ParamType::Boolean) sf.choices = {json(false), json(true)};
        else
            for (const auto& c : f.choices) sf.choices.push_back(json(c));
    } else if (f.type == ParamType::Number || f.type == ParamType::Integer) {
        auto [lo, hi] = schemaRange(f);
        for (const char* end : {"min", "max"}) {
            if (!spec.contains(end)) {
                if (std::abs(std::string(end) == "min" ? lo : hi) >= 1e299)
                    issues.push_back({ptr, "give \"" + std::string(end) + "\": the schema of \"" + f.name +
                                               "\" has no finite " + (std::string(end) == "min" ? "lower" : "upper") +
                                               " end (" + expectation(f) + ")"});
                continue;
            }
            const std::string ep = jsonPointerChild(ptr, end);
            if (const std::string problem = checkValue(f, spec.at(end), scratch); !problem.empty()) {
                issues.push_back({ep, problem});
                continue;
            }
            (std::string(end) == "min" ? lo : hi) = spec.at(end).get<double>();
        }
        if (spec.contains("log")) {
            if (!spec.at("log").is_boolean()) issues.push_back({jsonPointerChild(ptr, "log"), "expected true or false, got " + describeJson(spec.at("log"))});
            else sf.log = spec.at("log").get<bool>();
        }
        if (issues.size() == before) {
            if (lo > hi) issues.push_back({ptr, "\"min\" is above \"max\""});
            if (sf.log && !(lo > 0)) issues.push_back({ptr, "a log range needs \"min\" > 0"});
        }
        sf.low = lo;
        sf.high = hi;
    } else {
        issues.push_back({ptr, "\"" + f.name + "\" (" + expectation(f) + ") cannot be searched; give it a fixed value"});
        return;
    }
    if (issues.size() == before) opt.fields.push_back(std::move(sf));
}

void parseOption(const json& o, const std::string& ptr, Issues& issues, SearchOption& out) {
    if (!isObject(o, ptr, issues)) return;
    unknownKeys(o, ptr, {"strategy", "params"}, issues);
    const auto& registry = StrategyRegistry::instance();
    if (!o.contains("strategy") || !o.at("strategy").is_string()) {
        issues.push_back({ptr, "missing required key \"strategy\" (a registered strategy name)"});
        return;
    }
    out.strategy = o.at("strategy").get<std::string>();
    const StrategySchema* schema = registry.find(out.strategy);
    if (!schema) {
        issues.push_back({jsonPointerChild(ptr, "strategy"), unknownNameMessage("strategy", out.strategy, registry.names())});
        return;
    }
    if (!o.contains("params")) return;
    const std::string pp = jsonPointerChild(ptr, "params");
    if (!isObject(o.at("params"), pp, issues)) return;
    std::vector<std::string> known;
    for (const auto& f : schema->fields) known.push_back(f.name);
    for (const auto& [key, value] : o.at("params").items()) {
        const ParamField* f = schema->field(key);
        if (!f) {
            issues.push_back({jsonPointerChild(pp, key), unknownKeyMessage(key, known)});
            continue;
        }
        parseField(*f, value, jsonPointerChild(pp, key), issues, out);
    }
}

void parseSlot(const json& s, const std::string& ptr, Issues& issues, SearchSlot& out) {
    if (!isObject(s, ptr, issues)) return;
    // {"strategy": ..., "params": ...} is a slot of one option.
    if (s.contains("strategy")) {
        unknownKeys(s, ptr, {"strategy", "params", "optional"}, issues);
        json option = s;
        option.erase("optional");
        SearchOption o;
        parseOption(option, ptr, issues, o);
        out.options.push_back(std::move(o));
    } else {
        unknownKeys(s, ptr, {"options", "optional"}, issues);
        if (!s.contains("options") || !s.at("options").is_array() || s.at("options").empty()) {
            issues.push_back({ptr, "expected \"strategy\" (one strategy) or \"options\" (a non-empty list of "
                                   "{\"strategy\", \"params\"})"});
        } else {
            for (std::size_t i = 0; i < s.at("options").size(); ++i) {
                SearchOption o;
                parseOption(s.at("options")[i], jsonPointerChild(jsonPointerChild(ptr, "options"), i), issues, o);
                out.options.push_back(std::move(o));
            }
        }
    }
    if (s.contains("optional")) {
        if (s.at("optional").is_boolean()) out.optional = s.at("optional").get<bool>();
        else issues.push_back({jsonPointerChild(ptr, "optional"), "expected true or false, got " + describeJson(s.at("optional"))});
    }
}

void parseInto(const json& sec, const std::string& ptr, Issues& issues, SearchSpec& out) {
    if (!isObject(sec, ptr, issues)) return;
    unknownKeys(sec, ptr, kSearchKeys, issues);
    if (sec.contains("algorithm")) {
        const json& a = sec.at("algorithm");
        const std::vector<std::string> known{"random", "tpe", "motpe"};
        if (!a.is_string() || std::find(known.begin(), known.end(), a.get<std::string>()) == known.end())
            issues.push_back({jsonPointerChild(ptr, "algorithm"), "expected one of \"random\", \"tpe\", \"motpe\", got " + describeJson(a)});
        else out.algorithm = a.get<std::string>();
    }
    // Objectives: [{"minimize": "latency_p50_ms@b256"}, {"maximize": "accuracy"}].
    const std::string op = jsonPointerChild(ptr, "objectives");
    if (!sec.contains("objectives")) {
        issues.push_back({ptr, "missing required key \"objectives\" (e.g. [{\"minimize\": \"latency_p50_ms@b256\"}])"});
    } else if (!sec.at("objectives").is_array() || sec.at("objectives").empty()) {
        issues.push_back({op, "expected a non-empty list such as [{\"minimize\": \"latency_p50_ms@b256\"}], got " +
                                  describeJson(sec.at("objectives"))});
    } else {
        for (std::size_t i = 0; i < sec.at("objectives").size(); ++i) {
            const json& o = sec.at("objectives")[i];
            const std::string p = jsonPointerChild(op, i);
            if (!isObject(o, p, issues)) continue;
            unknownKeys(o, p, {"minimize", "maximize"}, issues);
            if (o.contains("minimize") == o.contains("maximize")) {
                issues.push_back({p, "expected exactly one of \"minimize\" or \"maximize\" with a metric key"});
                continue;
            }
            SearchObjective obj;
            obj.maximize = o.contains("maximize");
            obj.metric = metricOf(o.at(obj.maximize ? "maximize" : "minimize"), jsonPointerChild(p, obj.maximize ? "maximize" : "minimize"), issues);
            out.objectives.push_back(obj);
        }
        if (out.objectives.size() > 1 && !sec.contains("algorithm")) out.algorithm = "motpe";
        if (out.objectives.size() > 1 && out.algorithm == "tpe")
            issues.push_back({jsonPointerChild(ptr, "algorithm"), "\"tpe\" optimises one objective; with several use \"motpe\" or \"random\""});
    }
    // Constraints: [{"metric": "accuracy_delta", ">=": -0.005}].
    if (sec.contains("constraints")) {
        const std::string cp = jsonPointerChild(ptr, "constraints");
        if (!sec.at("constraints").is_array()) {
            issues.push_back({cp, "expected a list such as [{\"metric\": \"accuracy_delta\", \">=\": -0.005}], got " +
                                      describeJson(sec.at("constraints"))});
        } else {
            for (std::size_t i = 0; i < sec.at("constraints").size(); ++i) {
                const json& c = sec.at("constraints")[i];
                const std::string p = jsonPointerChild(cp, i);
                if (!isObject(c, p, issues)) continue;
                unknownKeys(c, p, {"metric", ">=", "<="}, issues);
                SearchConstraint con;
                if (!c.contains("metric")) issues.push_back({p, "missing required key \"metric\""});
                else con.metric = metricOf(c.at("metric"), jsonPointerChild(p, "metric"), issues);
                if (c.contains(">=")) con.min = number(c.at(">="), jsonPointerChild(p, ">="), issues);
                if (c.contains("<=")) con.max = number(c.at("<="), jsonPointerChild(p, "<="), issues);
                if (!c.contains(">=") && !c.contains("<=")) issues.push_back({p, "expected a bound \">=\" or \"<=\""});
                else if (con.min && con.max && *con.min > *con.max)
                    issues.push_back({p, "the bounds exclude every value (\">=\" above \"<=\")"});
                out.constraints.push_back(con);
            }
        }
    }
    // The space: a list of slots in chain order.
    const std::string sp = jsonPointerChild(ptr, "space");
    if (!sec.contains("space")) {
        issues.push_back({ptr, "missing required key \"space\" (a list of chain positions, e.g. "
                               "[{\"strategy\": \"prune.magnitude\", \"params\": {\"sparsity\": {}}, \"optional\": true}])"});
    } else if (!sec.at("space").is_array() || sec.at("space").empty()) {
        issues.push_back({sp, "expected a non-empty list of chain positions, got " + describeJson(sec.at("space"))});
    } else {
        for (std::size_t i = 0; i < sec.at("space").size(); ++i) {
            SearchSlot slot;
            parseSlot(sec.at("space")[i], jsonPointerChild(sp, i), issues, slot);
            out.space.push_back(std::move(slot));
        }
    }
    // Budget: {"trials": 40, "wall_s": 600}.
    const std::string bp = jsonPointerChild(ptr, "budget");
    if (!sec.contains("budget")) {
        issues.push_back({ptr, "missing required key \"budget\" (e.g. {\"trials\": 40})"});
    } else if (isObject(sec.at("budget"), bp, issues)) {
        const json& b = sec.at("budget");
        unknownKeys(b, bp, {"trials", "wall_s"}, issues);
        if (!b.contains("trials")) issues.push_back({bp, "missing required key \"trials\" (an integer >= 1)"});
        else if (!b.at("trials").is_number_integer() || b.at("trials").get<std::int64_t>() < 1 || b.at("trials").get<std::int64_t>() > 100000)
            issues.push_back({jsonPointerChild(bp, "trials"), "expected an integer in [1, 100000], got " + describeJson(b.at("trials"))});
        else out.trials = b.at("trials").get<int>();
        if (b.contains("wall_s")) {
            if (!b.at("wall_s").is_number() || !(b.at("wall_s").get<double>() > 0))
                issues.push_back({jsonPointerChild(bp, "wall_s"), "expected a number of seconds > 0, got " + describeJson(b.at("wall_s"))});
            else out.wallS = b.at("wall_s").get<double>();
        }
    }
    if (sec.contains("seed")) {
        const json& s = sec.at("seed");
        if (s.is_number_unsigned() || (s.is_number_integer() && s.get<std::int64_t>() >= 0)) out.seed = s.get<std::uint64_t>();
        else issues.push_back({jsonPointerChild(ptr, "seed"), "expected an integer >= 0, got " + describeJson(s)});
    }
    if (sec.contains("startup_trials")) {
        const json& s = sec.at("startup_trials");
        if (s.is_number_integer() && s.get<std::int64_t>() >= 1 && s.get<std::int64_t>() <= 1000) out.startupTrials = s.get<int>();
        else issues.push_back({jsonPointerChild(ptr, "startup_trials"), "expected an integer in [1, 1000], got " + describeJson(s)});
    }
    if (sec.contains("multivariate")) {
        if (sec.at("multivariate").is_boolean()) out.multivariate = sec.at("multivariate").get<bool>();
        else issues.push_back({jsonPointerChild(ptr, "multivariate"), "expected true or false, got " + describeJson(sec.at("multivariate"))});
    }
    if (sec.contains("warm_start")) {
        if (sec.at("warm_start").is_boolean()) out.warmStart = sec.at("warm_start").get<bool>();
        else issues.push_back({jsonPointerChild(ptr, "warm_start"), "expected true or false, got " + describeJson(sec.at("warm_start"))});
    }
    if (sec.contains("halving")) {
        const std::string hp = jsonPointerChild(ptr, "halving");
        if (isObject(sec.at("halving"), hp, issues)) {
            const json& h = sec.at("halving");
            unknownKeys(h, hp, {"min_epochs", "max_epochs", "eta"}, issues);
            SearchHalving halving;
            auto get = [&](const char* key, double& into, double lowest) {
                if (!h.contains(key)) return;
                const json& v = h.at(key);
                if (!v.is_number() || v.get<double>() < lowest)
                    issues.push_back({jsonPointerChild(hp, key), "expected a number >= " + describeJson(json(lowest)) + ", got " + describeJson(v)});
                else into = v.get<double>();
            };
            get("min_epochs", halving.minEpochs, 1);
            get("max_epochs", halving.maxEpochs, 1);
            get("eta", halving.eta, 2);
            if (halving.maxEpochs < halving.minEpochs) issues.push_back({hp, "\"max_epochs\" is below \"min_epochs\""});
            bool finetune = false;
            for (const auto& slot : out.space)
                for (const auto& o : slot.options) finetune = finetune || o.strategy == "finetune";
            if (!finetune) issues.push_back({hp, "halving shortens the \"epochs\" of finetune steps, and the space has none"});
            out.halving = halving;
        }
    }
}

} // namespace

std::vector<ValidationIssue> validateSearchSection(const nlohmann::json& section, const std::string& pointer) {
    Issues issues;
    SearchSpec scratch;
    parseInto(section, pointer, issues, scratch);
    return issues;
}

SearchSpec parseSearchSection(const nlohmann::json& section, const std::string& sourceName) {
    Issues issues;
    SearchSpec spec;
    parseInto(section, "/search", issues, spec);
    if (!issues.empty()) throw ConfigError(formatIssues(sourceName, issues));
    return spec;
}

} // namespace lathe

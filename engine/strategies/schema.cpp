// Parameter schemas: typed access to validated values, validation of JSON against fields with
// JSON-pointer messages, and the schema checks every registration runs.
#include "engine/strategies/schema.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

namespace lathe {
namespace {

using json = nlohmann::json;

std::string formatNumber(double v) {
    char buf[40];
    std::snprintf(buf, sizeof(buf), "%.15g", v);
    return buf;
}

bool isUnbounded(double v) { return std::abs(v) >= 1e299; }

std::string rangeText(const ParamField& f) {
    const bool hasMin = !isUnbounded(f.min), hasMax = !isUnbounded(f.max);
    if (hasMin && hasMax)
        return std::string(" in ") + (f.minExclusive ? "(" : "[") + formatNumber(f.min) + ", " + formatNumber(f.max) +
               (f.maxExclusive ? ")" : "]");
    if (hasMin) return (f.minExclusive ? " > " : " >= ") + formatNumber(f.min);
    if (hasMax) return (f.maxExclusive ? " < " : " <= ") + formatNumber(f.max);
    return "";
}

std::string quotedList(const std::vector<std::string>& items) {
    std::string s;
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) s += i + 1 == items.size() ? " or " : ", ";
        s += "\"" + items[i] + "\"";
    }
    return s;
}

std::string plainList(const std::vector<std::string>& items) {
    std::string s;
    for (const auto& i : items) s += (s.empty() ? "" : ", ") + i;
    return s;
}

int editDistance(const std::string& a, const std::string& b) {
    // Optimal string alignment distance (Levenshtein plus adjacent transpositions), case-insensitive.
    const std::size_t n = a.size(), m = b.size();
    std::vector<std::vector<int>> d(n + 1, std::vector<int>(m + 1));
    for (std::size_t i = 0; i <= n; ++i) d[i][0] = static_cast<int>(i);
    for (std::size_t j = 0; j <= m; ++j) d[0][j] = static_cast<int>(j);
    auto lower = [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); };
    for (std::size_t i = 1; i <= n; ++i)
        for (std::size_t j = 1; j <= m; ++j) {
            const int cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) && lower(a[i - 2]) == lower(b[j - 1]))
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    return d[n][m];
}

bool asInteger(const json& v, std::int64_t& out) {
    if (v.is_number_integer()) {
        if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) return false;
        out = v.get<std::int64_t>();
        return true;
    }
    if (v.is_number_float()) {
        const double d = v.get<double>();
        if (std::isfinite(d) && d == std::floor(d) && std::abs(d) < 9.0e18) {
            out = static_cast<std::int64_t>(d);
            return true;
        }
    }
    return false;
}

bool inRange(const ParamField& f, double v) {
    if (!isUnbounded(f.min) && (f.minExclusive ? v <= f.min : v < f.min)) return false;
    if (!isUnbounded(f.max) && (f.maxExclusive ? v >= f.max : v > f.max)) return false;
    return true;
}

const char* typeName(ParamType t) {
    switch (t) {
    case ParamType::Number: return "number";
    case ParamType::Integer: return "integer";
    case ParamType::Boolean: return "boolean";
    case ParamType::String: return "string";
    case ParamType::Choice: return "choice";
    case ParamType::IntegerList: return "integer_list";
    }
    return "?";
}

// Keys that older files may still use, with their replacement and why they changed. Where the value
// does not carry over (a CV is not a CI width), the file must be edited: an error says how.
struct RenamedKey {
    const char* oldName;
    const char* newName;
    const char* why;
};
constexpr RenamedKey kRenamedKeys[] = {
    {"noisy_cv", "noisy_ci",
     "noise is now judged by the width of the median's 95% confidence interval relative to the median "
     "(default 0.05), not by the CV; see docs/experiments.md"},
};

} // namespace

std::string unknownKeyMessage(const std::string& key, const std::vector<std::string>& known) {
    for (const auto& r : kRenamedKeys)
        if (key == r.oldName && std::find(known.begin(), known.end(), r.newName) != known.end())
            return "\"" + key + "\" was renamed \"" + r.newName + "\": " + r.why;
    return unknownNameMessage("key", key, known);
}

// ---------------------------------------------------------------- values

const ParamField* StrategySchema::field(const std::string& fieldName) const {
    for (const auto& f : fields)
        if (f.name == fieldName) return &f;
    return nullptr;
}

const ParamValue& ParamValues::at(const std::string& key) const {
    auto it = m_values.find(key);
    if (it == m_values.end()) throw ConfigError("parameter \"" + key + "\" is not set");
    return it->second;
}

double ParamValues::number(const std::string& key) const {
    const ParamValue& v = at(key);
    if (const auto* d = std::get_if<double>(&v)) return *d;
    if (const auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
    throw ConfigError("parameter \"" + key + "\" is not a number");
}

std::int64_t ParamValues::integer(const std::string& key) const {
    const ParamValue& v = at(key);
    if (const auto* i = std::get_if<std::int64_t>(&v)) return *i;
    throw ConfigError("parameter \"" + key + "\" is not an integer");
}

bool ParamValues::boolean(const std::string& key) const {
    const ParamValue& v = at(key);
    if (const auto* b = std::get_if<bool>(&v)) return *b;
    throw ConfigError("parameter \"" + key + "\" is not a boolean");
}

const std::string& ParamValues::string(const std::string& key) const {
    const ParamValue& v = at(key);
    if (const auto* s = std::get_if<std::string>(&v)) return *s;
    throw ConfigError("parameter \"" + key + "\" is not a string");
}

const std::vector<std::int64_t>& ParamValues::integers(const std::string& key) const {
    const ParamValue& v = at(key);
    if (const auto* l = std::get_if<std::vector<std::int64_t>>(&v)) return *l;
    throw ConfigError("parameter \"" + key + "\" is not a list of integers");
}

json paramValueToJson(const ParamValue& v) {
    return std::visit([](const auto& x) { return json(x); }, v);
}

// ---------------------------------------------------------------- wording

std::string describeJson(const json& v) {
    std::string s = v.dump();
    if (s.size() > 60) s = s.substr(0, 57) + "...";
    return s;
}

// An integer list whose default is empty ("none": no preferred batch sizes) may be given empty too.
bool emptyListAllowed(const ParamField& f) { return f.defaultJson == "[]"; }

std::string expectation(const ParamField& f) {
    switch (f.type) {
    case ParamType::Number: return "a number" + rangeText(f);
    case ParamType::Integer: return "an integer" + rangeText(f);
    case ParamType::Boolean: return "true or false";
    case ParamType::String: return "a string";
    case ParamType::Choice: return "one of " + quotedList(f.choices);
    case ParamType::IntegerList:
        return std::string(emptyListAllowed(f) ? "a list of integers" : "a non-empty list of integers") + rangeText(f);
    }
    return "a value";
}

std::string jsonPointerChild(const std::string& pointer, const std::string& key) {
    std::string out = pointer + "/";
    for (char c : key) {
        if (c == '~') out += "~0";
        else if (c == '/') out += "~1";
        else out += c;
    }
    return out;
}

std::string jsonPointerChild(const std::string& pointer, std::size_t index) {
    return pointer + "/" + std::to_string(index);
}

std::string closestMatch(const std::string& word, const std::vector<std::string>& candidates) {
    std::string best;
    int bestDistance = 1 << 30;
    for (const auto& c : candidates) {
        const int d = editDistance(word, c);
        if (d < bestDistance) {
            bestDistance = d;
            best = c;
        }
    }
    // Close enough to be a typo: at most a third of the word, and at least one edit allowed.
    const int allowed = std::max(1, static_cast<int>(std::min(word.size(), best.size())) / 3);
    return bestDistance <= allowed ? best : std::string();
}

std::string unknownNameMessage(const std::string& what, const std::string& name, const std::vector<std::string>& known,
                               const std::string& extraKnown) {
    std::string msg = "unknown " + what + " \"" + name + "\"";
    const std::string best = closestMatch(name, known);
    if (!best.empty()) return msg + " (did you mean \"" + best + "\"?)";
    std::string list = plainList(known);
    if (!extraKnown.empty()) list += (list.empty() ? "" : ", ") + extraKnown;
    return msg + " (known: " + list + ")";
}

// ---------------------------------------------------------------- validation

std::string checkValue(const ParamField& f, const json& v, ParamValue& out) {
    const std::string expected = "expected " + expectation(f) + ", got " + describeJson(v);
    switch (f.type) {
    case ParamType::Number: {
        if (!v.is_number()) return expected;
        const double d = v.get<double>();
        if (!std::isfinite(d) || !inRange(f, d)) return expected;
        out = d;
        return {};
    }
    case ParamType::Integer: {
        std::int64_t i = 0;
        if (!asInteger(v, i) || !inRange(f, static_cast<double>(i))) return expected;
        out = i;
        return {};
    }
    case ParamType::Boolean:
        if (!v.is_boolean()) return expected;
        out = v.get<bool>();
        return {};
    case ParamType::String:
        if (!v.is_string()) return expected;
        out = v.get<std::string>();
        return {};
    case ParamType::Choice: {
        if (!v.is_string()) return expected;
        const auto s = v.get<std::string>();
        if (std::find(f.choices.begin(), f.choices.end(), s) == f.choices.end()) {
            const auto best = closestMatch(s, f.choices);
            return expected + (best.empty() ? "" : " (did you mean \"" + best + "\"?)");
        }
        out = s;
        return {};
    }
    case ParamType::IntegerList: {
        if (!v.is_array() || (v.empty() && !emptyListAllowed(f))) return expected;
        std::vector<std::int64_t> list;
        for (const auto& e : v) {
            std::int64_t i = 0;
            if (!asInteger(e, i) || !inRange(f, static_cast<double>(i))) return expected;
            list.push_back(i);
        }
        out = std::move(list);
        return {};
    }
    }
    return expected;
}

void checkFields(const std::vector<ParamField>& fields, const json& obj, const std::string& pointer,
                 std::vector<ValidationIssue>& issues, json* filled, ParamValues* values,
                 const std::vector<std::string>& extraKeys) {
    std::vector<std::string> known = extraKeys;
    for (const auto& f : fields) known.push_back(f.name);
    for (const auto& [key, value] : obj.items())
        if (std::find(known.begin(), known.end(), key) == known.end())
            issues.push_back({jsonPointerChild(pointer, key), unknownKeyMessage(key, known)});
    json out = json::object();
    for (const auto& f : fields) {
        const bool given = obj.contains(f.name);
        json v;
        if (given) {
            v = obj.at(f.name);
        } else if (!f.inherits.empty()) {
            continue; // taken from f.inherits by whoever reads the values
        } else if (f.defaultJson.empty()) {
            issues.push_back({pointer, "missing required key \"" + f.name + "\" (" + expectation(f) + ")"});
            continue;
        } else {
            v = json::parse(f.defaultJson);
        }
        ParamValue pv;
        const std::string problem = checkValue(f, v, pv);
        if (!problem.empty()) {
            issues.push_back({given ? jsonPointerChild(pointer, f.name) : pointer,
                              given ? problem : "default of \"" + f.name + "\" is invalid: " + problem});
            continue;
        }
        out[f.name] = paramValueToJson(pv);
        if (values) values->set(f.name, std::move(pv));
    }
    if (filled) *filled = std::move(out);
}

std::vector<ValidationIssue> validateParams(const StrategySchema& schema, const json& params,
                                            const std::string& pointer, json* filled, ParamValues* values) {
    std::vector<ValidationIssue> issues;
    if (!params.is_object()) {
        issues.push_back({pointer, "expected an object of parameters, got " + describeJson(params)});
        return issues;
    }
    checkFields(schema.fields, params, pointer, issues, filled, values);
    return issues;
}

void checkSchema(const StrategySchema& schema) {
    if (schema.name.empty()) throw ConfigError("a strategy needs a name");
    for (std::size_t i = 0; i < schema.fields.size(); ++i) {
        const ParamField& f = schema.fields[i];
        for (std::size_t j = i + 1; j < schema.fields.size(); ++j)
            if (f.name == schema.fields[j].name)
                throw ConfigError("strategy \"" + schema.name + "\" declares field \"" + f.name + "\" twice");
        if (f.type == ParamType::Choice && f.choices.empty())
            throw ConfigError("strategy \"" + schema.name + "\": choice field \"" + f.name + "\" has no choices");
        if (f.defaultJson.empty()) continue;
        json def;
        try {
            def = json::parse(f.defaultJson);
        } catch (const json::exception&) {
            throw ConfigError("strategy \"" + schema.name + "\": the default of \"" + f.name +
                              "\" is not JSON: " + f.defaultJson);
        }
        ParamValue pv;
        if (const auto problem = checkValue(f, def, pv); !problem.empty())
            throw ConfigError("strategy \"" + schema.name + "\": the default of \"" + f.name + "\" is invalid: " +
                              problem);
    }
}

ParamValues defaultValues(const StrategySchema& schema) {
    ParamValues values;
    for (const auto& f : schema.fields) {
        if (f.defaultJson.empty()) continue;
        ParamValue pv;
        if (checkValue(f, json::parse(f.defaultJson), pv).empty()) values.set(f.name, std::move(pv));
    }
    return values;
}

// ---------------------------------------------------------------- as JSON

json fieldToJson(const ParamField& f) {
    json j{{"name", f.name}, {"type", typeName(f.type)}, {"help", f.help}};
    const bool numeric = f.type == ParamType::Number || f.type == ParamType::Integer || f.type == ParamType::IntegerList;
    if (numeric && !isUnbounded(f.min)) {
        j["min"] = f.min;
        j["min_exclusive"] = f.minExclusive;
    }
    if (numeric && !isUnbounded(f.max)) {
        j["max"] = f.max;
        j["max_exclusive"] = f.maxExclusive;
    }
    if (!f.choices.empty()) j["choices"] = f.choices;
    if (!f.unit.empty()) j["unit"] = f.unit;
    j["default"] = f.defaultJson.empty() ? json() : json::parse(f.defaultJson);
    j["required"] = f.required();
    if (!f.inherits.empty()) j["inherits"] = f.inherits;
    return j;
}

json schemaToJson(const StrategySchema& schema) {
    json fields = json::array();
    for (const auto& f : schema.fields) fields.push_back(fieldToJson(f));
    return {{"name", schema.name}, {"family", schema.family}, {"summary", schema.summary}, {"fields", fields}};
}

} // namespace lathe

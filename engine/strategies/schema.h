// Parameter schemas: the fields a strategy (or a fixed section of an experiment file) accepts, their
// validation against JSON with JSON-pointer errors, and SchemaBuilder, which binds each field to a member of
// a typed params struct so that a strategy receives `const Params&` and never looks a key up by name.
#pragma once

#include "engine/core/errors.h"
#include "engine/core/shape.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace lathe {

enum class ParamType { Number, Integer, Boolean, String, Choice, IntegerList };

struct ParamField {
    std::string name;
    ParamType type = ParamType::Number;
    std::string help;                    // one line, shown as a tooltip
    double min = -1e300, max = 1e300;    // inclusive unless the *Exclusive flag is set
    bool minExclusive = false, maxExclusive = false;
    std::vector<std::string> choices;    // ParamType::Choice
    std::string unit;                    // "", "epochs", "ms"...
    // Default as the JSON text of the value ("0.001", "\"adam\"", "[1, 64]"); empty: required, unless
    // `inherits` is set.
    std::string defaultJson;
    // Non-empty: the field may be left out, and then takes its value from elsewhere in the experiment
    // (e.g. "/measure": a `measure` step's fields inherit the experiment's measure section).
    std::string inherits;

    bool required() const { return defaultJson.empty() && inherits.empty(); }
};

class ParamValues;
struct ModelCheck;

struct StrategySchema {
    std::string name;     // "family.method" or a plain verb: "train", "finetune", "measure"
    std::string family;   // "train", "measure", "quantize"...
    std::string summary;  // one line
    std::vector<ParamField> fields;
    // Optional: checks the step's params against the model it receives (as far as validation knows it)
    // and, for a step that replaces the model (a distillation's student), says what it leaves. Validation
    // calls it in chain order once the params are valid (SchemaBuilder::checkModel).
    std::function<void(const ParamValues& values, ModelCheck& check)> checkModel;
    const ParamField* field(const std::string& name) const;
};

using ParamValue = std::variant<double, std::int64_t, bool, std::string, std::vector<std::int64_t>>;

// Validated parameter values by field name (defaults filled in). Strategies see them only through their
// typed params struct (SchemaBuilder::read).
class ParamValues {
public:
    void set(const std::string& key, ParamValue v) { m_values[key] = std::move(v); }
    double number(const std::string& key) const;        // Number (or Integer, widened)
    std::int64_t integer(const std::string& key) const;
    bool boolean(const std::string& key) const;
    const std::string& string(const std::string& key) const; // String or Choice
    const std::vector<std::int64_t>& integers(const std::string& key) const;
    bool has(const std::string& key) const { return m_values.count(key) != 0; }
    const std::map<std::string, ParamValue>& all() const { return m_values; }

private:
    const ParamValue& at(const std::string& key) const; // throws ConfigError
    std::map<std::string, ParamValue> m_values;
};

struct ValidationIssue {
    std::string pointer; // JSON pointer, "/steps/0/params/sparsity"
    std::string message; // "expected a number in [0, 1), got \"high\""
};

// What validation knows of a model (or of a dataset's samples) without loading it.
struct ModelSignature {
    std::string name;   // "mlp-784-64-10", "fashion-mnist"
    Shape input;        // per sample, e.g. {1, 28, 28}
    int classes = 0;
    int layers = 0;     // top-level layers of a model (0 for a dataset)
    // The model's architecture JSON where validation knows it exactly (null after a step that changes the
    // model in a way it does not describe), for checks that need layer shapes.
    nlohmann::json architecture;
};

// A step's view, at validation, of the model it receives (StrategySchema::checkModel).
struct ModelCheck {
    std::optional<ModelSignature> model; // the model the step receives; empty: not known before the run
    std::optional<ModelSignature> data;  // the dataset's sample shape and classes, where known
    std::string pointer;                 // the step's params, "/steps/2/params"
    // A path as the experiment writes it, resolved against the experiment file's folder.
    std::function<std::string(const std::string&)> resolvePath;
    std::vector<ValidationIssue>* issues = nullptr;
    void issue(const std::string& field, const std::string& message) const {
        if (issues) issues->push_back({field.empty() ? pointer : pointer + "/" + field, message});
    }
};

// Checks obj against fields: unknown keys (with "did you mean" suggestions; extraKeys are allowed too),
// types, ranges, required keys. filled/values (optional) receive the fields with defaults filled in; a
// field that inherits and is absent is left out of both.
void checkFields(const std::vector<ParamField>& fields, const nlohmann::json& obj, const std::string& pointer,
                 std::vector<ValidationIssue>& issues, nlohmann::json* filled, ParamValues* values,
                 const std::vector<std::string>& extraKeys = {});
// The same for one strategy's params object; pointer is where it sits ("/steps/0/params").
std::vector<ValidationIssue> validateParams(const StrategySchema& schema, const nlohmann::json& params,
                                            const std::string& pointer, nlohmann::json* filled = nullptr,
                                            ParamValues* values = nullptr);
// One value against one field: "" and the value in `out`, or what is wrong.
std::string checkValue(const ParamField& field, const nlohmann::json& value, ParamValue& out);
// "a number in [0, 1)", "one of \"adam\", \"sgd\"".
std::string expectation(const ParamField& field);
nlohmann::json paramValueToJson(const ParamValue& v);

// The closest candidate within a small edit distance (case-insensitive), or "".
std::string closestMatch(const std::string& word, const std::vector<std::string>& candidates);
// "unknown key \"lr_\" (did you mean \"lr\"?)", else the known names listed.
std::string unknownNameMessage(const std::string& what, const std::string& name,
                               const std::vector<std::string>& known, const std::string& extraKnown = {});
// An unknown key of an object whose keys are `known`: "was renamed" for a key an older Lathe used, else
// unknownNameMessage's suggestion.
std::string unknownKeyMessage(const std::string& key, const std::vector<std::string>& known);
// JSON pointer helpers: child("/steps", 0) == "/steps/0"; keys are escaped (~0, ~1).
std::string jsonPointerChild(const std::string& pointer, const std::string& key);
std::string jsonPointerChild(const std::string& pointer, std::size_t index);
// A value as the messages quote it (JSON text, shortened).
std::string describeJson(const nlohmann::json& value);

// A field as JSON (for the GUI's forms and `lathe-cli strategies`), and a whole schema.
nlohmann::json fieldToJson(const ParamField& field);
nlohmann::json schemaToJson(const StrategySchema& schema);

// ---------------------------------------------------------------------------------------------------
// SchemaBuilder<Params>: declares each field once, with its type, range, default and help, bound to a
// member of Params. read() turns validated ParamValues into Params; the registry calls it, so a field
// declared with the wrong type or a default out of its own range fails when the strategy registers.

// Range, unit and help of a numeric field, written with designated initializers:
// `{.min = 0, .max = 1, .maxExclusive = true, .help = "fraction of weights set to zero"}`.
struct FieldRange {
    double min = -1e300, max = 1e300;
    bool minExclusive = false, maxExclusive = false;
    std::string unit;
    std::string help;
};

template <class Params>
class SchemaBuilder {
public:
    SchemaBuilder(std::string name, std::string family, std::string summary)
        : m_schema{std::move(name), std::move(family), std::move(summary), {}, {}} {}

    SchemaBuilder& number(const char* name, double Params::*member, double def, FieldRange r) {
        return add(numeric(name, ParamType::Number, r), json(def),
                   [member](Params& p, const ParamValues& v, const std::string& k) { p.*member = v.number(k); },
                   member);
    }
    SchemaBuilder& number(const char* name, float Params::*member, double def, FieldRange r) {
        return add(numeric(name, ParamType::Number, r), json(def), [member](Params& p, const ParamValues& v,
                                                                            const std::string& k) {
            p.*member = static_cast<float>(v.number(k));
        }, member);
    }
    template <class Int>
        requires std::is_integral_v<Int> && (!std::is_same_v<Int, bool>)
    SchemaBuilder& integer(const char* name, Int Params::*member, std::int64_t def, FieldRange r) {
        return add(numeric(name, ParamType::Integer, r), json(def),
                   [member](Params& p, const ParamValues& v, const std::string& k) {
                       p.*member = static_cast<Int>(v.integer(k));
                   }, member);
    }
    SchemaBuilder& boolean(const char* name, bool Params::*member, bool def, std::string help) {
        ParamField f{name, ParamType::Boolean, std::move(help)};
        return add(std::move(f), json(def),
                   [member](Params& p, const ParamValues& v, const std::string& k) { p.*member = v.boolean(k); },
                   member);
    }
    SchemaBuilder& text(const char* name, std::string Params::*member, std::string def, std::string help) {
        ParamField f{name, ParamType::String, std::move(help)};
        return add(std::move(f), json(std::move(def)),
                   [member](Params& p, const ParamValues& v, const std::string& k) { p.*member = v.string(k); },
                   member);
    }
    SchemaBuilder& choice(const char* name, std::string Params::*member, std::vector<std::string> choices,
                          std::string def, std::string help) {
        ParamField f{name, ParamType::Choice, std::move(help)};
        f.choices = std::move(choices);
        return add(std::move(f), json(std::move(def)),
                   [member](Params& p, const ParamValues& v, const std::string& k) { p.*member = v.string(k); },
                   member);
    }
    // A choice bound to an enum: {{"layer", Scope::Layer}, {"global", Scope::Global}}.
    template <class Enum>
        requires std::is_enum_v<Enum>
    SchemaBuilder& choice(const char* name, Enum Params::*member, std::vector<std::pair<std::string, Enum>> map,
                          Enum def, std::string help) {
        ParamField f{name, ParamType::Choice, std::move(help)};
        std::string defName;
        for (const auto& [text, value] : map) {
            f.choices.push_back(text);
            if (value == def) defName = text;
        }
        if (defName.empty()) throw ConfigError(m_schema.name + ": the default of \"" + f.name + "\" is not a choice");
        return add(
            std::move(f), json(defName),
            [member, map](Params& p, const ParamValues& v, const std::string& k) {
                const std::string& s = v.string(k);
                for (const auto& [text, value] : map)
                    if (text == s) {
                        p.*member = value;
                        return;
                    }
                throw ConfigError("parameter \"" + k + "\": \"" + s + "\" is not a choice");
            },
            [member, map](const Params& p) {
                for (const auto& [text, value] : map)
                    if (value == p.*member) return json(text);
                return json();
            });
    }
    SchemaBuilder& integers(const char* name, std::vector<std::int64_t> Params::*member, std::vector<std::int64_t> def,
                            FieldRange r) {
        return add(numeric(name, ParamType::IntegerList, r), json(std::move(def)),
                   [member](Params& p, const ParamValues& v, const std::string& k) { p.*member = v.integers(k); },
                   member);
    }

    // Adds the fields (and binders) of another builder whose params are a member of these params. With
    // `inheritsFrom`, each of them may be left out and inherits (see inherits()).
    template <class Part>
    SchemaBuilder& include(const SchemaBuilder<Part>& part, Part Params::*member, const std::string& inheritsFrom = {}) {
        for (std::size_t i = 0; i < part.schema().fields.size(); ++i) {
            m_schema.fields.push_back(part.schema().fields[i]);
            if (!inheritsFrom.empty()) {
                m_schema.fields.back().defaultJson.clear();
                m_schema.fields.back().inherits = inheritsFrom;
            }
            auto read = part.binder(i);
            auto write = part.writer(i);
            m_binders.push_back([member, read](Params& p, const ParamValues& v, const std::string& k) {
                read(p.*member, v, k);
            });
            m_writers.push_back([member, write](const Params& p) { return write(p.*member); });
        }
        return *this;
    }

    // The step's check against the model it receives (StrategySchema::checkModel), given typed params.
    // Call it after the last field.
    template <class F>
    SchemaBuilder& checkModel(F check) {
        const SchemaBuilder reader = *this;
        m_schema.checkModel = [reader, check](const ParamValues& v, ModelCheck& c) { check(reader.read(v), c); };
        return *this;
    }

    const StrategySchema& schema() const { return m_schema; }

    // Params from validated values, starting from `start`: fields absent from values (inheriting ones)
    // keep start's members. Throws ConfigError for a value of the wrong type or a key no field declares.
    Params read(const ParamValues& values, Params start = Params{}) const {
        for (const auto& [key, value] : values.all())
            if (!m_schema.field(key)) throw ConfigError(m_schema.name + ": no field \"" + key + "\"");
        for (std::size_t i = 0; i < m_binders.size(); ++i) {
            const std::string& key = m_schema.fields[i].name;
            if (values.has(key)) m_binders[i](start, values, key);
        }
        return start;
    }

    // Params as a JSON object of every field (the inverse of read(); e.g. an experiment written back).
    nlohmann::json write(const Params& params) const {
        nlohmann::json out = nlohmann::json::object();
        for (std::size_t i = 0; i < m_writers.size(); ++i) out[m_schema.fields[i].name] = m_writers[i](params);
        return out;
    }

    using Binder = std::function<void(Params&, const ParamValues&, const std::string&)>;
    using Writer = std::function<nlohmann::json(const Params&)>;
    const Binder& binder(std::size_t i) const { return m_binders.at(i); }
    const Writer& writer(std::size_t i) const { return m_writers.at(i); }

private:
    using json = nlohmann::json;

    static ParamField numeric(const char* name, ParamType type, const FieldRange& r) {
        ParamField f{name, type, r.help, r.min, r.max, r.minExclusive, r.maxExclusive, {}, r.unit};
        return f;
    }
    SchemaBuilder& add(ParamField field, const json& def, Binder binder, Writer writer) {
        field.defaultJson = def.dump();
        m_schema.fields.push_back(std::move(field));
        m_binders.push_back(std::move(binder));
        m_writers.push_back(std::move(writer));
        return *this;
    }
    template <class Member>
    SchemaBuilder& add(ParamField field, const json& def, Binder binder, Member Params::*member) {
        return add(std::move(field), def, std::move(binder), [member](const Params& p) { return json(p.*member); });
    }
    StrategySchema m_schema;
    std::vector<Binder> m_binders;
    std::vector<Writer> m_writers;
};

// Checks a schema as a registry does: a name, no field twice, every default valid for its own field.
// Throws ConfigError naming the schema and field.
void checkSchema(const StrategySchema& schema);
// The defaults of a schema's fields as ParamValues (required and inheriting fields left out).
ParamValues defaultValues(const StrategySchema& schema);

} // namespace lathe

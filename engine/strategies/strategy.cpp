// The strategy registry and typed parameter access. Built-in strategies (train, finetune, measure)
// are registered the first time the registry is used.
#include "engine/strategies/strategy.h"

#include "engine/core/errors.h"
#include "engine/strategies/builtin/builtin.h"

#include <algorithm>

namespace lathe {

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

StrategyRegistry& StrategyRegistry::instance() {
    static StrategyRegistry* registry = [] {
        auto* r = new StrategyRegistry; // never destroyed: strategies may be looked up during static teardown
        registerBuiltinStrategies(*r);
        return r;
    }();
    return *registry;
}

void StrategyRegistry::add(StrategySchema schema, StrategyFactory factory) {
    if (schema.name.empty()) throw ConfigError("a strategy needs a name");
    if (m_entries.count(schema.name)) throw ConfigError("strategy \"" + schema.name + "\" is registered twice");
    for (std::size_t i = 0; i < schema.fields.size(); ++i)
        for (std::size_t j = i + 1; j < schema.fields.size(); ++j)
            if (schema.fields[i].name == schema.fields[j].name)
                throw ConfigError("strategy \"" + schema.name + "\" declares field \"" + schema.fields[i].name +
                                  "\" twice");
    auto name = schema.name;
    m_entries.emplace(std::move(name), Entry{std::move(schema), std::move(factory)});
}

const StrategySchema* StrategyRegistry::find(const std::string& name) const {
    auto it = m_entries.find(name);
    return it == m_entries.end() ? nullptr : &it->second.schema;
}

std::vector<const StrategySchema*> StrategyRegistry::all() const {
    std::vector<const StrategySchema*> out;
    for (const auto& [name, e] : m_entries) out.push_back(&e.schema); // std::map: sorted by name
    return out;
}

std::unique_ptr<Strategy> StrategyRegistry::create(const std::string& name, const ParamValues& params) const {
    auto it = m_entries.find(name);
    if (it == m_entries.end()) throw ConfigError("unknown strategy \"" + name + "\"");
    return it->second.factory(params);
}

} // namespace lathe

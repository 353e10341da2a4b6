// The strategy registry. Families are registered the first time the registry is used, through the
// generated registerStrategyFamilies().
#include "engine/strategies/registry.h"

#include "engine/core/errors.h"

#include <algorithm>

namespace lathe {

StrategyRegistry& StrategyRegistry::instance() {
    static StrategyRegistry* registry = [] {
        auto* r = new StrategyRegistry; // never destroyed: strategies may be looked up during static teardown
        registerStrategyFamilies(*r);
        return r;
    }();
    return *registry;
}

void StrategyRegistry::addEntry(StrategySchema schema, StrategyFactory factory) {
    checkSchema(schema);
    if (m_entries.count(schema.name)) throw ConfigError("strategy \"" + schema.name + "\" is registered twice");
    if (!factory) throw ConfigError("strategy \"" + schema.name + "\" has no factory");
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

std::vector<std::string> StrategyRegistry::names() const {
    std::vector<std::string> out;
    for (const auto& [name, e] : m_entries) out.push_back(name);
    return out;
}

std::vector<std::string> StrategyRegistry::families() const {
    std::vector<std::string> out;
    for (const auto& [name, e] : m_entries)
        if (std::find(out.begin(), out.end(), e.schema.family) == out.end()) out.push_back(e.schema.family);
    std::sort(out.begin(), out.end());
    return out;
}

std::unique_ptr<Strategy> StrategyRegistry::create(const std::string& name, const ParamValues& params) const {
    auto it = m_entries.find(name);
    if (it == m_entries.end()) throw ConfigError("unknown strategy \"" + name + "\"");
    return it->second.factory(params);
}

} // namespace lathe

// The strategy registry: every strategy by name, with its schema (the CLI validates against it, the GUI
// builds its forms from it) and a factory that receives the strategy's typed params struct.
// Each family registers itself from its own folder (engine/strategies/<family>/) with
// LATHE_STRATEGY_FAMILY(<family>) { ... }; the build collects the folders, so no list is kept by hand.
#pragma once

#include "engine/strategies/context.h"
#include "engine/strategies/schema.h"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace lathe {

using StrategyFactory = std::function<std::unique_ptr<Strategy>(const ParamValues& params)>;

class StrategyRegistry {
public:
    static StrategyRegistry& instance(); // with every family of this build registered

    // Typed registration: make(params) builds the strategy from its params struct. The schema is
    // checked (checkSchema) and read() is run once on the defaults, so a field bound to the wrong type
    // or an invalid default fails here, at start-up, never in the middle of a run. Throws ConfigError
    // when the name is taken.
    template <class Params, class Make>
    void add(const SchemaBuilder<Params>& builder, Make make) {
        checkSchema(builder.schema());
        (void)builder.read(defaultValues(builder.schema()));
        addEntry(builder.schema(), [builder, make](const ParamValues& values) -> std::unique_ptr<Strategy> {
            return make(builder.read(values));
        });
    }
    // Untyped registration, for strategies whose params are handled elsewhere; same checks of the schema.
    void addEntry(StrategySchema schema, StrategyFactory factory);

    const StrategySchema* find(const std::string& name) const;
    std::vector<const StrategySchema*> all() const; // sorted by name
    std::vector<std::string> names() const;         // sorted
    std::vector<std::string> families() const;      // sorted, each once
    std::unique_ptr<Strategy> create(const std::string& name, const ParamValues& params) const;

private:
    struct Entry {
        StrategySchema schema;
        StrategyFactory factory;
    };
    std::map<std::string, Entry> m_entries;
};

// Called once by StrategyRegistry::instance(); defined in a source file the build generates from the
// folders under engine/strategies/ (one call of each family's registration function, in name order).
void registerStrategyFamilies(StrategyRegistry& registry);

} // namespace lathe

// Defines the registration function of the family in this folder, at global scope; the folder's name must
// be <family>, and exactly one source of the folder uses it:
//   LATHE_STRATEGY_FAMILY(prune) { registry.add(magnitudeSchema(), ...); }
#define LATHE_STRATEGY_FAMILY(family)                                                  \
    namespace lathe {                                                                  \
    void registerStrategyFamily_##family(StrategyRegistry& registry);                  \
    }                                                                                  \
    void lathe::registerStrategyFamily_##family(::lathe::StrategyRegistry& registry)

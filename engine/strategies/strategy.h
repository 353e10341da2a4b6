// Strategies: named steps of an experiment (train, finetune, measure; later quantize.*, prune.*,
// lowrank.*, distill.*, serve.*). Each registers a parameter schema the CLI validates against and the
// GUI builds its forms from. A strategy never sees JSON: it receives typed ParamValues.
#pragma once

#include "engine/backends/backend.h"
#include "engine/data/dataset.h"
#include "engine/core/metrics.h"
#include "engine/nn/model.h"

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace lathe {

struct TrainingState; // engine/nn/trainer.h

enum class ParamType { Number, Integer, Boolean, String, Choice, IntegerList };

struct ParamField {
    std::string name;
    ParamType type = ParamType::Number;
    std::string help;                    // one line, shown as a tooltip
    double min = -1e300, max = 1e300;    // inclusive unless the *Exclusive flag is set
    bool minExclusive = false, maxExclusive = false;
    std::vector<std::string> choices;    // ParamType::Choice
    std::string unit;                    // "", "epochs", "ms"...
    // Default as the JSON text of the value ("0.001", "\"adam\"", "[1, 64]"); empty: required.
    std::string defaultJson;
};

struct StrategySchema {
    std::string name;     // "family.method" or a plain verb: "train", "finetune", "measure"
    std::string family;   // "train", "measure", "quantize"...
    std::string summary;  // one line
    std::vector<ParamField> fields;
    const ParamField* field(const std::string& name) const;
};

using ParamValue = std::variant<double, std::int64_t, bool, std::string, std::vector<std::int64_t>>;

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

// Logging from the engine to whoever runs it (CLI stderr, GUI log pane).
enum class LogLevel { Info, Warning, Error };
using LogFn = std::function<void(LogLevel, const std::string&)>;

// Everything a step may touch while it runs.
struct StepContext {
    Model& model;
    Backend& backend;
    const DatasetSplits& data;
    MetricSink& sink;
    std::int64_t runId = 0;
    std::uint64_t seed = 42;
    const std::atomic<bool>* cancel = nullptr;
    LogFn log;
    double runStartMs = 0;                 // steady-clock ms at run start, for MetricSample::tMs
    std::map<std::string, double>& summary; // steps add summary metrics (shared keys, ARCHITECTURE.md §4)
    std::map<std::string, std::string>& notes; // e.g. {"simulated": "true"}
    std::function<void(double fraction, const std::string& what)> progress; // within this step
    // The split (and limit) the experiment evaluates on; null: data.test.
    const Dataset* evaluation = nullptr;
    // Counters shared by every training phase of the run, so "loss" and "val_accuracy" samples of
    // consecutive phases follow each other instead of restarting at step 1. Null: start at 0.
    std::int64_t* trainStep = nullptr;
    std::int64_t* trainEpoch = nullptr;
    int stepIndex = 0; // position of this step in the chain (seeds, default labels)
    // The optimizer state and data order the run's training phases hand on (finetune's
    // optimizer_state "continue"). Null: every phase starts afresh.
    TrainingState* training = nullptr;

    const Dataset& evalData() const { return evaluation ? *evaluation : data.test; }
};

class Strategy {
public:
    virtual ~Strategy() = default;
    virtual void apply(StepContext& ctx) = 0;
};

using StrategyFactory = std::function<std::unique_ptr<Strategy>(const ParamValues& params)>;

class StrategyRegistry {
public:
    static StrategyRegistry& instance(); // with the built-in strategies registered
    // Throws ConfigError when the name is taken.
    void add(StrategySchema schema, StrategyFactory factory);
    const StrategySchema* find(const std::string& name) const;
    std::vector<const StrategySchema*> all() const; // sorted by name
    std::unique_ptr<Strategy> create(const std::string& name, const ParamValues& params) const;

private:
    struct Entry {
        StrategySchema schema;
        StrategyFactory factory;
    };
    std::map<std::string, Entry> m_entries;
};

} // namespace lathe

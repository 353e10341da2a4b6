// `measure`: a measurement point inside the chain (e.g. before and after a step). Its summary keys
// and series carry the step's label: "<label>.accuracy", "<label>/latency_ms/b64".
#include "engine/strategies/builtin/builtin.h"

#include "engine/measure/model_measure.h"

namespace lathe {
namespace {

class MeasureStrategy final : public Strategy {
public:
    explicit MeasureStrategy(const ParamValues& p) : m_params(p) {}
    void apply(StepContext& ctx) override {
        MeasureRequest req;
        req.label = m_params.string("label");
        if (req.label.empty()) req.label = "step" + std::to_string(ctx.stepIndex);
        req.batchSizes = m_params.integers("batch_sizes");
        req.warmup = static_cast<int>(m_params.integer("warmup"));
        req.repeats = static_cast<int>(m_params.integer("repeats"));
        req.rotateBatches = static_cast<int>(m_params.integer("rotate_batches"));
        req.accuracy = m_params.boolean("accuracy");
        req.noisyCi = m_params.number("noisy_ci");
        req.seed = ctx.seed;
        const MeasureOutcome out = measureModel(
            MeasureTarget{ctx.model, ctx.backend, ctx.evalData(), ctx.sink, ctx.runId, ctx.runStartMs, ctx.cancel,
                          ctx.progress},
            req);
        for (const auto& [k, v] : out.summary) ctx.summary[k] = v;
        if (out.noisy && ctx.log)
            ctx.log(LogLevel::Warning, "measure " + req.label + ": " + noiseWarning(out, req));
    }

private:
    ParamValues m_params;
};

ParamField field(const char* name, ParamType type, const char* help, double min, double max, const char* def,
                 const char* unit = "") {
    ParamField f;
    f.name = name;
    f.type = type;
    f.help = help;
    f.min = min;
    f.max = max;
    f.defaultJson = def;
    f.unit = unit;
    return f;
}

} // namespace

StrategySchema measureSchema() {
    StrategySchema s{"measure", "measure", "record accuracy, latency and size at this point of the chain", {}};
    s.fields.push_back(field("label", ParamType::String,
                             "prefix of this point's summary keys and series (empty: step<index>)", 0, 0, "\"\""));
    s.fields.push_back(field("batch_sizes", ParamType::IntegerList, "batch sizes timed, in order", 1, 65536,
                             "[1, 64]", "samples"));
    s.fields.push_back(field("warmup", ParamType::Integer, "untimed forwards before timing", 0, 100000, "5",
                             "iterations"));
    s.fields.push_back(field("repeats", ParamType::Integer, "timed forwards per batch size (every one is stored)", 1,
                             1000000, "50", "iterations"));
    s.fields.push_back(field("rotate_batches", ParamType::Integer,
                             "distinct input batches cycled through while timing", 1, 1024, "4", "batches"));
    ParamField acc;
    acc.name = "accuracy";
    acc.type = ParamType::Boolean;
    acc.help = "evaluate accuracy on the experiment's split";
    acc.defaultJson = "true";
    s.fields.push_back(acc);
    ParamField ci = field("noisy_ci", ParamType::Number,
                          "width of the median latency's 95% CI, as a fraction of the median, above which the point "
                          "is flagged noisy",
                          0, 10, "0.05");
    ci.minExclusive = true;
    s.fields.push_back(ci);
    return s;
}

std::unique_ptr<Strategy> makeMeasureStrategy(const ParamValues& params) {
    return std::make_unique<MeasureStrategy>(params);
}

} // namespace lathe

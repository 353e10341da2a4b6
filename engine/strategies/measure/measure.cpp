// The `measure` family: a measurement point inside the chain (e.g. before and after a step). Its settings
// fields inherit the experiment's "measure" section one by one (the runner fills in those the step leaves
// out); its summary keys and series carry the step's label: "<label>.accuracy", "<label>/latency_ms/b64".
#include "engine/strategies/measure/measure_fields.h"
#include "engine/strategies/strategy.h"

namespace lathe {
namespace {

struct MeasureStepParams {
    std::string label;
    MeasureSettings settings;
};

class MeasureStrategy final : public Strategy {
public:
    explicit MeasureStrategy(MeasureStepParams p) : m_params(std::move(p)) {}
    void apply(StepContext& ctx) override {
        MeasureRequest req;
        static_cast<MeasureSettings&>(req) = m_params.settings;
        req.label = m_params.label.empty() ? "step" + std::to_string(ctx.stepIndex) : m_params.label;
        req.seed = ctx.seed;
        const MeasureOutcome out = measureModel(MeasureTarget{ctx.model(), ctx.backend(), ctx.evalData(), ctx.sink(),
                                                              ctx.runId, ctx.runStartMs, ctx.cancel, ctx.progress,
                                                              ctx.outputReference},
                                                req);
        for (const auto& [k, v] : out.summary) ctx.summary()[k] = v;
        if (out.noisy)
            ctx.warn("measure " + req.label + ": " + noiseWarning(out, req));
    }

private:
    MeasureStepParams m_params;
};

} // namespace
} // namespace lathe

LATHE_STRATEGY_FAMILY(measure) {
    using namespace lathe;
    SchemaBuilder<MeasureStepParams> b("measure", "measure", "record accuracy, latency and size at this point of the chain");
    b.text("label", &MeasureStepParams::label, "", "prefix of this point's summary keys and series (empty: step<index>)");
    b.include(measureSettingsSchema(), &MeasureStepParams::settings, "/measure");
    registry.add(b, [](const MeasureStepParams& p) { return std::make_unique<MeasureStrategy>(p); });
}

// Before/after measurement inside a shape-changing step, shared by the strategies that physically shrink a model.
#include "engine/strategies/measure/side_by_side.h"

#include "engine/core/errors.h"

namespace lathe {

MeasureOutcome measureLabelled(StepContext& ctx, const MeasureSettings& settings, const std::string& step,
                               const std::string& label, double from, double to) {
    if (settings.batchSizes.empty()) throw ConfigError(step + ": batch_sizes is empty");
    MeasureRequest req;
    static_cast<MeasureSettings&>(req) = settings;
    req.label = label;
    req.seed = ctx.seed;
    auto progress = [&ctx, from, to, label](double f, const std::string& what) {
        if (ctx.progress) ctx.progress(from + (to - from) * f, label + ": " + what);
    };
    const MeasureOutcome out = measureModel(
        MeasureTarget{ctx.model(), ctx.backend(), ctx.evalData(), ctx.sink(), ctx.runId, ctx.runStartMs, ctx.cancel,
                      progress, ctx.outputReference},
        req);
    if (out.noisy) ctx.warn(step + " " + label + ": " + noiseWarning(out, req));
    return out;
}

double reportSideBySide(StepContext& ctx, const MeasureSettings& settings, const SideBySide& m) {
    auto& sum = ctx.summary();
    for (const auto* o : {&m.before, &m.after})
        for (const auto& [k, v] : o->summary) sum[k] = v;
    sum[m.beforeLabel + ".flops"] = m.flopsBefore;
    sum["flops"] = m.flopsAfter;
    sum["params"] = static_cast<double>(ctx.model().parameterCount());
    sum["speedup_theoretical"] = m.flopsAfter > 0 ? m.flopsBefore / m.flopsAfter : 1.0;
    double first = 0;
    const auto& batches = settings.batchSizes;
    for (std::size_t bi = 0; bi < batches.size(); ++bi) {
        const std::string tag = "@b" + std::to_string(batches[bi]);
        const double a = m.before.summary.at(m.beforeLabel + ".latency_p50_ms" + tag);
        const double b = m.after.summary.at(m.afterLabel + ".latency_p50_ms" + tag);
        if (b <= 0) continue;
        sum["speedup_realized" + tag] = a / b;
        if (bi == 0) sum["speedup_realized"] = first = a / b;
    }
    return first;
}

} // namespace lathe

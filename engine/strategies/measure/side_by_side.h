// The model measured inside a step before and after it changes the model's shape (lowrank.svd, prune.structured):
// both timings under their labels, side by side in one run, with the theoretical speedup (FLOPs before / after)
// and the realized one (p50 latency before / after, per batch size).
#pragma once

#include "engine/measure/model_measure.h"
#include "engine/strategies/strategy.h"

#include <string>

namespace lathe {

// The current model timed (and evaluated) as a measure step labelled `label` would; progress maps into
// [from, to] of the step's. A noisy outcome is logged under `step`.
MeasureOutcome measureLabelled(StepContext& ctx, const MeasureSettings& settings, const std::string& step,
                               const std::string& label, double from, double to);

struct SideBySide {
    std::string beforeLabel, afterLabel; // "original", "factored"
    MeasureOutcome before, after;
    double flopsBefore = 0, flopsAfter = 0;
};

// Writes both outcomes' keys, "<beforeLabel>.flops", "flops", "params" (of the model now),
// "speedup_theoretical", and "speedup_realized@b<batch>" for each batch size (the first one also without the
// suffix). Returns the realized speedup at the first batch size (0 when not measured).
double reportSideBySide(StepContext& ctx, const MeasureSettings& settings, const SideBySide& m);

} // namespace lathe

// What the fuse steps share around their model edit: the logits and the timing before it, the logits compared
// after it (the step fails beyond a tolerance) and the timing after it, side by side ("unfused", "fused").
#pragma once

#include "engine/strategies/measure/measure_fields.h"
#include "engine/strategies/strategy.h"

#include <cstdint>
#include <functional>
#include <string>
#include <utility>

namespace lathe {

struct FuseCheck {
    const char* step;       // "fuse.bn"
    const char* keyPrefix;  // summary keys <keyPrefix>_max_abs_diff, <keyPrefix>_max_rel_diff
    const char* edited;     // "folded": "the folded model's logits differ ..."
    double tolerance;       // of the largest |logit|
    std::int64_t checkSamples;
    const MeasureSettings& measure;
};

struct FuseOutcome {
    double relativeDiff = 0; // largest |logit difference| / largest |logit|
    double realizedSpeedup = 0; // at the first batch size; 0 when not measured
};

// Measures, runs edit(), checks and measures again as described above.
FuseOutcome runCheckedFuse(StepContext& ctx, const FuseCheck& check, const std::function<void()>& edit);

// "layers.3.layers.1" -> ("layers.3.layers.", 1)
std::pair<std::string, long> splitLayerPath(const std::string& path);

} // namespace lathe

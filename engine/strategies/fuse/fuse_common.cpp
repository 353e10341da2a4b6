// The checked edit of the fuse steps (fuse_common.h).
#include "engine/strategies/fuse/fuse_common.h"

#include "engine/measure/flops.h"
#include "engine/measure/latency.h"
#include "engine/strategies/measure/side_by_side.h"

#include <algorithm>
#include <cmath>

namespace lathe {
namespace {

// The logits of the first `count` samples of the evaluated split, in evaluation mode.
std::vector<float> evalLogits(StepContext& ctx, std::int64_t count) {
    Backend& be = ctx.backend();
    const auto batches = makeInputBatches(be, ctx.model(), ctx.evalData(), count, 1);
    return be.downloadF32(ctx.model().forward(batches[0], ForwardContext{}));
}

} // namespace

FuseOutcome runCheckedFuse(StepContext& ctx, const FuseCheck& c, const std::function<void()>& edit) {
    const std::int64_t count = std::min<std::int64_t>(c.checkSamples, ctx.evalData().size());
    const std::vector<float> logitsBefore = evalLogits(ctx, count);
    const double flopsBefore = forwardFlopsPerSample(ctx.model());
    const MeasureOutcome before = measureLabelled(ctx, c.measure, c.step, "unfused", 0.0, 0.45);

    edit();
    ctx.backend().synchronize();

    const std::vector<float> logitsAfter = evalLogits(ctx, count);
    double largest = 0, diff = 0;
    for (std::size_t i = 0; i < logitsBefore.size(); ++i) {
        largest = std::max(largest, std::fabs(double(logitsBefore[i])));
        diff = std::max(diff, std::fabs(double(logitsBefore[i]) - double(logitsAfter[i])));
    }
    FuseOutcome out;
    out.relativeDiff = largest > 0 ? diff / largest : diff;
    ctx.summary()[std::string(c.keyPrefix) + "_max_abs_diff"] = diff;
    ctx.summary()[std::string(c.keyPrefix) + "_max_rel_diff"] = out.relativeDiff;
    if (out.relativeDiff > c.tolerance)
        throw Error(std::string(c.step) + ": the " + c.edited + " model's logits differ from the unfused ones by " +
                    fixed(out.relativeDiff, 8) + " of the largest logit (tolerance " + fixed(c.tolerance, 8) + ")");
    const double flopsAfter = forwardFlopsPerSample(ctx.model());
    const MeasureOutcome after = measureLabelled(ctx, c.measure, c.step, "fused", 0.55, 1.0);
    out.realizedSpeedup =
        reportSideBySide(ctx, c.measure, {"unfused", "fused", before, after, flopsBefore, flopsAfter});
    return out;
}

std::pair<std::string, long> splitLayerPath(const std::string& path) {
    const auto dot = path.rfind('.');
    return {path.substr(0, dot + 1), std::stol(path.substr(dot + 1))};
}

} // namespace lathe

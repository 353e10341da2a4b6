// What serve.batching and serve.generate share about their request stream's fields: the open-loop settings
// taken from a params struct with the same member names (arrival, ratePerS, cv, onMs, offMs, requests,
// durationS, trace), and the validation of the trace field.
#pragma once

#include "engine/core/errors.h"
#include "engine/strategies/context.h"
#include "engine/strategies/schema.h"
#include "engine/strategies/serve/arrivals.h"

#include <string>
#include <vector>

namespace lathe::serve {

// The stream of `p` at `rate` requests/s, its trace resolved against the experiment, seeded per step.
template <class P>
StreamSettings openStreamOf(const P& p, const StepContext& ctx, double rate) {
    StreamSettings s;
    s.kind = p.arrival;
    s.ratePerS = rate;
    s.cv = p.cv;
    s.onMs = p.onMs;
    s.offMs = p.offMs;
    s.requests = p.requests;
    s.durationS = p.durationS;
    s.tracePath = p.trace.empty() || !ctx.resolvePath ? p.trace : ctx.resolvePath(p.trace);
    s.seed = ctx.seed * 1000003ull + static_cast<std::uint64_t>(ctx.stepIndex);
    return s;
}

// With arrival "trace": the field must name a file whose rows parse (classes 0 .. classes - 1); issues go to
// the "trace" field. Returns the rows read (none when the arrival is another kind or the file was refused).
inline std::vector<Arrival> checkTraceField(ArrivalKind arrival, const std::string& trace, int classes, ModelCheck& check) {
    if (arrival != ArrivalKind::Trace) return {};
    if (trace.empty()) {
        check.issue("trace", "arrival \"trace\" needs a trace file");
        return {};
    }
    try {
        return parseTraceFile(check.resolvePath ? check.resolvePath(trace) : trace, classes);
    } catch (const ConfigError& e) {
        check.issue("trace", e.what());
        return {};
    }
}

} // namespace lathe::serve

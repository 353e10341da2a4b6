// Strategies: named steps of an experiment (train, finetune, measure, quantize.*, prune.*, lowrank.*,
// distill.*, serve.*). This header gathers the three parts a strategy is written against: its schema and
// typed params (schema.h), its StepContext (context.h) and the registry (registry.h).
#pragma once

#include "engine/strategies/context.h"
#include "engine/strategies/registry.h"
#include "engine/strategies/schema.h"

#include <cstdio>
#include <string>

namespace lathe {

// A figure for a log line or a note with a fixed number of decimals: fixed(2.3456, 2) == "2.35".
inline std::string fixed(double v, int digits) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", digits, v);
    return buf;
}

} // namespace lathe

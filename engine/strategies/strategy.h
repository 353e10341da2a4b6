// Strategies: named steps of an experiment (train, finetune, measure, quantize.*, prune.*, lowrank.*,
// distill.*, serve.*). This header gathers the three parts a strategy is written against: its schema and
// typed params (schema.h), its StepContext (context.h) and the registry (registry.h).
#pragma once

#include "engine/strategies/context.h"
#include "engine/strategies/registry.h"
#include "engine/strategies/schema.h"

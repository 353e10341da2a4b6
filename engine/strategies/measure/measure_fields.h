// The measurement settings as schema fields, declared once: the experiment's "measure" section, the
// `measure` step (whose fields inherit that section) and the editor's measurement block all use these.
#pragma once

#include "engine/measure/model_measure.h"
#include "engine/strategies/schema.h"

namespace lathe {

// batch_sizes, warmup, repeats, rotate_batches, accuracy, noisy_ci with MeasureSettings' defaults.
const SchemaBuilder<MeasureSettings>& measureSettingsSchema();

} // namespace lathe

// The six measurement fields, bound to MeasureSettings; their defaults are MeasureSettings' own.
#include "engine/strategies/measure/measure_fields.h"

namespace lathe {

const SchemaBuilder<MeasureSettings>& measureSettingsSchema() {
    static const SchemaBuilder<MeasureSettings> b = [] {
        const MeasureSettings d;
        SchemaBuilder<MeasureSettings> s("measure settings", "measure", "what a measurement point times");
        s.integers("batch_sizes", &MeasureSettings::batchSizes, d.batchSizes,
                   {.min = 1, .max = 65536, .unit = "samples", .help = "batch sizes timed, in order"});
        s.integer("warmup", &MeasureSettings::warmup, d.warmup,
                  {.min = 0, .max = 1e6, .unit = "iterations", .help = "untimed forwards before timing"});
        s.integer("repeats", &MeasureSettings::repeats, d.repeats,
                  {.min = 1, .max = 1e7, .unit = "iterations",
                   .help = "timed forwards per batch size (every one is stored)"});
        s.integer("rotate_batches", &MeasureSettings::rotateBatches, d.rotateBatches,
                  {.min = 1, .max = 1024, .unit = "batches",
                   .help = "distinct input batches cycled through while timing"});
        s.boolean("accuracy", &MeasureSettings::accuracy, d.accuracy, "evaluate accuracy on the experiment's split");
        s.number("noisy_ci", &MeasureSettings::noisyCi, d.noisyCi,
                 {.min = 0, .max = 10, .minExclusive = true,
                  .help = "width of the median latency's 95% CI, as a fraction of the median, above which the point "
                          "is flagged noisy"});
        return s;
    }();
    return b;
}

} // namespace lathe

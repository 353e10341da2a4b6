// One measurement point of a model: accuracy (with per-class recall and the confusion matrix) on the
// evaluated split, latency per batch size (every sample streamed as "latency_ms/b<batch>"),
// throughput, peak device and host memory, size and parameter count.
#pragma once

#include "engine/backends/backend.h"
#include "engine/data/dataset.h"
#include "engine/core/clock.h"
#include "engine/core/metrics.h"
#include "engine/measure/fidelity.h"
#include "engine/measure/stats.h"
#include "engine/nn/model.h"
#include "engine/nn/trainer.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace lathe {

// What a measurement point times and evaluates: the experiment's "measure" section, which a `measure`
// step inherits field by field. The schema of these fields is declared once, in
// engine/strategies/measure/measure_fields.h; these are its defaults.
struct MeasureSettings {
    std::vector<std::int64_t> batchSizes{1, 64, 256};
    int warmup = 20;
    int repeats = 200;
    int rotateBatches = 4;      // distinct input batches cycled through while timing
    bool accuracy = true;
    double noisyCi = kDefaultNoisyCi; // median CI wider than this fraction of the median: noisy
};

struct MeasureRequest : MeasureSettings {
    // Summary keys are prefixed with "<label>." and series with "<label>/"; empty for the run's
    // final measurement, which writes the shared keys of ARCHITECTURE.md §4.
    std::string label;
    std::uint64_t seed = 1; // bootstrap resampling
};

struct MeasureOutcome {
    std::map<std::string, double> summary;
    EvalResult eval;      // empty (count 0) when accuracy was off
    bool noisy = false;   // some batch size's median CI was wider than noisyCi of its median
    double worstCiRel = 0;        // the widest relative median CI over the batch sizes ...
    std::int64_t worstBatch = 0;  // ... and its batch size
};

// The log line for a noisy outcome: which batch size, how wide its median's CI, against what.
std::string noiseWarning(const MeasureOutcome& outcome, const MeasureRequest& request);

struct MeasureTarget {
    Model& model;
    Backend& backend;
    const Dataset& data;   // the evaluated split (already limited)
    MetricSink& sink;
    std::int64_t runId = 0;
    double runStartMs = 0; // steadyClockMs() at run start
    const std::atomic<bool>* cancel = nullptr;
    std::function<void(double fraction, const std::string& what)> progress;
    // Reference outputs for a dataset without labels (fidelity.h): quality is then measured as
    // embedding_cosine_mean/_min and retrieval_recall_at_10 against them instead of accuracy and loss.
    const OutputSet* reference = nullptr;
};

// Summary keys written (with the label prefix): accuracy, loss (when accuracy is on; for a dataset without
// labels, embedding_cosine_mean, embedding_cosine_min and retrieval_recall_at_10 against target.reference instead,
// nothing when there is none); per batch size b:
// latency_p50_ms@b<b>, latency_p95_ms@b<b>, latency_p99_ms@b<b>, latency_mean_ms@b<b>, latency_cv@b<b>,
// latency_min_ms@b<b>, latency_max_ms@b<b>, latency_p50_ci_low_ms@b<b>, latency_p50_ci_high_ms@b<b>, latency_p50_ci_rel@b<b>,
// throughput_per_s@b<b>; the same keys without "@b<b>" for the FIRST batch size listed (and batch_size
// naming it), so the plain keys always describe one batch size the file chose; model_bytes, params,
// params_nonzero (parameters not exactly zero: a pruned model's kept weights), peak_device_bytes (backend peak during this measurement, weights included), peak_host_bytes (VmHWM
// during it where the kernel lets us reset the mark, else the process peak), latency_noisy (0/1).
MeasureOutcome measureModel(const MeasureTarget& target, const MeasureRequest& request);

// Milliseconds on the monotonic clock (for MetricSample::tMs).

} // namespace lathe

// After an unstructured pruning step: each pruned Linear is timed dense and through its CSR copy
// (Backend::spmmCsr), and runs sparse only where that was faster. The choice and its figures go to the
// run: note `sparse_paths`, per-layer `csr_speedup@b<batch>`, summary `speedup_theoretical` and
// `speedup_realized` (whole-model latency before the switch / after).
#pragma once

#include "engine/strategies/strategy.h"

#include <cstdint>
#include <string>
#include <vector>

namespace lathe::prune {

enum class Execution { Auto, Dense };

struct ExecutionParams {
    Execution execution = Execution::Auto;
    // Where the step is read from an experiment this inherits /measure/batch_sizes.
    std::vector<std::int64_t> batchSizes{1, 256};
};

// The `execution` field, and `batch_sizes` (to be included inheriting "/measure": the experiment's
// measure batch sizes unless the step gives its own).
const SchemaBuilder<ExecutionParams>& executionSchema();
const SchemaBuilder<ExecutionParams>& executionBatchSchema();

template <class Params>
void executionFields(SchemaBuilder<Params>& b, ExecutionParams Params::*member) {
    b.include(executionSchema(), member);
    b.include(executionBatchSchema(), member, "/measure");
}

// One Linear's timings and choice, as recorded.
// A layer switches to CSR only when CSR was at least this many times faster at the first batch size:
// a win within the timing noise (a few percent here) does not change how the model runs.
inline constexpr double kCsrMinSpeedup = 1.1;

struct SparsePath {
    std::string weight;                // "layers.1.weight"
    std::vector<double> denseMs, csrMs; // median latency of the layer's forward, per batch size
    bool csr = false;
};

// Chooses (Auto) or keeps dense (Dense) and reports; returns the per-layer timings (empty for Dense).
// `owner` prefixes messages ("prune.magnitude"). Honours ctx.cancel between timed layers.
std::vector<SparsePath> chooseSparsePaths(StepContext& ctx, const ExecutionParams& p, const std::string& owner);

} // namespace lathe::prune

// After a pruning step: each pruned Linear is timed dense, through its CSR copy (Backend::spmmCsr) and,
// when its weight is 2:4, through its 2:4 copy (Backend::spmm24), and runs in the fastest sparse format
// only where that beat dense. The choice and its figures go to the run: note `sparse_paths`, per-layer
// `csr_speedup@b<batch>`, `nm24_speedup@b<batch>`, `csr_bytes`, `nm24_bytes`, summary
// `speedup_theoretical`, `speedup_realized` (whole-model latency before the switch / after) and
// `model_bytes_sparse`.
#pragma once

#include "engine/nn/sparse_execution.h"
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

// A layer switches to a sparse format only when that format was at least this many times faster than
// dense at the first batch size: a win within the timing noise (a few percent here) does not change how
// the model runs.
inline constexpr double kSparseMinSpeedup = 1.1;

// One Linear's timings and choice, as recorded.
struct SparsePath {
    std::string weight; // "layers.1.weight"
    // Median latency of the layer's forward per batch size; nm24Ms stays empty when the weight is not 2:4.
    std::vector<double> denseMs, csrMs, nm24Ms;
    SparseFormat format = SparseFormat::Dense;
};

// Chooses (Auto) or keeps dense (Dense) and reports; returns the per-layer timings (empty for Dense).
// `owner` prefixes messages ("prune.magnitude"). Honours ctx.cancel between timed layers.
std::vector<SparsePath> chooseSparsePaths(StepContext& ctx, const ExecutionParams& p, const std::string& owner);

} // namespace lathe::prune

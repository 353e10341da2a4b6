// Compressed sparse rows on the host: what Backend::spmmCsr reads (row pointers, column indices,
// values), built from a dense row-major matrix's nonzeros.
#pragma once

#include <cstdint>
#include <vector>

namespace lathe {

struct HostCsr {
    std::int64_t rows = 0, cols = 0;
    std::vector<std::int32_t> rowPtr; // (rows + 1)
    std::vector<std::int32_t> colIdx; // (nnz), ascending within a row
    std::vector<float> values;        // (nnz)
    std::int64_t nnz() const { return static_cast<std::int64_t>(values.size()); }
};

// The nonzeros of dense (rows, cols), row-major. Exact zeros (either sign) are left out; the column
// count must fit an i32 index, and so must the nonzero count (BackendError otherwise).
HostCsr csrFromDense(const float* dense, std::int64_t rows, std::int64_t cols);

} // namespace lathe

// Building compressed sparse rows from a dense matrix (the pruned Linear's sparse copy, the op's tests).
#include "engine/backends/csr.h"

#include "engine/core/errors.h"

#include <limits>
#include <string>

namespace lathe {

HostCsr csrFromDense(const float* dense, std::int64_t rows, std::int64_t cols) {
    constexpr std::int64_t kMaxIndex = std::numeric_limits<std::int32_t>::max();
    if (rows < 0 || cols < 0 || cols > kMaxIndex)
        throw BackendError("csr: a (" + std::to_string(rows) + ", " + std::to_string(cols) +
                           ") matrix does not fit i32 column indices");
    HostCsr c;
    c.rows = rows;
    c.cols = cols;
    c.rowPtr.reserve(static_cast<std::size_t>(rows + 1));
    c.rowPtr.push_back(0);
    for (std::int64_t r = 0; r < rows; ++r) {
        const float* row = dense + r * cols;
        for (std::int64_t j = 0; j < cols; ++j)
            if (row[j] != 0.0f) {
                c.colIdx.push_back(static_cast<std::int32_t>(j));
                c.values.push_back(row[j]);
            }
        if (c.nnz() > kMaxIndex) throw BackendError("csr: more than 2^31 - 1 nonzeros");
        c.rowPtr.push_back(static_cast<std::int32_t>(c.nnz()));
    }
    return c;
}

} // namespace lathe

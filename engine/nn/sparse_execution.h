// Sparse inference of a pruned Linear: the layer keeps a sparse copy of its weight — compressed sparse
// rows (Backend::spmmCsr) or the 2:4 format (Backend::spmm24, sparse24.h) — and, when not training, runs
// that op + bias instead of the dense GEMM. Training, backward and saving use the dense weight: the copy
// is rebuilt from it whenever it may have changed (after a training forward, when the weight moved to
// another backend), and nothing of it is saved, so a model saved and reloaded runs dense again.
#pragma once

#include "engine/backends/op_desc.h"
#include "engine/nn/model.h"

#include <string>

namespace lathe {

// How a Linear runs for inference.
enum class SparseFormat { Dense, Csr, Nm24 };
// "dense", "csr", "2:4"
const char* sparseFormatName(SparseFormat format);
// The op a format runs: gemm, spmm_csr or spmm_24 for dtype dt.
OpDesc sparseFormatOp(SparseFormat format, DType dt);

// Sets how the Linear at `layerPath` ("layers.1") runs for inference. Csr or Nm24: the copy is built now
// on the model's backend, which must support the format's op for the weight's dtype (BackendError if
// not); Nm24 also needs a weight with at most 2 nonzeros in every group of 4 inputs (BackendError naming
// the first row and group that has more, now or when a later rebuild finds one). A path that names no
// Linear throws ConfigError.
void setSparseExecution(Model& model, const std::string& layerPath, SparseFormat format);
SparseFormat sparseExecution(Model& model, const std::string& layerPath);

} // namespace lathe

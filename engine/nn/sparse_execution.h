// Sparse inference of a pruned Linear: the layer keeps a CSR copy of its weight's nonzeros and, when
// not training, runs Backend::spmmCsr + bias instead of the dense GEMM. Training, backward and saving
// use the dense weight: the copy is rebuilt from it whenever it may have changed (after a training
// forward, when the weight moved to another backend), and nothing of it is saved, so a model saved and
// reloaded runs dense again.
#pragma once

#include "engine/nn/model.h"

#include <string>

namespace lathe {

// Turns the sparse path of the Linear at `layerPath` ("layers.1") on or off. On: the CSR copy is built
// now on the model's backend, which must support spmm_csr for the weight's dtype (BackendError if not).
// A path that names no Linear throws ConfigError.
void setSparseExecution(Model& model, const std::string& layerPath, bool on);
bool sparseExecution(Model& model, const std::string& layerPath);

} // namespace lathe

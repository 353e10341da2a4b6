// Host-quantized matrices (quant_matrix.h) onto a backend, in QuantizedWeights' layout (backend.h).
#pragma once

#include "engine/backends/backend.h"

namespace lathe {

// packed I8 (N, K) or U8 (N, ceil(K / 2)), scales F32 (N, groups), zeros U8 (N, groups) for asymmetric int4.
QuantizedWeights uploadQuantizedWeights(Backend& be, const HostQuantMatrix& q);

} // namespace lathe

// Host-quantized matrices (quant_matrix.h) onto a backend, in QuantizedWeights' layout (backend.h).
#pragma once

#include "engine/backends/backend.h"

namespace lathe {

// packed I8 (N, K), F8E4M3 (N, K) or U8 (N, ceil(K / 2)), scales F32 (N, groups) (double-quantized nf4: their
// codes, block absmax and offset), zeros U8 (N, groups) for asymmetric int4.
QuantizedWeights uploadQuantizedWeights(Backend& be, const HostQuantMatrix& q);

} // namespace lathe

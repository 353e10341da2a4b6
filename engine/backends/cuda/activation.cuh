// The activation a fused GEMM epilogue applies to one output (Backend's Activation: ReLU, exact-erf GELU), shared
// by the .cu files whose kernels end in one (weight_only.cu, fp8.cu).
#pragma once

#include "engine/backends/backend.h"

namespace lathe::cuda {

__device__ __forceinline__ float activate(float v, Activation act) {
    switch (act) {
    case Activation::Relu: return fmaxf(v, 0.0f);
    case Activation::Gelu: return 0.5f * v * (1.0f + erff(v * 0.70710678118654752440f));
    case Activation::None: break;
    }
    return v;
}

} // namespace lathe::cuda

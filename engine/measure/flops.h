// Arithmetic cost of a model's forward pass: multiply-adds x 2 of its Linear and Conv2d layers (quantized ones
// counted as their dense equivalent) and of attention's two batched products, per sample,
// the figure speedup_theoretical compares. Bias, activations, pooling and norms (layernorm, batchnorm2d: a scale
// and shift per element at inference) are left out, as GEMM-based FLOP counts usually do.
#pragma once

#include "engine/nn/model.h"

#include <nlohmann/json.hpp>

namespace lathe {

// FLOPs per sample of one layer given its input shape for one sample (batch dimension 1): a Linear applied
// to (1, ..., in) costs 2 * in * out per row; a Conv2d 2 * (in / groups) * kh * kw per output element. Other
// layers (blocks included: their children are counted on their own) cost 0.
double layerFlopsPerSample(const nlohmann::json& config, const Shape& inputShape, const Shape& outputShape);

// Every Linear and Conv2d of the model, those inside blocks included.
double forwardFlopsPerSample(Model& model);

} // namespace lathe

// `fuse.activation`'s model edit, shared with `lathe-cli bench mlp --fuse`: a Linear or qlinear directly
// followed by a ReLU or GELU in the same sequence takes the activation into its GEMM's epilogue, and the
// activation layer is removed.
#pragma once

#include "engine/backends/backend.h"
#include "engine/nn/model.h"

#include <string>
#include <vector>

namespace lathe {

class StrategyRegistry;

struct ActivationFusion {
    std::string layer;      // "layers.1": the linear or qlinear
    std::string activation; // "layers.2": the relu or gelu after it
    Activation act = Activation::None;
};

// The fusions the model offers, in layer order: a linear or qlinear without an activation of its own, directly
// followed in the same sequence by a relu or gelu layer.
std::vector<ActivationFusion> findActivationFusions(Model& model);

// Performs every fusion findActivationFusions lists and returns them. Each layer is recreated from its config
// with "activation" set and given the very tensors of the old one (float weights, or a qlinear's codes and
// scales: nothing is re-quantized), its sparse execution kept; the activation layer is removed.
std::vector<ActivationFusion> fuseActivations(Model& model);

// Registers fuse.activation (called by the fuse family's registration).
void registerFuseActivation(StrategyRegistry& registry);

} // namespace lathe

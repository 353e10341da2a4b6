// Optimizers with PyTorch semantics, state kept per parameter on the parameter's backend.
#pragma once

#include "engine/backends/backend.h"
#include "engine/nn/model.h"

#include <memory>
#include <string>

namespace lathe {

class Optimizer {
public:
    virtual ~Optimizer() = default;
    virtual std::string name() const = 0;
    virtual void step(Backend& be, const std::vector<NamedParameter>& params) = 0;
    virtual void setLearningRate(float lr) = 0;
};

std::unique_ptr<Optimizer> makeSgd(const SgdParams& p);
std::unique_ptr<Optimizer> makeAdam(const AdamParams& p);

} // namespace lathe

// Optimizers with PyTorch semantics. Their state (momentum, Adam moments) lives in an OptimizerState the
// caller owns, keyed by full parameter name, so it can be carried from one training phase to the next.
#pragma once

#include "engine/backends/backend.h"
#include "engine/nn/model.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace lathe {

// Per-parameter optimizer state found by the parameter's full name ("layers.0.weight"). An entry only
// serves the Parameter object, shape, device and optimizer it was made for: a layer replaced under the same
// name (even with the same shape), a shrunk layer, or a switch from adam to sgd gets fresh state, never
// another layer's.
class OptimizerState {
public:
    struct Entry {
        std::string optimizer;       // name() of the optimizer that wrote it: "sgd", "adam", "adamw"
        std::uint64_t paramUid = 0;  // Parameter::uid of the parameter it belongs to
        Shape shape;
        std::vector<Tensor> tensors; // sgd: {velocity}; adam(w): {m, v}; on the parameter's backend
        std::int64_t steps = 0;      // updates applied with this state (Adam's bias correction)
    };

    // The entry for np, reset to empty (no tensors, 0 steps) unless it was made for exactly this
    // parameter object, shape, device and optimizer.
    Entry& entry(const NamedParameter& np, const std::string& optimizer);
    // Drops the entries of names not in params (layers that were removed or renamed).
    void retainOnly(const std::vector<NamedParameter>& params);
    const Entry* find(const std::string& name) const;
    std::size_t size() const { return m_entries.size(); }
    void clear() { m_entries.clear(); }

private:
    std::map<std::string, Entry> m_entries;
};

class Optimizer {
public:
    virtual ~Optimizer() = default;
    virtual std::string name() const = 0;
    // One update of every parameter from its grad, with (and into) the state's entries.
    virtual void step(Backend& be, const std::vector<NamedParameter>& params, OptimizerState& state) = 0;
    virtual void setLearningRate(float lr) = 0;
};

std::unique_ptr<Optimizer> makeSgd(const SgdParams& p);
std::unique_ptr<Optimizer> makeAdam(const AdamParams& p);

} // namespace lathe

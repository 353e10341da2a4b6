// ModelEditor: the in-place changes strategies make to a model's structure (replace, insert, remove a layer
// at a path; shrink a Linear's outputs or a Conv2d's filters, with a BatchNorm2d between, and the next layer's
// inputs). Every edit leaves the model consistent.
#pragma once

#include "engine/nn/model.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace lathe {

struct LayerInfo {
    std::string path;   // "layers.2", "layers.3.layers.0": the prefix of the layer's parameter names
    std::string type;   // "linear", "residual", ...
    Shape inputShape;   // for one sample, with the batch dimension 1
    Shape outputShape;
    std::int64_t parameterCount = 0; // a block counts its children's
    int depth = 0;      // 0 for the model's own layers
};

// Paths name a layer the way its parameters are named: "layers.<i>" for the model's i-th layer and
// "<block path>.layers.<j>" inside a residual or sequential block. After an edit the layers are renumbered
// (an insertion or removal shifts the paths, and so the parameter names, of the layers after it), the
// shapes are checked from the model's input to its classes, caches are dropped, and every parameter is on
// the model's backend with a zeroed gradient of its shape. An edit that would leave the shapes inconsistent
// is undone and throws ConfigError. Optimizer state follows parameter names and objects (optim.h): edited
// and renumbered layers start with fresh state.
class ModelEditor {
public:
    explicit ModelEditor(Model& model) : m_model(model) {}

    // Every layer, depth-first: a block before its children.
    std::vector<LayerInfo> list() const;
    Layer& layer(const std::string& path) const;

    // A new layer from its architecture entry with PyTorch-default weights drawn from seed, on the model's
    // backend (host tensors when the model has none yet).
    std::unique_ptr<Layer> create(const nlohmann::json& config, std::uint64_t seed) const;

    // Parameter values of a layer handed in must be host tensors or on the model's backend.
    std::unique_ptr<Layer> replace(const std::string& path, std::unique_ptr<Layer> layer); // returns the old one
    void insertBefore(const std::string& path, std::unique_ptr<Layer> layer);
    void insertAfter(const std::string& path, std::unique_ptr<Layer> layer);
    std::unique_ptr<Layer> remove(const std::string& path);

    // Structured shrinking: the Linear at `path` keeps only the output rows `keep` (ascending, distinct),
    // and the next Linear of the same sequence keeps the matching input columns, so neurons are physically
    // removed. Only relu, gelu and dropout may stand between the two. Returns the path of that next Linear.
    std::string shrinkLinearOutputs(const std::string& path, const std::vector<std::int64_t>& keep);

    // The same for a Conv2d (groups 1): it keeps the filters `keep` (weight (K, C, KH, KW) rows and bias), and the
    // next consumer of the same sequence keeps the matching inputs: a Conv2d with groups 1 its input channels, or,
    // through a flatten, a Linear the H*W consecutive columns each kept channel owns in the flattened NCHW map
    // (H, W as the model infers them at the flatten). Only relu, gelu, dropout, maxpool2d and batchnorm2d may stand between
    // (and relu, gelu, dropout after the flatten). A grouped or depthwise producer or consumer is refused with a
    // ConfigError before anything changes. A batchnorm2d between the two (before any flatten) keeps the same
    // channels: its weight, bias, running_mean and running_var entries. Returns the path of the consumer.
    std::string shrinkConvOutputs(const std::string& path, const std::vector<std::int64_t>& keep);

    // Attention-head pruning: the attention layer at `path` keeps only the heads `keepHeads` (ascending, distinct,
    // at least one). The linear right before it (the fused QKV projection D -> 3D) keeps the Q, K and V rows of the
    // kept heads (weight and bias), the linear right after it (the output projection D -> D') the matching input
    // columns, and the attention's `heads` becomes the count kept (head size unchanged), so the removed heads'
    // work is gone, not masked. Anything else around the attention (another layer type, a non-f32 weight) is
    // refused with a ConfigError before anything changes.
    void pruneAttentionHeads(const std::string& path, const std::vector<std::int64_t>& keepHeads);

private:
    struct Slot {
        std::vector<std::unique_ptr<Layer>>* list = nullptr;
        std::size_t index = 0;
    };
    Slot resolve(const std::string& path) const;
    // Renumbers, checks shapes and places parameters; on a shape error runs `undo`, renumbers and rethrows.
    void commit(const std::function<void()>& undo);
    // Shrunk layers put in place at their indices of the sequence of `s` (all undone on a shape error);
    // returns the path of the consumer, at index j.
    std::string replaceInSequence(const std::string& path, const Slot& s, std::size_t j,
                                  std::vector<std::pair<std::size_t, std::unique_ptr<Layer>>> layers);

    Model& m_model;
};

} // namespace lathe

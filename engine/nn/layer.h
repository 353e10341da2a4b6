// Layers with forward and backward on any Backend. A layer caches what its backward needs
// during a training forward; parameters carry their gradients beside them.
#pragma once

#include "engine/backends/backend.h"
#include "engine/core/rng.h"
#include "engine/nn/sequence.h"

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

namespace lathe {

// A fresh number for every Parameter object ever built; OptimizerState uses it to tell a replaced
// layer from the one it holds state for, when both have the same name and shape.
std::uint64_t nextParameterUid();

struct Parameter {
    std::string name; // local name: "weight", "bias"
    Tensor value;     // on the model's backend
    Tensor grad;      // same shape; allocated by Model::to / zeroGrad
    std::uint64_t uid = nextParameterUid();
};

struct NamedParameter {
    std::string name; // full name: "layers.0.weight", "layers.3.layers.0.weight"
    Parameter* param;
};

// A tensor a layer keeps beside its parameters that training does not optimise (PyTorch's buffer): BatchNorm's
// running statistics. Buffers are saved and loaded with the parameters under the same naming, move between
// backends with the model, and have no gradient; the layer itself updates them.
struct Buffer {
    std::string name;  // local name: "running_mean"
    Tensor value;      // on the model's backend, or in host memory when `host` is set
    bool host = false; // kept in host memory on every backend: a counter the layer updates on the host
};

struct NamedBuffer {
    std::string name; // full name: "layers.1.running_mean"
    Buffer* buffer;
};

struct ForwardContext {
    // Set by the trainer only: caches activations for backward, enables dropout, and makes BatchNorm use and
    // track batch statistics. Evaluation, measurement and a teacher's forward leave it false.
    bool training = false;
    std::uint64_t seed = 0;     // dropout masks: hashed with the layer index and step
    std::int64_t step = 0;
    // Optional: Model::forward stores the output of its top-level layer `tapLayer` in *tap (a loss that
    // reads an intermediate feature, e.g. feature distillation).
    int tapLayer = -1;
    Tensor* tap = nullptr;
    // Sequence models (token ids (N, T), right padding): each sequence's valid length, token types and the
    // position of the first token (sequence.h); null for a batch of fixed-size samples (every position valid).
    std::shared_ptr<const SequenceBatch> sequence;
    // Generation with a KV cache (kv_cache.h): attention layers append this step's keys and values to it and
    // attend over everything cached; null: the whole prefix is recomputed.
    KvStore* kvCache = nullptr;
};

class Layer {
public:
    virtual ~Layer() = default;

    virtual std::string type() const = 0;              // "linear", "conv2d", ...
    virtual nlohmann::json config() const = 0;         // {"type": "linear", "in": 784, "out": 256}
    virtual Shape outputShape(const Shape& input) const = 0; // shapes include the batch dimension

    // x (N, ...) -> y. With ctx.training the layer keeps what backward needs.
    virtual Tensor forward(Backend& be, const Tensor& x, const ForwardContext& ctx) = 0;
    // dy -> dx; parameter gradients are accumulated (+=) into Parameter::grad.
    virtual Tensor backward(Backend& be, const Tensor& dy) = 0;

    // Every parameter of the layer, those of its sub-layers included (a block lists its children's).
    virtual std::vector<Parameter*> parameters() { return {}; }
    // Parameters under their full names: prefix + local name ("layers.2." + "weight"). Blocks add their
    // children's under prefix + "layers.<i>.", as a PyTorch module holding an nn.Sequential `layers` would.
    virtual void namedParameters(const std::string& prefix, std::vector<NamedParameter>& out) {
        for (Parameter* p : parameters()) out.push_back({prefix + p->name, p});
    }
    // Every buffer of the layer, its sub-layers' included; named as the parameters are.
    virtual std::vector<Buffer*> buffers() { return {}; }
    virtual void namedBuffers(const std::string& prefix, std::vector<NamedBuffer>& out) {
        for (Buffer* b : buffers()) out.push_back({prefix + b->name, b});
    }
    // Weights the layer holds in a quantized form rather than as parameters (a qlinear's codes: out x in),
    // counted with the parameters so that `params` means the same before and after a conversion.
    virtual std::int64_t quantizedWeightCount() const { return 0; }
    // A block's own sub-layers (residual, sequential); null for a leaf layer. ModelEditor edits these.
    virtual std::vector<std::unique_ptr<Layer>>* sublayers() { return nullptr; }
    // PyTorch's default initialisation for the layer type, drawn from rng.
    virtual void initialize(Backend& be, Rng& rng) { (void)be; (void)rng; }
    // Drop cached activations (after a training step, or before moving to another backend).
    virtual void releaseCache() {}
    // The model's first inference scope opened (Model::InferenceScope): until endInference the weights are read-only,
    // so the layer may keep them laid out for the backend's inference kernels (Backend::prepackGemmWeight) instead of
    // laying them out on every forward. Model calls every layer of the tree, sub-layers included.
    virtual void beginInference(Backend& be) { (void)be; }
    virtual void endInference() {}
    // Weight tying (a language model's output head reuses the token embedding): the full name of another layer's
    // parameter this layer computes with ("layers.0.weight"), or "" for none. Model binds it after building and
    // after every edit; the layer lists it in neither parameters() nor namedParameters(), so it is saved, counted
    // and optimised once, under its owner's name, and the layer's backward adds into that parameter's gradient.
    virtual std::string sharedParameterName() const { return ""; }
    virtual void bindSharedParameter(Parameter* p) { (void)p; }

    // Set by Model (and by a block for its children): position in the enclosing sequence (dropout
    // seeds, parameter names).
    int index = 0;
};

// Builds a layer from its architecture entry; throws ConfigError naming the bad field.
// Types: linear{in,out,bias?,dtype? (f32; f16 or bf16 weights for inference)}, conv2d{in,out,kernel,stride?,padding?,groups?,bias?}, maxpool2d{kernel,stride?,padding?},
// relu, gelu, dropout{p}, flatten, layernorm{dim,eps?}, batchnorm2d{features,eps?,momentum?}, embedding{num,dim},
// qlinear{in,out,bias?,weights?,group?,symmetric?,activations?,granularity?,activation?} and
// qconv2d{in,out,kernel,stride?,padding?, the same quantization fields} (quantized_linear.h);
// transformers (layers_transformer.cpp, transformer.h): attention{heads,causal?} over a fused QKV (N, T, 3D),
// position_embedding{num,dim}, token_type_embedding{num,dim}, mean_pool{}, l2_normalize{eps?},
// tied_linear{in,out,weight} (a head computing with another layer's weight);
// blocks owning sub-layers:
// residual{layers} (y = x + f(x)) and sequential{layers}.
std::unique_ptr<Layer> makeLayer(const nlohmann::json& config);
// Same, with errors prefixed by the entry's JSON pointer in its document ("/layers/3/out: ...").
std::unique_ptr<Layer> makeLayer(const nlohmann::json& config, const std::string& pointer);

} // namespace lathe

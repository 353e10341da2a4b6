// Model: a named sequence of layers plus the input preprocessing, movable between backends.
// Parameter names follow PyTorch's nn.Sequential held as `layers`: "layers.<i>.<param>"; inside a block,
// "layers.<i>.layers.<j>.<param>" (layer.h).
#pragma once

#include "engine/data/dataset.h"
#include "engine/nn/layer.h"

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace lathe {

class ModelEditor;

class Model {
public:
    // architecture: {"name": ..., "input": {"shape": [1,28,28], "scale": .., "mean": .., "std": .., "dtype": ..},
    //                "classes": 10, "output": [..]?, "layers": [ {...}, ... ]}. Throws ConfigError with the JSON pointer.
    // Sequence models: "input": {"shape": [T], "dtype": "i32"} takes token ids (N, T) (no preprocessing), and
    // "output" is the per-sample output shape when it is not [classes]: [T, V] for a language model's logits
    // (classes = V), [D] for a sentence embedding.
    static std::unique_ptr<Model> fromArchitecture(const nlohmann::json& architecture);
    nlohmann::json architecture() const;

    const std::string& name() const { return m_name; }
    const Shape& inputShape() const { return m_inputShape; } // per sample, e.g. {1, 28, 28}
    int numClasses() const { return m_numClasses; }
    DType inputDType() const { return m_inputDType; }        // F32 (preprocessed pixels) or I32 (token ids)
    // The id that pads a sequence on the right ("input": {"pad_id": P}), -1 for none. With one, forward() called
    // without ForwardContext::sequence finds each sequence's length from its trailing pad ids, so attention and
    // pooling leave the padding out for every caller (timing, calibration, evaluation).
    std::int64_t padId() const { return m_padId; }
    const Shape& outputShape() const { return m_outputShape; } // per sample: {classes} unless "output" says
    // Rows of `classes` logits per sample: 1 for a classifier, T for a language model's (T, V) output.
    std::int64_t outputRowsPerSample() const;
    const InputPreprocess& preprocess() const { return m_preprocess; }
    const std::vector<std::unique_ptr<Layer>>& layers() const { return m_layers; }

    // Fresh PyTorch-default weights on `be`, drawn from seed.
    void initialize(Backend& be, std::uint64_t seed);
    // Moves every parameter (and allocates gradients) and every buffer (but those kept on the host) onto `be`.
    void to(Backend& be);
    Backend* backend() const { return m_backend; }

    // x (N, inputShape...) -> logits (N, classes).
    Tensor forward(const Tensor& x, const ForwardContext& ctx);
    // The same on `be`, a backend that can read the model's tensors: one made by backend()->makeInstance(), so
    // that several threads run inference at once, each on its own (serving's model instances). Inference only:
    // the layers' lazily built caches (a quantized layer's packed codes, a sparse copy of a weight) are filled by
    // the first forward, so run one on backend() before threads share the model.
    Tensor forward(Backend& be, const Tensor& x, const ForwardContext& ctx);

    // While one is alive the model's weights are read-only, as a loaded inference session's are: its layers keep
    // copies of them laid out for the backend's inference kernels (Layer::beginInference, Backend::prepackGemmWeight),
    // made on backend() when the first scope opens and dropped when the last one closes. The latency harness,
    // evaluation, model outputs and the serving executor each hold one while they run forwards; code that edits
    // a weight in place must not run while one is open (a weight replaced by another tensor, or moved by to(), is
    // noticed: the layer computes from the new one as stored). Training forwards drop a layer's copies. Scopes
    // nest; open and close them on one thread (forwards inside may run on any).
    class InferenceScope {
    public:
        explicit InferenceScope(Model& model);
        ~InferenceScope();
        InferenceScope(const InferenceScope&) = delete;
        InferenceScope& operator=(const InferenceScope&) = delete;

    private:
        Model& m_model;
    };
    bool inInferenceScope() const { return m_inferenceScopes > 0; }
    // dlogits (N, classes): backpropagates through every layer, accumulating parameter grads. With
    // dfeature, that gradient is added to the one flowing into the output of top-level layer featureLayer
    // (the layer ForwardContext::tapLayer read), e.g. a feature-matching loss's.
    void backward(const Tensor& dlogits, int featureLayer = -1, const Tensor* dfeature = nullptr);
    void zeroGrad();
    void releaseCache();

    std::vector<NamedParameter> namedParameters();
    // Buffers (layer.h) under their full names, as PyTorch's state_dict lists them beside the parameters.
    std::vector<NamedBuffer> namedBuffers();
    std::int64_t parameterCount() const; // parameters, and the weights quantized layers hold as codes
    // Binds every layer's shared parameter (Layer::sharedParameterName) to its owner's; ConfigError naming the
    // layer when the owner is missing or its shape differs. Called after building and after each edit.
    void bindSharedParameters();
    std::uint64_t parameterBytes() const; // as stored (dtype-aware): parameters and buffers

private:
    friend class ModelEditor; // edits m_layers in place (model_edit.h)
    // Puts a buffer on `to`: from the backend `from` it lives on (null: a host value set from outside), or into
    // host memory for a buffer kept there.
    Tensor forwardLayers(Backend& be, const Tensor& x, const ForwardContext& ctx);
    static void placeBuffer(Buffer& b, const std::string& name, Backend* from, Backend& to);
    std::string m_name;
    Shape m_inputShape;
    int m_numClasses = 0;
    DType m_inputDType = DType::F32;
    std::int64_t m_padId = -1;
    Shape m_outputShape;
    InputPreprocess m_preprocess;
    std::vector<std::unique_ptr<Layer>> m_layers;
    Backend* m_backend = nullptr;
    int m_inferenceScopes = 0; // open InferenceScopes
};

} // namespace lathe

// Model: building from architecture JSON, initialisation, placement on a backend, forward/backward.
#include "engine/nn/model.h"

#include "engine/core/errors.h"
#include "engine/nn/config_fields.h"

#include <algorithm>
#include <functional>

namespace lathe {

std::unique_ptr<Model> Model::fromArchitecture(const nlohmann::json& arch) {
    namespace cfg = nnconfig;
    cfg::requireObject(arch, "");
    auto model = std::make_unique<Model>();

    auto name = arch.find("name");
    if (name != arch.end()) {
        if (!name->is_string() || name->get<std::string>().empty())
            cfg::fail("/name", "expected a non-empty string, got " + cfg::shortDump(*name));
        model->m_name = name->get<std::string>();
    } else {
        model->m_name = "model";
    }

    auto input = arch.find("input");
    if (input == arch.end()) cfg::fail("/input", "missing (expected {\"shape\": [C, H, W], ...})");
    cfg::requireObject(*input, "/input");
    cfg::onlyKeys(*input, "/input", {"shape", "scale", "mean", "std", "dtype", "pad_id"});
    if (input->contains("pad_id")) {
        model->m_padId = cfg::integer(*input, "pad_id", "/input", 0);
        if (input->value("dtype", std::string("f32")) != "i32")
            cfg::fail("/input/pad_id", "a pad id goes with \"dtype\": \"i32\" (token ids)");
    }
    if (auto dt = input->find("dtype"); dt != input->end()) {
        if (!dt->is_string() || (*dt != "f32" && *dt != "i32"))
            cfg::fail("/input/dtype", "expected \"f32\" (pixels) or \"i32\" (token ids), got " + cfg::shortDump(*dt));
        model->m_inputDType = *dt == "i32" ? DType::I32 : DType::F32;
    }
    auto shape = input->find("shape");
    if (shape == input->end()) cfg::fail("/input/shape", "missing (expected an array of positive integers)");
    if (!shape->is_array() || shape->empty())
        cfg::fail("/input/shape", "expected a non-empty array of positive integers, got " + cfg::shortDump(*shape));
    for (std::size_t i = 0; i < shape->size(); ++i) {
        const auto& d = (*shape)[i];
        if (!d.is_number_integer() || d.get<std::int64_t>() < 1)
            cfg::fail("/input/shape/" + std::to_string(i), "expected a positive integer, got " + cfg::shortDump(d));
        model->m_inputShape.push_back(d.get<std::int64_t>());
    }
    const double defScale = 1.0 / 255.0, defMean = 0.0, defStd = 1.0;
    model->m_preprocess.scale = static_cast<float>(cfg::number(*input, "scale", "/input", -1e30, 1e30, false, &defScale));
    model->m_preprocess.mean = static_cast<float>(cfg::number(*input, "mean", "/input", -1e30, 1e30, false, &defMean));
    const double stdev = cfg::number(*input, "std", "/input", -1e30, 1e30, false, &defStd);
    if (!(stdev > 0.0)) cfg::fail("/input/std", "expected a positive number, got " + cfg::shortDump((*input)["std"]));
    model->m_preprocess.std = static_cast<float>(stdev);

    model->m_numClasses = static_cast<int>(cfg::integer(arch, "classes", "", 1));
    model->m_outputShape = {model->m_numClasses};
    if (auto out = arch.find("output"); out != arch.end()) {
        if (!out->is_array() || out->empty())
            cfg::fail("/output", "expected a non-empty array of positive integers, got " + cfg::shortDump(*out));
        model->m_outputShape.clear();
        for (std::size_t i = 0; i < out->size(); ++i) {
            const auto& d = (*out)[i];
            if (!d.is_number_integer() || d.get<std::int64_t>() < 1)
                cfg::fail("/output/" + std::to_string(i), "expected a positive integer, got " + cfg::shortDump(d));
            model->m_outputShape.push_back(d.get<std::int64_t>());
        }
    }

    auto layers = arch.find("layers");
    if (layers == arch.end()) cfg::fail("/layers", "missing (expected an array of layer objects)");
    if (!layers->is_array() || layers->empty())
        cfg::fail("/layers", "expected a non-empty array of layer objects, got " + cfg::shortDump(*layers));
    for (std::size_t i = 0; i < layers->size(); ++i) {
        auto layer = makeLayer((*layers)[i], "/layers/" + std::to_string(i));
        layer->index = static_cast<int>(i);
        model->m_layers.push_back(std::move(layer));
    }

    // Walk one sample through the shapes so a mismatch is reported at the layer that breaks.
    Shape s = {1};
    s.insert(s.end(), model->m_inputShape.begin(), model->m_inputShape.end());
    for (std::size_t i = 0; i < model->m_layers.size(); ++i) {
        try {
            s = model->m_layers[i]->outputShape(s);
        } catch (const ConfigError& e) {
            cfg::fail("/layers/" + std::to_string(i), e.what());
        }
    }
    Shape expected = {1};
    expected.insert(expected.end(), model->m_outputShape.begin(), model->m_outputShape.end());
    if (s != expected)
        cfg::fail("/layers/" + std::to_string(model->m_layers.size() - 1),
                  "the model's output per sample is " + shapeToString(s) + ", expected " + shapeToString(expected) +
                      (arch.contains("output") ? " (/output)" : " (/classes)"));
    model->bindSharedParameters();
    return model;
}

nlohmann::json Model::architecture() const {
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& l : m_layers) layers.push_back(l->config());
    nlohmann::json a = {{"name", m_name},
                        {"input",
                         {{"shape", m_inputShape},
                          {"scale", m_preprocess.scale},
                          {"mean", m_preprocess.mean},
                          {"std", m_preprocess.std}}},
                        {"classes", m_numClasses},
                        {"layers", layers}};
    if (m_inputDType == DType::I32) a["input"]["dtype"] = "i32";
    if (m_padId >= 0) a["input"]["pad_id"] = m_padId;
    if (m_outputShape != Shape{m_numClasses}) a["output"] = m_outputShape;
    return a;
}

std::int64_t Model::outputRowsPerSample() const {
    return std::max<std::int64_t>(1, numel(m_outputShape) / std::max(1, m_numClasses));
}

namespace {
void collectShared(std::vector<std::unique_ptr<Layer>>& layers, std::vector<Layer*>& out) {
    for (auto& l : layers) {
        if (!l->sharedParameterName().empty()) out.push_back(l.get());
        if (auto* children = l->sublayers()) collectShared(*children, out);
    }
}
} // namespace

void Model::bindSharedParameters() {
    std::vector<Layer*> tied;
    collectShared(m_layers, tied);
    if (tied.empty()) return;
    const auto named = namedParameters();
    for (Layer* l : tied) {
        const std::string want = l->sharedParameterName();
        Parameter* found = nullptr;
        for (const auto& np : named)
            if (np.name == want) found = np.param;
        if (!found)
            throw ConfigError("model " + m_name + ": layer " + l->type() + " computes with parameter " + want +
                              ", which the model does not have");
        l->bindSharedParameter(found);
    }
}

void Model::initialize(Backend& be, std::uint64_t seed) {
    Rng rng(seed);
    for (auto& l : m_layers) l->releaseCache();
    for (auto& l : m_layers) l->initialize(be, rng);
    m_backend = &be;
    for (auto& l : m_layers)
        for (Parameter* p : l->parameters()) p->grad = be.zeros(p->value.shape(), p->value.dtype());
}

void Model::to(Backend& be) {
    for (auto& l : m_layers) l->releaseCache();
    for (const auto& np : namedParameters()) {
        Parameter* p = np.param;
        if (!p->value.defined()) throw BackendError("parameter " + np.name + " has no value");
        if (m_backend != &be) {
            // Values set from outside (loading) are host tensors; otherwise they live on m_backend.
            Tensor host = p->value.isHost() || !m_backend ? p->value : m_backend->download(p->value);
            if (!host.isHost())
                throw BackendError("parameter " + np.name + " is on " + host.device().toString() +
                                   " and the model has no backend to read it from");
            p->value = be.upload(host);
        }
        if (!p->grad.defined() || p->grad.shape() != p->value.shape() || p->grad.device() != be.device() ||
            m_backend != &be)
            p->grad = be.zeros(p->value.shape(), p->value.dtype());
    }
    for (const auto& nb : namedBuffers()) placeBuffer(*nb.buffer, nb.name, m_backend, be);
    m_backend = &be;
}

Tensor Model::forward(const Tensor& x, const ForwardContext& ctx) {
    if (!m_backend) throw BackendError("model " + m_name + " is not placed on a backend (call initialize or to)");
    return forward(*m_backend, x, ctx);
}

Tensor Model::forward(Backend& be, const Tensor& x, const ForwardContext& ctx) {
    if (!m_backend) throw BackendError("model " + m_name + " is not placed on a backend (call initialize or to)");
    if (be.device() != m_backend->device())
        throw BackendError("model " + m_name + " is on " + m_backend->name() + ", not on " + be.name());
    if (ctx.training && &be != m_backend)
        throw BackendError("model " + m_name + ": training runs on the backend the model is placed on");
    if (ctx.tap && (ctx.tapLayer < 0 || ctx.tapLayer >= static_cast<int>(m_layers.size())))
        throw ConfigError("model " + m_name + " has no layer " + std::to_string(ctx.tapLayer) + " to read (it has " +
                          std::to_string(m_layers.size()) + ")");
    if (m_padId >= 0 && !ctx.sequence && !ctx.kvCache && x.rank() == 2 && x.dtype() == DType::I32) {
        // Right padding: each sequence's length is T minus its trailing pad ids (read back once per forward).
        const Tensor ids = be.download(x); // (N, T)
        const std::int64_t n = x.dim(0), t = x.dim(1);
        std::vector<std::int32_t> lengths(static_cast<std::size_t>(n));
        for (std::int64_t r = 0; r < n; ++r) {
            std::int64_t len = t;
            while (len > 0 && ids.ptr<std::int32_t>()[r * t + len - 1] == m_padId) --len;
            lengths[static_cast<std::size_t>(r)] = static_cast<std::int32_t>(len);
        }
        ForwardContext withLengths = ctx;
        withLengths.sequence = SequenceBatch::fromLengths(be, t, std::move(lengths));
        return forwardLayers(be, x, withLengths);
    }
    return forwardLayers(be, x, ctx);
}

Tensor Model::forwardLayers(Backend& be, const Tensor& x, const ForwardContext& ctx) {
    Tensor h = x;
    for (std::size_t i = 0; i < m_layers.size(); ++i) {
        h = m_layers[i]->forward(be, h, ctx);
        if (ctx.tap && static_cast<int>(i) == ctx.tapLayer) *ctx.tap = h;
    }
    return h;
}

void Model::backward(const Tensor& dlogits, int featureLayer, const Tensor* dfeature) {
    if (!m_backend) throw BackendError("model " + m_name + " is not placed on a backend (call initialize or to)");
    Tensor d = dlogits;
    for (int i = static_cast<int>(m_layers.size()) - 1; i >= 0; --i) {
        if (dfeature && i == featureLayer) { // d is the gradient of layer i's output here
            Tensor sum = m_backend->empty(d.shape());
            m_backend->add(d, dfeature->view(d.shape()), sum);
            d = sum;
        }
        d = m_layers[static_cast<std::size_t>(i)]->backward(*m_backend, d);
        if (!d.defined()) break; // an embedding: nothing flows into the ids
    }
}

void Model::zeroGrad() {
    if (!m_backend) return;
    for (auto& l : m_layers)
        for (Parameter* p : l->parameters())
            if (p->grad.defined()) m_backend->fill(p->grad, 0.0f);
}

namespace {
void forEachLayer(std::vector<std::unique_ptr<Layer>>& layers, const std::function<void(Layer&)>& fn) {
    for (auto& l : layers) {
        fn(*l);
        if (auto* children = l->sublayers()) forEachLayer(*children, fn);
    }
}
} // namespace

Model::InferenceScope::InferenceScope(Model& model) : m_model(model) {
    if (m_model.m_inferenceScopes++ > 0 || !m_model.m_backend) return;
    Backend& be = *m_model.m_backend;
    try {
        forEachLayer(m_model.m_layers, [&](Layer& l) { l.beginInference(be); });
    } catch (...) {
        forEachLayer(m_model.m_layers, [](Layer& l) { l.endInference(); });
        --m_model.m_inferenceScopes;
        throw;
    }
}

Model::InferenceScope::~InferenceScope() {
    if (--m_model.m_inferenceScopes > 0) return;
    forEachLayer(m_model.m_layers, [](Layer& l) { l.endInference(); });
}

void Model::releaseCache() {
    for (auto& l : m_layers) l->releaseCache();
}

std::vector<NamedParameter> Model::namedParameters() {
    std::vector<NamedParameter> out;
    for (auto& l : m_layers) l->namedParameters("layers." + std::to_string(l->index) + ".", out);
    return out;
}

std::vector<NamedBuffer> Model::namedBuffers() {
    std::vector<NamedBuffer> out;
    for (auto& l : m_layers) l->namedBuffers("layers." + std::to_string(l->index) + ".", out);
    return out;
}

void Model::placeBuffer(Buffer& b, const std::string& name, Backend* from, Backend& to) {
    if (!b.value.defined()) throw BackendError("buffer " + name + " has no value");
    if (b.value.isHost() && (b.host || (from == &to && b.value.device() == to.device()))) return;
    if (!b.value.isHost() && b.value.device() == to.device() && !b.host) return;
    if (!b.value.isHost() && !from)
        throw BackendError("buffer " + name + " is on " + b.value.device().toString() +
                           " and the model has no backend to read it from");
    const Tensor host = b.value.isHost() ? b.value : from->download(b.value);
    b.value = b.host ? host : to.upload(host);
}

namespace {
// A layer's quantized weights, its sub-layers' included.
std::int64_t quantizedWeights(Layer& layer) {
    std::int64_t n = layer.quantizedWeightCount();
    if (auto* children = layer.sublayers())
        for (auto& c : *children) n += quantizedWeights(*c);
    return n;
}
} // namespace

std::int64_t Model::parameterCount() const {
    std::int64_t n = 0;
    for (const auto& l : m_layers) {
        for (Parameter* p : l->parameters()) n += p->value.numel();
        n += quantizedWeights(*l);
    }
    return n;
}

std::uint64_t Model::parameterBytes() const {
    std::uint64_t n = 0;
    for (const auto& l : m_layers) {
        for (Parameter* p : l->parameters()) n += p->value.bytes();
        for (Buffer* b : l->buffers()) n += b->value.bytes(); // running statistics, quantization codes and scales
    }
    return n;
}

} // namespace lathe

// Helpers shared by the layer implementations: host-side initial values, shape checks, and the
// constructors behind makeLayer. Internal to engine/nn.
#pragma once

#include "engine/core/errors.h"
#include "engine/nn/layer.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

namespace lathe::nnimpl {

// U(-bound, bound) drawn in element order from rng, uploaded to `be`.
inline Tensor uniformTensor(Backend& be, Rng& rng, const Shape& shape, float bound) {
    Tensor h = Tensor::host(shape, DType::F32);
    float* p = h.ptr<float>();
    for (std::int64_t i = 0; i < h.numel(); ++i) p[i] = rng.uniform(-bound, bound);
    return be.upload(h);
}

inline Tensor constantTensor(Backend& be, const Shape& shape, float value) {
    Tensor t = be.empty(shape, DType::F32);
    be.fill(t, value);
    return t;
}

// A zero-filled host tensor: the value a parameter has before initialize() or loading.
inline Tensor hostZeros(const Shape& shape) {
    Tensor h = Tensor::host(shape, DType::F32);
    std::fill_n(h.ptr<float>(), h.numel(), 0.0f);
    return h;
}

// PyTorch's default for Linear and Conv2d: kaiming_uniform_(a=sqrt(5)) gives bound 1/sqrt(fan_in)
// for the weight, and the bias uses the same bound.
inline float kaimingBound(std::int64_t fanIn) { return fanIn > 0 ? 1.0f / std::sqrt(static_cast<float>(fanIn)) : 0.0f; }

[[noreturn]] inline void shapeError(const std::string& layer, const std::string& expected, const Shape& got) {
    throw ConfigError(layer + " expects " + expected + ", got shape " + shapeToString(got));
}

// The cached forward input of a layer, checked before backward uses it.
inline void requireCache(const Tensor& t, const std::string& layer) {
    if (!t.defined())
        throw BackendError(layer + ": backward called without a training forward (no cached activations)");
}

std::unique_ptr<Layer> makeLinear(const nlohmann::json& c, const std::string& ptr);
std::unique_ptr<Layer> makeQuantizedLinear(const nlohmann::json& c, const std::string& ptr);
std::unique_ptr<Layer> makeQuantizedConv2d(const nlohmann::json& c, const std::string& ptr);
std::unique_ptr<Layer> makeConv2d(const nlohmann::json& c, const std::string& ptr);
std::unique_ptr<Layer> makeMaxPool2d(const nlohmann::json& c, const std::string& ptr);
std::unique_ptr<Layer> makeRelu(const nlohmann::json& c, const std::string& ptr);
std::unique_ptr<Layer> makeGelu(const nlohmann::json& c, const std::string& ptr);
std::unique_ptr<Layer> makeDropout(const nlohmann::json& c, const std::string& ptr);
std::unique_ptr<Layer> makeFlatten(const nlohmann::json& c, const std::string& ptr);
std::unique_ptr<Layer> makeLayerNorm(const nlohmann::json& c, const std::string& ptr);
std::unique_ptr<Layer> makeBatchNorm2d(const nlohmann::json& c, const std::string& ptr);
std::unique_ptr<Layer> makeEmbedding(const nlohmann::json& c, const std::string& ptr);
std::unique_ptr<Layer> makeResidual(const nlohmann::json& c, const std::string& ptr);
std::unique_ptr<Layer> makeSequential(const nlohmann::json& c, const std::string& ptr);
// layers_transformer.cpp
std::unique_ptr<Layer> makeAttention(const nlohmann::json& c, const std::string& ptr);
std::unique_ptr<Layer> makePositionEmbedding(const nlohmann::json& c, const std::string& ptr);
std::unique_ptr<Layer> makeTokenTypeEmbedding(const nlohmann::json& c, const std::string& ptr);
std::unique_ptr<Layer> makeMeanPool(const nlohmann::json& c, const std::string& ptr);
std::unique_ptr<Layer> makeL2Normalize(const nlohmann::json& c, const std::string& ptr);
std::unique_ptr<Layer> makeTiedLinear(const nlohmann::json& c, const std::string& ptr);

} // namespace lathe::nnimpl

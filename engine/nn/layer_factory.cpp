// makeLayer: the architecture JSON "type" field picks the layer implementation (blocks call it again
// for their sub-layers).
#include "engine/nn/config_fields.h"
#include "engine/nn/layers_common.h"

#include <atomic>
#include <map>

namespace lathe {

std::uint64_t nextParameterUid() {
    static std::atomic<std::uint64_t> next{1};
    return next.fetch_add(1, std::memory_order_relaxed);
}

std::unique_ptr<Layer> makeLayer(const nlohmann::json& config) { return makeLayer(config, ""); }

std::unique_ptr<Layer> makeLayer(const nlohmann::json& config, const std::string& pointer) {
    using Factory = std::unique_ptr<Layer> (*)(const nlohmann::json&, const std::string&);
    static const std::map<std::string, Factory> kFactories = {
        {"linear", nnimpl::makeLinear},   {"conv2d", nnimpl::makeConv2d},   {"maxpool2d", nnimpl::makeMaxPool2d},
        {"relu", nnimpl::makeRelu},       {"gelu", nnimpl::makeGelu},       {"dropout", nnimpl::makeDropout},
        {"flatten", nnimpl::makeFlatten}, {"layernorm", nnimpl::makeLayerNorm}, {"batchnorm2d", nnimpl::makeBatchNorm2d},
        {"embedding", nnimpl::makeEmbedding}, {"qlinear", nnimpl::makeQuantizedLinear},
        {"qconv2d", nnimpl::makeQuantizedConv2d},
        {"residual", nnimpl::makeResidual}, {"sequential", nnimpl::makeSequential},
        // transformers
        {"attention", nnimpl::makeAttention}, {"position_embedding", nnimpl::makePositionEmbedding},
        {"token_type_embedding", nnimpl::makeTokenTypeEmbedding}, {"mean_pool", nnimpl::makeMeanPool},
        {"l2_normalize", nnimpl::makeL2Normalize}, {"tied_linear", nnimpl::makeTiedLinear},
    };
    nnconfig::requireObject(config, pointer);
    std::string known;
    for (const auto& [name, f] : kFactories) known += (known.empty() ? "" : ", ") + name;
    auto it = config.find("type");
    if (it == config.end()) nnconfig::fail(pointer + "/type", "missing (known layer types: " + known + ")");
    if (!it->is_string()) nnconfig::fail(pointer + "/type", "expected a string, got " + nnconfig::shortDump(*it));
    auto f = kFactories.find(it->get<std::string>());
    if (f == kFactories.end())
        nnconfig::fail(pointer + "/type", "unknown layer type " + it->dump() + " (known: " + known + ")");
    return f->second(config, pointer);
}

} // namespace lathe

// The architecture entries of transformer blocks (transformer.h).
#include "engine/nn/transformer.h"

namespace lathe {

namespace {
nlohmann::json linear(std::int64_t in, std::int64_t out) { return {{"type", "linear"}, {"in", in}, {"out", out}}; }
nlohmann::json layerNorm(const TransformerBlockSpec& s) {
    nlohmann::json j = {{"type", "layernorm"}, {"dim", s.dim}};
    if (s.eps != 1e-5) j["eps"] = s.eps;
    return j;
}
nlohmann::json attentionCore(std::int64_t heads, bool causal) {
    nlohmann::json j = {{"type", "attention"}, {"heads", heads}};
    if (causal) j["causal"] = true;
    return j;
}
} // namespace

nlohmann::json multiHeadAttentionLayers(std::int64_t dim, std::int64_t heads, bool causal) {
    return nlohmann::json::array({linear(dim, 3 * dim), attentionCore(heads, causal), linear(dim, dim)});
}

nlohmann::json transformerBlock(const TransformerBlockSpec& s) {
    nlohmann::json attn = multiHeadAttentionLayers(s.dim, s.heads, s.causal);
    nlohmann::json mlp = nlohmann::json::array({linear(s.dim, s.mlp), {{"type", "gelu"}}, linear(s.mlp, s.dim)});
    nlohmann::json layers = nlohmann::json::array();
    if (s.norm == LayerNormPlacement::Pre) {
        attn.insert(attn.begin(), layerNorm(s));
        mlp.insert(mlp.begin(), layerNorm(s));
        layers.push_back({{"type", "residual"}, {"layers", attn}});
        layers.push_back({{"type", "residual"}, {"layers", mlp}});
    } else {
        layers.push_back({{"type", "residual"}, {"layers", attn}});
        layers.push_back(layerNorm(s));
        layers.push_back({{"type", "residual"}, {"layers", mlp}});
        layers.push_back(layerNorm(s));
    }
    return {{"type", "sequential"}, {"layers", layers}};
}

} // namespace lathe

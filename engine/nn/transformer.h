// Architecture entries of transformer building blocks, composed from the engine's layers so that every Linear
// inside stays an ordinary `linear` (quantization, pruning and low-rank strategies reach them by path):
//   multi-head attention = sequential[linear D -> 3D (fused QKV), attention, linear D -> D (output projection)]
//   pre-LN block  = sequential[residual[layernorm, attention...], residual[layernorm, linear, gelu, linear]]
//   post-LN block = sequential[residual[attention...], layernorm, residual[linear, gelu, linear], layernorm]
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>

namespace lathe {

enum class LayerNormPlacement : std::uint8_t {
    Pre,  // GPT-2: normalise each residual branch's input; the stream itself stays unnormalised
    Post, // BERT: normalise after adding each branch to the stream
};

struct TransformerBlockSpec {
    std::int64_t dim = 64;
    std::int64_t heads = 4;
    std::int64_t mlp = 256; // hidden width of the feed-forward part
    bool causal = false;
    LayerNormPlacement norm = LayerNormPlacement::Pre;
    double eps = 1e-5; // LayerNorm's (BERT: 1e-12)
};

// sequential[linear(dim, 3 dim), attention{heads, causal}, linear(dim, dim)]
nlohmann::json multiHeadAttentionLayers(std::int64_t dim, std::int64_t heads, bool causal);
nlohmann::json transformerBlock(const TransformerBlockSpec& spec);

} // namespace lathe

// Small causal and bidirectional byte models and random token data for the head-pruning tests (Qt-free, shared by
// the CPU suite and the CUDA one).
#pragma once

#include "engine/core/rng.h"
#include "engine/data/dataset.h"
#include "engine/nn/transformer.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace lathe::test {

// D 32, 4 heads of 8, context t. blocks: embeddings, two pre-LN transformer blocks (attention at
// layers.2.layers.0.layers.2 and layers.3.layers.0.layers.2), final norm and a tied head. Flat: embeddings, then
// linear D -> 3D, attention (layers.3), linear D -> D, layernorm, tied head, so the attention's input is the
// output of the first three layers. padId >= 0 makes trailing ids of that value padding.
inline nlohmann::json headTestGpt(bool blocks, bool causal, std::int64_t t = 16, std::int64_t padId = -1) {
    const std::int64_t d = 32;
    nlohmann::json layers = nlohmann::json::array(
        {{{"type", "embedding"}, {"num", 256}, {"dim", d}}, {{"type", "position_embedding"}, {"num", t}, {"dim", d}}});
    if (blocks) {
        TransformerBlockSpec b;
        b.dim = d;
        b.heads = 4;
        b.mlp = 64;
        b.causal = causal;
        layers.push_back(transformerBlock(b));
        layers.push_back(transformerBlock(b));
    } else {
        for (const auto& l : multiHeadAttentionLayers(d, 4, causal)) layers.push_back(l);
    }
    layers.push_back({{"type", "layernorm"}, {"dim", d}});
    layers.push_back({{"type", "tied_linear"}, {"in", d}, {"out", 256}, {"weight", "layers.0.weight"}});
    nlohmann::json input = {{"shape", {t}}, {"dtype", "i32"}};
    if (padId >= 0) input["pad_id"] = padId;
    return {{"name", blocks ? "gpt-heads-test" : "gpt-heads-flat"},
            {"input", input},
            {"classes", 256},
            {"output", {t, 256}},
            {"layers", layers}};
}

// n windows of t random byte ids in [1, 255] with random next-byte labels. With pad, each window's tail after a
// random length in [t / 2, t] is id 0.
inline Dataset headTestTokens(std::int64_t n, std::int64_t t, std::uint64_t seed, bool pad = false) {
    Dataset d;
    d.name = "random-bytes/" + std::to_string(seed);
    d.sampleShape = {t};
    d.numClasses = 256;
    d.labelsPerSample = t;
    Rng rng(seed);
    for (std::int64_t i = 0; i < n; ++i) {
        const std::int64_t len = pad ? t / 2 + static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(t / 2 + 1))) : t;
        for (std::int64_t j = 0; j < t; ++j) {
            d.pixels.push_back(j < len ? static_cast<std::uint8_t>(1 + rng.below(255)) : std::uint8_t{0});
            d.labels.push_back(static_cast<std::int32_t>(rng.below(256)));
        }
    }
    return d;
}

} // namespace lathe::test

// BERT-family checkpoints as Hugging Face saves them: config.json beside model.safetensors with the
// BertModel tensor names (embeddings.*, encoder.layer.<i>.*, optionally under "bert."). Every tensor the
// encoder needs is checked against the shapes config.json implies before anything is built.
#pragma once

#include "engine/core/shape.h"
#include "engine/io/safetensors.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace lathe {

struct BertConfig {
    std::string path;            // config.json, for messages
    std::int64_t vocabSize = 0;
    std::int64_t hidden = 0;
    std::int64_t layers = 0;
    std::int64_t heads = 0;
    std::int64_t intermediate = 0;
    std::int64_t maxPositions = 0;
    std::int64_t typeVocabSize = 0;
    double layerNormEps = 1e-12;
    std::int64_t padTokenId = 0;
};

// Reads config.json; DataError "<path>: /<field>: expected ..." for a missing or invalid field, an activation
// other than exact GELU, a hidden size the heads do not divide, a position embedding other than absolute.
BertConfig readBertConfig(const std::string& path);

// A tensor of the checkpoint the encoder needs, and the shape the config says it has.
struct BertTensorSpec {
    std::string name; // HF name without the optional "bert." prefix: "encoder.layer.0.attention.self.query.weight"
    Shape shape;
};
std::vector<BertTensorSpec> bertTensorSpecs(const BertConfig& c);

struct BertCheckpoint {
    BertConfig config;
    SafetensorsFile file;
    std::string safetensorsPath;
    std::string prefix; // "" or "bert."
    // The F32 tensor `name` (without prefix); checked by readBertCheckpoint.
    const Tensor& tensor(const std::string& name) const;
};

// model.safetensors and the config.json in the same folder. DataError naming the file and the tensor for a
// missing tensor, a shape that disagrees with config.json (and which config fields imply it), or a dtype other
// than f32. Extra tensors (pooler, position_ids) are ignored.
BertCheckpoint readBertCheckpoint(const std::string& safetensorsPath);

} // namespace lathe

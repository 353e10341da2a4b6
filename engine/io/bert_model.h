// BERT-family encoders from Hugging Face checkpoints (config.json + model.safetensors with BertModel names) as
// Lathe models of ordinary layers: token, position and token-type embeddings, LayerNorm, post-LN transformer
// blocks (fused QKV linear, attention, output linear; linear, GELU, linear), mean pooling over the real tokens
// and L2 normalisation: a sentence-transformers encoder (all-MiniLM-L6-v2). Its Linear layers are ordinary
// `linear` layers, so every quantization and pruning strategy reaches them by path.
#pragma once

#include "engine/io/bert_checkpoint.h"
#include "engine/nn/model.h"

#include <nlohmann/json.hpp>

#include <memory>
#include <string>

namespace lathe {

// The architecture name of `{"path": ..., "architecture": "bert"}` in an experiment's model section.
constexpr const char* kBertArchitecture = "bert";

// Input (N, seqLen) token ids, padded on the right with config.padTokenId; output (N, hidden) unit vectors.
nlohmann::json bertArchitecture(const BertConfig& config, const std::string& name, std::int64_t seqLen);

// The sequence length a checkpoint's tokenizer.json (beside the safetensors) pads to: its fixed padding, else
// its truncation length, else min(128, max_position_embeddings) when there is no tokenizer.json.
std::int64_t bertSequenceLength(const std::string& safetensorsPath, const BertConfig& config);

// readBertCheckpoint's checks, then the model on the CPU backend with the checkpoint's weights (q, k and v
// concatenated into the fused projection).
std::unique_ptr<Model> loadBertModel(const std::string& safetensorsPath, const std::string& name);
// The architecture loadBertModel builds, from config.json and tokenizer.json alone (validation).
nlohmann::json bertArchitectureOf(const std::string& safetensorsPath, const std::string& name);
// The model name of a checkpoint given by path: its folder's name ("all-MiniLM-L6-v2").
std::string bertModelName(const std::string& safetensorsPath);

// The Lathe parameter that takes each checkpoint tensor: "layers.4.layers.0.layers.0.weight" for the fused
// QKV of block 0 (three tensors: query, key, value rows in that order).
struct BertParameterMap {
    std::string lathe;
    std::vector<std::string> checkpoint;
};
std::vector<BertParameterMap> bertParameterMap(const BertConfig& config);

} // namespace lathe

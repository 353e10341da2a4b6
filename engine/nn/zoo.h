// The model zoo: architectures known by name (mlp-784-256-128-10, cnn-2conv).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace lathe {

std::vector<std::string> zooNames();
// Throws ConfigError "unknown model \"x\" (known: ...)".
nlohmann::json zooArchitecture(const std::string& name);

} // namespace lathe

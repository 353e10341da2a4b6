// The model zoo: architectures known by name (the baselines mlp-784-256-128-10 and cnn-2conv, cnn-bn (cnn-2conv
// with BatchNorm2d after each convolution), and small students for distillation: mlp-784-64-10, mlp-784-32-10 and
// cnn-dws, a CNN of depthwise-separable convolutions), and the byte-level language models gpt-char-tiny (about 1 M
// parameters) and gpt-char-small (about 10 M), whose context is 128 bytes.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace lathe {

std::vector<std::string> zooNames();
// Throws ConfigError "unknown model \"x\" (known: ...)".
nlohmann::json zooArchitecture(const std::string& name);

} // namespace lathe

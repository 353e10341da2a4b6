// The small experiment the search tests search over: the MLP on Fashion-MNIST subsets (200 evaluated
// samples, a baseline of 500 training samples) with a short measurement, so a trial takes about a second.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace lathe::test {

inline nlohmann::json tinySearchBase(const std::string& name) {
    nlohmann::json doc = nlohmann::json::parse(R"({
        "model": {"zoo": "mlp-784-256-128-10"},
        "dataset": {"name": "fashion-mnist", "split": "test", "limit": 200},
        "device": "cpu",
        "baseline": {"train": {"epochs": 1, "batch_size": 50, "limit": 500}},
        "measure": {"batch_sizes": [16], "warmup": 1, "repeats": 5, "rotate_batches": 1},
        "seed": 7
    })");
    doc["name"] = name;
    return doc;
}

} // namespace lathe::test

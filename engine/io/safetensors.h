// safetensors read/write (https://github.com/huggingface/safetensors format): an 8-byte header
// length, a JSON header of {name: {dtype, shape, data_offsets}} plus __metadata__, then the data.
#pragma once

#include "engine/core/tensor.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace lathe {

struct SafetensorsFile {
    std::vector<std::pair<std::string, Tensor>> tensors; // host tensors, in file order
    std::map<std::string, std::string> metadata;

    const Tensor* find(const std::string& name) const;
};

// Throws DataError "<path>: <problem>" (truncated, header too large, bad JSON, offsets out of range
// or overlapping, unknown dtype, shape/byte-count mismatch).
SafetensorsFile readSafetensors(const std::string& path);
SafetensorsFile parseSafetensors(const std::uint8_t* data, std::size_t size, const std::string& nameForErrors);

// Host tensors only. Written to a temporary file and renamed, so a full disk never leaves half a file.
void writeSafetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata);

} // namespace lathe

// What a batch of token sequences tells its layers beyond the ids themselves: how many tokens of each
// sequence are real (right padding after them), the token types (BERT's segments) and the position of the first
// token (decoding with a KV cache). Attention masks the padded keys with it, mean pooling skips them.
#pragma once

#include "engine/backends/backend.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lathe {

class KvStore; // kv_cache.h

struct SequenceBatch {
    std::int64_t batch = 0, length = 0;  // N, T of the ids
    std::vector<std::int32_t> lengths;  // host (N): valid tokens of each sequence; empty: every position valid
    Tensor lengthsOnDevice;             // I32 (N) on the model's backend, the same values (undefined when empty)
    Tensor tokenTypes;                  // I32 (N, T) on the backend, or undefined: every token of type 0
    std::int64_t positionOffset = 0;    // position of the ids' first token (0 unless decoding with a cache)
    Tensor positionIds;                 // I32 (N * T) on the backend: each token's own position (a serving batch
                                        // of sequences at different lengths); undefined: positionOffset + t

    // Lengths per sequence, each in [0, T]; throws ConfigError naming the bad entry.
    static std::shared_ptr<SequenceBatch> fromLengths(Backend& be, std::int64_t t, std::vector<std::int32_t> lengths);
    // From an attention mask (N, T) of 0/1 as tokenizers produce it (1 = real token). Only right padding is
    // supported (each row is ones then zeros): any other mask throws ConfigError naming the row and `source`.
    static std::shared_ptr<SequenceBatch> fromMask(Backend& be, std::int64_t n, std::int64_t t,
                                                   const std::vector<std::int32_t>& mask,
                                                   const std::string& source = "attention mask");
    // The lengths on the device, or null when every position is valid (what the ops take).
    const Tensor* deviceLengths() const { return lengthsOnDevice.defined() ? &lengthsOnDevice : nullptr; }
};

} // namespace lathe

// Autoregressive generation with a token model (gpt-char: byte ids, logits (N, T, V)): greedy decoding for
// reproducible tests, or sampling with a temperature and top-k; with a preallocated KV cache (each step feeds
// only the new token) or recomputing the whole prefix every step. Per-token latencies come back as a series.
#pragma once

#include "engine/nn/model.h"

#include <cstdint>
#include <string>
#include <vector>

namespace lathe {

struct GenerateOptions {
    std::int64_t maxNewTokens = 100;
    float temperature = 0.0f; // 0: greedy (the first maximum); > 0: sample from softmax(logits / temperature)
    int topK = 0;             // sample among the k most likely tokens only (0: all)
    std::uint64_t seed = 42;
    bool useKvCache = true;
};

struct GenerateResult {
    std::vector<std::int32_t> prompt;  // the prompt as used (after truncation)
    std::vector<std::int32_t> tokens;  // the generated tokens
    std::vector<double> tokenMs;       // wall time of each generated token's step (forward + choice)
    std::vector<std::string> warnings; // prompt truncated, generation stopped at the context
    std::uint64_t kvBytes = 0;         // the cache's bytes (0 without)
};

// The model's context: the positions its input declares (inputShape()[0]).
std::int64_t modelContext(const Model& model);

// Generates up to maxNewTokens after `prompt` on the model's backend (inference: no caches of training). A prompt
// longer than context - 1 keeps its last context - 1 tokens (warning); generation stops when the sequence fills the
// context (warning). An empty prompt or ids outside the vocabulary throw ConfigError.
GenerateResult generate(Model& model, const std::vector<std::int32_t>& prompt, const GenerateOptions& options);

// Byte-level tokenisation of gpt-char: the UTF-8 bytes themselves; decoding repairs a sequence cut inside a
// character (U+FFFD) so the text prints.
std::vector<std::int32_t> bytesToTokens(const std::string& text);
std::string tokensToText(const std::vector<std::int32_t>& tokens);

} // namespace lathe

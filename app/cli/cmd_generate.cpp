// lathe-cli generate: text from a byte-level language model (gpt-char), greedy or sampled, with or without the KV
// cache; the text goes to stdout, warnings (a prompt longer than the context) and timings to stderr.
#include "app/cli/cli.h"

#include "engine/backends/registry.h"
#include "engine/core/errors.h"
#include "engine/io/model_io.h"
#include "engine/nn/generate.h"
#include "engine/io/zoo.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>

namespace lathe::cli {
namespace {

int runGenerate(const std::vector<std::string>& argv) {
    Args args(argv, {"--prompt", "--tokens", "--temperature", "--top-k", "--seed", "--device", "--arch"},
              {"--greedy", "--no-cache", "--json"});
    if (args.positional().size() != 1)
        throw ConfigError("generate needs exactly one model: a .safetensors file or a zoo name (gpt-char-tiny)");
    const std::string modelArg = args.positional()[0];
    const auto prompt = args.value("--prompt");
    if (!prompt || prompt->empty()) throw ConfigError("generate needs --prompt TEXT (not empty)");
    GenerateOptions o;
    o.maxNewTokens = args.integer("--tokens", 100);
    o.temperature = args.flag("--greedy") ? 0.0f : static_cast<float>(args.number("--temperature", 0.8));
    o.topK = static_cast<int>(args.integer("--top-k", 0));
    o.seed = static_cast<std::uint64_t>(args.integer("--seed", 42));
    o.useKvCache = !args.flag("--no-cache");
    if (o.maxNewTokens < 0) throw ConfigError("option --tokens: expected an integer >= 0");
    if (o.temperature < 0) throw ConfigError("option --temperature: expected a number >= 0 (0: greedy)");
    if (o.topK < 0) throw ConfigError("option --top-k: expected an integer >= 0 (0: all tokens)");

    auto backend = backendFor(args.value("--device", "auto"));
    std::unique_ptr<Model> model;
    const bool isFile = std::filesystem::path(modelArg).extension() == ".safetensors";
    if (isFile) {
        model = loadModel(modelArg, args.value("--arch", ""));
        model->to(*backend);
    } else {
        model = Model::fromArchitecture(zooArchitecture(modelArg));
        model->initialize(*backend, o.seed);
        std::fprintf(stderr, "warning: %s has fresh, untrained weights (train it with lathe-cli train --save)\n",
                     modelArg.c_str());
    }
    const GenerateResult r = generate(*model, bytesToTokens(*prompt), o);
    for (const auto& w : r.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    const std::string text = tokensToText(r.prompt) + tokensToText(r.tokens);
    double total = 0;
    for (double ms : r.tokenMs) total += ms;
    std::fprintf(stderr, "%zu tokens in %.1f ms (%s, %s)\n", r.tokens.size(), total,
                 o.useKvCache ? "kv cache" : "no cache", backend->name().c_str());
    if (args.flag("--json")) {
        nlohmann::json out = {{"model", model->name()},       {"prompt", tokensToText(r.prompt)},
                              {"generated", tokensToText(r.tokens)}, {"tokens", r.tokens},
                              {"token_ms", r.tokenMs},        {"kv_cache", o.useKvCache},
                              {"kv_bytes", r.kvBytes},        {"warnings", r.warnings},
                              {"temperature", o.temperature}, {"top_k", o.topK},
                              {"seed", o.seed},               {"device", backend->name()}};
        std::cout << out.dump(2) << "\n";
    } else {
        std::cout << text << "\n";
    }
    return kExitOk;
}

const Registrar kGenerate({"generate",
                           "generate MODEL --prompt TEXT [--tokens N] [--temperature T | --greedy] [--top-k K]\n"
                           "       [--seed S] [--no-cache] [--device cpu|cuda|auto] [--arch arch.json] [--json]",
                           "continue a prompt with a byte-level language model (gpt-char; a .safetensors file or a "
                           "zoo name)",
                           runGenerate});

} // namespace
} // namespace lathe::cli

// The `generate` family: `generate.kv_cache` decodes greedily from a token model (gpt-char) twice, with the
// preallocated KV cache and recomputing the whole prefix, checks that both give the same tokens, and streams each
// token's latency against its position ("cached/token_ms", "uncached/token_ms": flat with the cache, growing
// without) with the summary figures of both.
#include "engine/core/clock.h"
#include "engine/core/errors.h"
#include "engine/measure/stats.h"
#include "engine/nn/generate.h"
#include "engine/strategies/strategy.h"

namespace lathe {
namespace {

struct KvCacheParams {
    std::string prompt = "The ";
    std::int64_t tokens = 96;
};

class KvCacheStrategy final : public Strategy {
public:
    explicit KvCacheStrategy(KvCacheParams p) : m_params(std::move(p)) {}

    void apply(StepContext& ctx) override {
        Model& model = ctx.model();
        const std::int64_t context = modelContext(model); // ConfigError for a model that is not a token model
        GenerateOptions o;
        o.maxNewTokens = m_params.tokens;
        GenerateResult runs[2];
        const char* labels[2] = {"cached", "uncached"};
        for (int k = 0; k < 2; ++k) {
            o.useKvCache = k == 0;
            runs[k] = generate(model, bytesToTokens(m_params.prompt), o);
            const GenerateResult& r = runs[k];
            const auto first = static_cast<std::int64_t>(r.prompt.size());
            double total = 0;
            for (std::size_t i = 0; i < r.tokenMs.size(); ++i) {
                total += r.tokenMs[i];
                // x: the position the token is generated at (the length of the sequence before it)
                ctx.sink().push(makeSample(ctx.runId, std::string(labels[k]) + "/token_ms",
                                           first + static_cast<std::int64_t>(i), steadyClockMs() - ctx.runStartMs,
                                           r.tokenMs[i]));
            }
            // The first step of the cached run is the prompt's prefill: time per output token counts the rest.
            std::vector<double> decode(r.tokenMs.begin() + (r.tokenMs.size() > 1 ? 1 : 0), r.tokenMs.end());
            const std::string key = std::string(labels[k]) + ".";
            if (!decode.empty()) {
                ctx.summary()[key + "tpot_ms_p50"] = percentile(decode, 0.5);
                ctx.summary()[key + "tpot_ms_p99"] = percentile(decode, 0.99);
            }
            if (total > 0) ctx.summary()[key + "tokens_per_s"] = 1000.0 * static_cast<double>(r.tokens.size()) / total;
            for (const auto& w : r.warnings) ctx.warn("generate.kv_cache: " + w);
        }
        ctx.summary()["kv_bytes_peak"] = static_cast<double>(runs[0].kvBytes);
        const bool same = runs[0].tokens == runs[1].tokens;
        ctx.notes()["kv_cache"] = std::string(same ? "cached and uncached greedy decoding gave the same " : "cached and "
                                              "uncached greedy decoding DIFFER over ") +
                                  std::to_string(runs[0].tokens.size()) + " tokens (context " +
                                  std::to_string(context) + "): \"" + tokensToText(runs[0].tokens) + "\"";
        if (!same) ctx.warn("generate.kv_cache: cached and uncached greedy tokens differ");
        ctx.info("generate.kv_cache: \"" + tokensToText(runs[0].prompt) + tokensToText(runs[0].tokens) + "\"");
    }

private:
    KvCacheParams m_params;
};

} // namespace
} // namespace lathe

LATHE_STRATEGY_FAMILY(generate) {
    using namespace lathe;
    SchemaBuilder<KvCacheParams> b("generate.kv_cache", "generate",
                                   "greedy decoding with and without the KV cache: same tokens, latency per position");
    b.text("prompt", &KvCacheParams::prompt, "The ", "the text decoding starts from (bytes are the tokens)");
    b.integer("tokens", &KvCacheParams::tokens, 96,
              {.min = 1, .max = 100000, .help = "tokens to generate (generation stops when the context is full)"});
    registry.add(b, [](const KvCacheParams& p) { return std::make_unique<KvCacheStrategy>(p); });
}

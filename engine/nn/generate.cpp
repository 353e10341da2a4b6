// Generation: prefill and decode steps with a KV cache, or the whole prefix recomputed each step; greedy choice
// or temperature / top-k sampling from a seeded generator.
#include "engine/nn/generate.h"

#include "engine/core/clock.h"
#include "engine/core/errors.h"
#include "engine/core/rng.h"
#include "engine/data/text_corpus.h"
#include "engine/nn/kv_cache.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace lathe {
namespace {

std::int32_t choose(const std::vector<float>& logits, const GenerateOptions& o, Rng& rng) {
    if (o.temperature <= 0.0f)
        return static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    std::vector<std::int32_t> order(logits.size());
    std::iota(order.begin(), order.end(), 0);
    std::size_t k = order.size();
    if (o.topK > 0 && static_cast<std::size_t>(o.topK) < k) {
        k = static_cast<std::size_t>(o.topK);
        std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                          [&](std::int32_t a, std::int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
    }
    double m = -INFINITY;
    for (std::size_t i = 0; i < k; ++i) m = std::max(m, static_cast<double>(logits[order[i]]));
    std::vector<double> p(k);
    double sum = 0;
    for (std::size_t i = 0; i < k; ++i) sum += p[i] = std::exp((logits[order[i]] - m) / o.temperature);
    double u = rng.uniform() * sum;
    for (std::size_t i = 0; i < k; ++i) {
        u -= p[i];
        if (u < 0) return order[i];
    }
    return order[k - 1];
}

// The last row of logits (N = 1, T, V).
std::vector<float> lastRow(Backend& be, const Tensor& logits) {
    const std::int64_t t = logits.dim(1), v = logits.dim(2);
    return be.downloadF32(logits.view({t, v}).slice0(t - 1, t));
}

} // namespace

std::int64_t modelContext(const Model& model) {
    if (model.inputDType() != DType::I32 || model.inputShape().size() != 1)
        throw ConfigError("model " + model.name() + " is not a token model (its input is " +
                          shapeToString(model.inputShape()) + " " + dtypeName(model.inputDType()) + ")");
    return model.inputShape()[0];
}

GenerateResult generate(Model& model, const std::vector<std::int32_t>& prompt, const GenerateOptions& o) {
    const std::int64_t context = modelContext(model);
    if (model.outputShape() != Shape{context, model.numClasses()})
        throw ConfigError("model " + model.name() + " does not predict the next token at every position (its output is " +
                          shapeToString(model.outputShape()) + ")");
    if (prompt.empty()) throw ConfigError("generate: the prompt is empty");
    for (const std::int32_t id : prompt)
        if (id < 0 || id >= model.numClasses())
            throw ConfigError("generate: token " + std::to_string(id) + " is outside the vocabulary [0, " +
                              std::to_string(model.numClasses()) + ")");
    if (o.maxNewTokens < 0) throw ConfigError("generate: the number of new tokens must be >= 0");
    Backend* bePtr = model.backend();
    if (!bePtr) throw BackendError("model " + model.name() + " is not placed on a backend");
    Backend& be = *bePtr;

    GenerateResult r;
    r.prompt = prompt;
    if (static_cast<std::int64_t>(prompt.size()) > context - 1) {
        r.prompt.assign(prompt.end() - (context - 1), prompt.end());
        r.warnings.push_back("the prompt of " + std::to_string(prompt.size()) + " tokens is longer than the context (" +
                             std::to_string(context) + "): truncated to its last " + std::to_string(context - 1));
    }
    std::int64_t budget = o.maxNewTokens;
    const std::int64_t room = context - static_cast<std::int64_t>(r.prompt.size());
    if (budget > room) {
        r.warnings.push_back("generation stops at the context of " + std::to_string(context) + " tokens: " +
                             std::to_string(room) + " new tokens instead of " + std::to_string(budget));
        budget = room;
    }
    model.releaseCache();
    Rng rng(o.seed);
    std::vector<std::int32_t> seq = r.prompt;
    std::unique_ptr<KvCache> cache;
    if (o.useKvCache) cache = std::make_unique<KvCache>(be, 1, context);
    for (std::int64_t step = 0; step < budget; ++step) {
        const double t0 = steadyClockMs();
        ForwardContext ctx;
        Tensor logits;
        if (cache) {
            // The prefill feeds the whole prompt; each later step feeds only the token chosen last.
            const std::int64_t from = cache->length();
            const std::vector<std::int32_t> feed(seq.begin() + from, seq.end());
            auto s = std::make_shared<SequenceBatch>();
            s->batch = 1;
            s->length = static_cast<std::int64_t>(feed.size());
            s->positionOffset = from;
            ctx.sequence = s;
            ctx.kvCache = cache.get();
            logits = model.forward(be.uploadI32(feed, {1, s->length}), ctx);
            cache->advance(s->length);
        } else {
            logits = model.forward(be.uploadI32(seq, {1, static_cast<std::int64_t>(seq.size())}), ctx);
        }
        const std::int32_t next = choose(lastRow(be, logits), o, rng);
        r.tokenMs.push_back(steadyClockMs() - t0);
        r.tokens.push_back(next);
        seq.push_back(next);
    }
    if (cache) r.kvBytes = cache->bytes();
    return r;
}

std::vector<std::int32_t> bytesToTokens(const std::string& text) {
    std::vector<std::int32_t> out(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) out[i] = static_cast<unsigned char>(text[i]);
    return out;
}

std::string tokensToText(const std::vector<std::int32_t>& tokens) {
    std::string s;
    s.reserve(tokens.size());
    for (const std::int32_t t : tokens) s += static_cast<char>(static_cast<unsigned char>(t & 0xff));
    std::int64_t replaced = 0, first = 0;
    return sanitizeUtf8(s, replaced, first);
}

} // namespace lathe

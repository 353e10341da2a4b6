// serve.generate: a stream of generation requests (prompt and output lengths drawn or from a trace, prompts cut
// from the evaluated text split) served by the run's token model with a static or continuous batching policy and
// a paged (or contiguous, worst-case reserved) KV pool of a fixed budget, optionally prefix-cached and INT8 / F16.
// Reports TTFT, TPOT and inter-token latency percentiles, tokens/s, goodput under TTFT/TPOT SLOs, KV memory,
// fragmentation and concurrency, and streams the running batch, KV blocks and queue depth per iteration.
#include "engine/core/clock.h"
#include "engine/measure/stats.h"
#include "engine/nn/generate.h"
#include "engine/strategies/serve/arrivals.h"
#include "engine/strategies/serve/generate_executor.h"
#include "engine/strategies/registry.h"
#include "engine/strategies/serve/serve_generate.h"
#include "engine/strategies/serve/stream_fields.h"
#include "engine/strategies/strategy.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>

namespace lathe::serve {
namespace {

enum class OutputDist { Uniform, Exponential };
enum class KvDType { F32, F16, Int8, Fp8 };

struct GenerateParams {
    ArrivalKind arrival = ArrivalKind::Poisson;
    double ratePerS = 20;
    double cv = 2;
    double onMs = 50, offMs = 50;
    std::int64_t requests = 32;
    double durationS = 0;
    std::string trace;
    std::int64_t promptMin = 8, promptMax = 32;
    std::int64_t outputMin = 4, outputMax = 64;
    OutputDist outputDist = OutputDist::Uniform;
    double outputMean = 16;
    std::int64_t sharedPrefix = 0;
    GenPolicy policy = GenPolicy::Continuous;
    int maxBatch = 16;
    ChunkMode chunk = ChunkMode::None;
    std::int64_t chunkTokens = 32;
    std::int64_t queueCap = 10000;
    bool kvPaged = true;
    std::int64_t blockSize = 16;
    KvDType kvDtype = KvDType::F32;
    bool prefixCache = false;
    double budgetMib = 0;
    double sloTtftMs = 500, sloTpotMs = 50;
    std::int64_t warmupRequests = 0;
    std::int64_t evalWindows = 0;
};

DType storageOf(KvDType k) {
    switch (k) {
    case KvDType::F16: return DType::F16;
    case KvDType::Int8: return DType::Q8_0;
    case KvDType::Fp8: return DType::F8E4M3;
    case KvDType::F32: break;
    }
    return DType::F32;
}
const char* kvName(KvDType k) {
    switch (k) {
    case KvDType::F16: return "f16";
    case KvDType::Int8: return "int8";
    case KvDType::Fp8: return "fp8";
    case KvDType::F32: break;
    }
    return "f32";
}

// Widths of the fused QKV rows of every attention layer of an architecture: the `out` of the linear before it.
void attentionWidths(const nlohmann::json& j, std::vector<std::int64_t>& out) {
    if (j.is_object()) {
        if (auto l = j.find("layers"); l != j.end() && l->is_array()) {
            for (std::size_t i = 0; i < l->size(); ++i) {
                const auto& c = (*l)[i];
                if (c.is_object() && c.value("type", "") == "attention" && i > 0 && (*l)[i - 1].contains("out"))
                    out.push_back((*l)[i - 1]["out"].get<std::int64_t>());
                attentionWidths(c, out);
            }
        }
    } else if (j.is_array()) {
        for (const auto& c : j) attentionWidths(c, out);
    }
}

std::uint64_t blockBytes(const std::vector<std::int64_t>& widths, std::int64_t blockSize, DType dtype) {
    std::uint64_t b = 0;
    for (auto w : widths) b += tensorBytes({blockSize, w}, dtype);
    return b;
}

std::int64_t budgetBlocks(const GenerateParams& p, std::uint64_t perBlock, std::int64_t context) {
    if (p.budgetMib <= 0) return std::max<std::int64_t>(1, p.maxBatch) * blocksFor(context, p.blockSize);
    return static_cast<std::int64_t>(std::floor(p.budgetMib * 1024.0 * 1024.0 / static_cast<double>(perBlock)));
}

// The ids (and labels, when asked) of the first n windows of a token split, as the trainer reads them.
std::vector<std::int32_t> windowIds(const Dataset& data, std::int64_t n, std::vector<std::int32_t>* labels) {
    std::vector<std::int64_t> idx(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) idx[static_cast<std::size_t>(i)] = i;
    std::vector<std::int32_t> ids(static_cast<std::size_t>(n * data.sampleSize()));
    if (labels) labels->resize(static_cast<std::size_t>(n * data.labelsPerSample));
    makeTokenBatch(data, idx, ids.data(), labels ? labels->data() : nullptr);
    return ids;
}

// The requests of the stream: arrival times from the shared arrival processes, lengths drawn (or the trace's),
// prompts cut from the evaluated split's windows after an optional shared system prompt.
std::vector<GenRequest> makeRequests(const GenerateParams& p, const StepContext& ctx, const Dataset& data,
                                     std::int64_t context) {
    const StreamSettings s = openStreamOf(p, ctx, p.ratePerS);
    const std::vector<Arrival> arrivals = openLoopArrivals(s);
    const std::int64_t t = data.sampleSize();
    if (data.size() < 1 || data.sampleShape.size() != 1)
        throw ConfigError("serve.generate: the evaluated split holds no token windows");
    const std::vector<std::int32_t> ids = windowIds(data, std::min<std::int64_t>(data.size(), 1024), nullptr);
    std::mt19937_64 rng(s.seed + 7);
    std::vector<GenRequest> out;
    for (std::size_t i = 0; i < arrivals.size(); ++i) {
        const Arrival& a = arrivals[i];
        GenRequest r;
        r.id = static_cast<std::int64_t>(i);
        r.arrivalMs = a.tMs;
        std::int64_t promptLen = a.promptTokens, outLen = a.outputTokens;
        if (promptLen == 0) promptLen = std::uniform_int_distribution<std::int64_t>(p.promptMin, p.promptMax)(rng);
        if (outLen == 0) {
            if (p.outputDist == OutputDist::Uniform) {
                outLen = std::uniform_int_distribution<std::int64_t>(p.outputMin, p.outputMax)(rng);
            } else {
                const double d = std::exponential_distribution<double>(1.0 / p.outputMean)(rng);
                outLen = std::clamp<std::int64_t>(static_cast<std::int64_t>(std::llround(d)), p.outputMin, p.outputMax);
            }
        }
        const std::int64_t total = p.sharedPrefix + promptLen;
        if (total + outLen > context)
            throw ConfigError("serve.generate: request " + std::to_string(i) + ": a prompt of " + std::to_string(total) +
                              " tokens and " + std::to_string(outLen) + " output tokens pass the context of " +
                              std::to_string(context) + (a.promptTokens ? " (from the trace)" : ""));
        const std::int32_t* shared = ids.data(); // window 0 starts every prompt when a prefix is shared
        r.prompt.assign(shared, shared + std::min(p.sharedPrefix, t));
        const std::int64_t w = (static_cast<std::int64_t>(i) + 1) % (static_cast<std::int64_t>(ids.size()) / t);
        for (std::int64_t k = 0; k < promptLen; ++k) r.prompt.push_back(ids[static_cast<std::size_t>(w * t + k % t)]);
        r.outputTokens = outLen;
        out.push_back(std::move(r));
    }
    return out;
}

std::map<std::string, double> summarize(const GenLog& log, const GenerateParams& p) {
    std::map<std::string, double> out;
    std::vector<double> ttft, tpot, itl;
    std::int64_t tokens = 0, met = 0, dropped = 0, hit = 0, lookup = 0;
    double first = 1e300, last = 0;
    for (const GenRequestRecord& r : log.requests) {
        if (r.dropped) ++dropped;
        if (r.id < p.warmupRequests || r.dropped || r.finishMs < 0) continue;
        first = std::min(first, r.arrivalMs);
        last = std::max(last, r.finishMs);
        const double tt = r.firstTokenMs - r.arrivalMs;
        ttft.push_back(tt);
        const auto n = static_cast<double>(r.tokenMs.size());
        const double tp = n > 1 ? (r.finishMs - r.firstTokenMs) / (n - 1) : 0.0;
        if (n > 1) tpot.push_back(tp);
        for (std::size_t k = 1; k < r.tokenMs.size(); ++k) itl.push_back(r.tokenMs[k] - r.tokenMs[k - 1]);
        tokens += static_cast<std::int64_t>(r.tokenMs.size());
        met += tt <= p.sloTtftMs && tp <= p.sloTpotMs ? 1 : 0;
        hit += r.prefixHitTokens;
        lookup += r.prefixLookupTokens;
    }
    const double windowS = last > first ? (last - first) / 1000.0 : 0.0;
    if (!ttft.empty()) {
        out["ttft_ms_p50"] = percentile(ttft, 0.50);
        out["ttft_ms_p99"] = percentile(ttft, 0.99);
    }
    if (!tpot.empty()) {
        out["tpot_ms_p50"] = percentile(tpot, 0.50);
        out["tpot_ms_p99"] = percentile(tpot, 0.99);
    }
    if (!itl.empty()) {
        out["itl_ms_p50"] = percentile(itl, 0.50);
        out["itl_ms_p95"] = percentile(itl, 0.95);
        out["itl_ms_p99"] = percentile(itl, 0.99);
    }
    out["tokens_per_s"] = windowS > 0 ? static_cast<double>(tokens) / windowS : 0.0;
    out["goodput_per_s"] = windowS > 0 ? static_cast<double>(met) / windowS : 0.0;
    out["slo_attainment"] = ttft.empty() ? 0.0 : static_cast<double>(met) / static_cast<double>(ttft.size() + dropped);
    out["served"] = static_cast<double>(ttft.size());
    out["dropped"] = static_cast<double>(dropped);
    out["max_concurrent_seqs"] = log.maxConcurrent;
    out["kv_fragmentation"] = log.fragmentationMean;
    out["preemptions"] = static_cast<double>(log.preemptions);
    if (p.prefixCache) out["prefix_hit_rate"] = lookup > 0 ? static_cast<double>(hit) / static_cast<double>(lookup) : 0.0;
    // A fingerprint of every answer (ids in order): runs whose tokens are identical show the same number.
    std::uint64_t h = 1469598103934665603ull;
    for (const GenRequestRecord& r : log.requests)
        for (const std::int32_t t : r.output) h = (h ^ static_cast<std::uint64_t>(t + 1)) * 1099511628211ull;
    out["outputs_hash"] = static_cast<double>(h % 2147483647ull);
    double batch = 0;
    for (const GenIteration& it : log.iterations) batch += static_cast<double>(it.decode.size());
    out["serve_batch_mean"] = log.iterations.empty() ? 0.0 : batch / static_cast<double>(log.iterations.size());
    return out;
}

// The sentence-aware or fixed chunk a window's prefill takes from `from` (the evaluation's counterpart of the
// scheduler's chunking): the rest without chunking.
std::int64_t evalChunk(const GenerateParams& p, const std::vector<std::int32_t>& w, std::int64_t from) {
    const auto rest = static_cast<std::int64_t>(w.size()) - from;
    if (p.chunk == ChunkMode::None || rest <= p.chunkTokens) return rest;
    std::int64_t count = p.chunkTokens;
    if (p.chunk == ChunkMode::Sentence)
        for (std::int64_t k = count; k >= std::max<std::int64_t>(1, count / 4); --k) {
            const std::int32_t c = w[static_cast<std::size_t>(from + k - 1)];
            if (c == '.' || c == '!' || c == '?' || c == '\n') return k;
        }
    return count;
}

class ServeGenerate final : public Strategy {
public:
    explicit ServeGenerate(GenerateParams p) : m_params(std::move(p)) {}

    void apply(StepContext& ctx) override {
        const GenerateParams& p = m_params;
        Model& model = ctx.model();
        const std::int64_t context = modelContext(model);
        if (context % p.blockSize != 0)
            throw ConfigError("serve.generate: kv_block_size " + std::to_string(p.blockSize) +
                              " does not divide the context of " + std::to_string(context));
        model.releaseCache();
        // A one-block probe store learns the attention layers' row widths, hence a block's bytes.
        std::uint64_t perBlock = 0;
        {
            PagedKvStore probe(ctx.backend(), 1, p.blockSize, storageOf(p.kvDtype));
            ModelGenExecutor exec(model, probe);
            const std::vector<std::int32_t> one{' '}, table{0};
            std::vector<std::int32_t> next;
            exec.run({{0, &one, &table, 0, 1, true}}, {}, next);
            perBlock = probe.bytesPerBlock();
        }
        const std::int64_t blocks = budgetBlocks(p, perBlock, context);
        GenSchedulerSettings s;
        s.policy = p.policy;
        s.maxRunning = p.maxBatch;
        s.chunk = p.chunk;
        s.chunkTokens = p.chunkTokens;
        s.queueCap = static_cast<std::size_t>(p.queueCap);
        s.blocks = blocks;
        s.blockSize = p.blockSize;
        s.paged = p.kvPaged;
        s.context = context;
        s.prefixCache = p.prefixCache;
        if (blocksFor(context, p.blockSize) > blocks)
            throw ConfigError("serve.generate: kv_budget_mib " + fixed(p.budgetMib, 3) + " holds " + std::to_string(blocks) +
                              " blocks; one sequence of the context needs " + std::to_string(blocksFor(context, p.blockSize)));

        const std::vector<GenRequest> requests = makeRequests(p, ctx, ctx.evalData(), context);
        PagedKvStore store(ctx.backend(), blocks, p.blockSize, storageOf(p.kvDtype));
        ModelGenExecutor exec(model, store);
        const double offset = steadyClockMs() - ctx.runStartMs;
        std::int64_t step = 0;
        GenObserver obs;
        obs.iteration = [&](const GenIteration& it) {
            const double t = offset + it.endMs;
            ctx.sink().push(makeSample(ctx.runId, "generate/running_batch", step, t, it.running));
            ctx.sink().push(makeSample(ctx.runId, "generate/kv_blocks_used", step, t, static_cast<double>(it.blocksUsed)));
            ctx.sink().push(makeSample(ctx.runId, "generate/queue_depth", step, t, static_cast<double>(it.queued)));
            ++step;
            if (ctx.progress && step % 16 == 0) ctx.progress(0.0, "iteration " + std::to_string(step));
        };
        WallGenClock clock;
        const GenLog log = runGeneration(requests, s, exec, clock, obs, ctx.cancel);

        auto summary = summarize(log, p);
        summary["kv_bytes_peak"] = static_cast<double>(log.peakBlocks) * static_cast<double>(perBlock);
        summary["kv_bytes_budget"] = static_cast<double>(blocks) * static_cast<double>(perBlock);
        summary["kv_blocks_peak"] = static_cast<double>(log.peakBlocks);
        for (const auto& [k, v] : summary) ctx.summary()[k] = v;
        if (log.cancelled) {
            ctx.notes()["serve.generate"] += "cancelled after " + fixed(summary["served"], 0) + " of " +
                                             std::to_string(requests.size()) + " requests were answered. ";
            throw CancelledError();
        }
        if (p.evalWindows > 0) evaluatePerplexity(ctx, perBlock);

        std::ostringstream line;
        line << "serve.generate " << (p.policy == GenPolicy::Static ? "static" : "continuous") << " ("
             << (p.kvPaged ? "paged" : "contiguous") << " kv " << kvName(p.kvDtype) << ", " << blocks << " blocks of "
             << p.blockSize << "): " << fixed(summary["served"], 0) << " served, " << fixed(summary["tokens_per_s"], 1)
             << " tokens/s, ttft p50 " << fixed(summary["ttft_ms_p50"], 1) << " ms p99 " << fixed(summary["ttft_ms_p99"], 1)
             << " ms, tpot p50 " << fixed(summary["tpot_ms_p50"], 2) << " ms, " << log.maxConcurrent
             << " sequences at most, " << log.preemptions << " preemptions";
        if (p.prefixCache) line << ", prefix hit rate " << fixed(summary["prefix_hit_rate"], 3);
        ctx.info(line.str());
        ctx.notes()["serve.generate"] += line.str() + ". ";
    }

private:
    // Perplexity of the evaluated split's first windows with every key and value read back from a pool of the
    // step's dtype (and chunking), beside the same with F32 blocks: the cost of the KV format alone.
    void evaluatePerplexity(StepContext& ctx, std::uint64_t) {
        const GenerateParams& p = m_params;
        const Dataset& data = ctx.evalData();
        const std::int64_t t = data.sampleSize();
        const std::int64_t n = std::min(p.evalWindows, data.size());
        if (data.labelsPerSample != t) throw ConfigError("serve.generate: eval_windows needs next-token labels per position");
        std::vector<std::int32_t> labels;
        const std::vector<std::int32_t> ids = windowIds(data, n, &labels);
        double loss[2] = {0, 0};
        const DType kinds[2] = {DType::F32, storageOf(p.kvDtype)};
        for (int k = 0; k < 2; ++k) {
            PagedKvStore store(ctx.backend(), blocksFor(t, p.blockSize), p.blockSize, kinds[k]);
            ModelGenExecutor exec(ctx.model(), store);
            loss[k] = exec.windowLossNats(ids, labels, n, t,
                                          [&](const std::vector<std::int32_t>& w, std::int64_t from) {
                                              return evalChunk(p, w, from);
                                          });
        }
        const double base = std::exp(loss[0]), kv = std::exp(loss[1]);
        ctx.summary()["kv_perplexity_f32"] = base;
        ctx.summary()["kv_perplexity"] = kv;
        ctx.summary()["kv_perplexity_delta"] = base > 0 ? kv / base - 1.0 : 0.0;
        ctx.info("serve.generate: perplexity over " + std::to_string(n) + " windows with " + kvName(p.kvDtype) +
                 " KV blocks " + fixed(kv, 4) + " (f32 blocks " + fixed(base, 4) + ", change " +
                 fixed(100.0 * (kv / base - 1.0), 3) + "%)");
    }

    GenerateParams m_params;
};

void checkGenerate(const GenerateParams& p, ModelCheck& check) {
    if (p.arrival == ArrivalKind::Closed)
        check.issue("arrival", "serve.generate offers open-loop streams: expected poisson, gamma, onoff or trace");
    if (p.promptMin > p.promptMax)
        check.issue("prompt_tokens_min", "expected at most prompt_tokens_max (" + std::to_string(p.promptMax) + ")");
    if (p.outputMin > p.outputMax)
        check.issue("output_tokens_min", "expected at most output_tokens_max (" + std::to_string(p.outputMax) + ")");
    if (p.prefixCache && !p.kvPaged) check.issue("kv_prefix_cache", "prefix caching shares blocks: it needs kv_paged true");
    const std::vector<Arrival> trace = checkTraceField(p.arrival, p.trace, 1, check);
    if (!check.model || check.model->input.size() != 1) return;
    const std::int64_t context = check.model->input[0];
    if (context % p.blockSize != 0)
        check.issue("kv_block_size", "expected a block size that divides the model's context of " + std::to_string(context) +
                                         " tokens, got " + std::to_string(p.blockSize));
    if (p.sharedPrefix + p.promptMax >= context)
        check.issue("prompt_tokens_max", "a prompt of " + std::to_string(p.sharedPrefix + p.promptMax) +
                                             " tokens (shared_prefix_tokens included) leaves no room in the context of " +
                                             std::to_string(context));
    else if (p.arrival != ArrivalKind::Trace && p.sharedPrefix + p.promptMax + p.outputMax > context)
        check.issue("output_tokens_max", "prompt (up to " + std::to_string(p.sharedPrefix + p.promptMax) + ") and output (up to " +
                                             std::to_string(p.outputMax) + ") tokens pass the context of " +
                                             std::to_string(context));
    for (std::size_t i = 0; i < trace.size(); ++i)
        if (trace[i].promptTokens > 0 && p.sharedPrefix + trace[i].promptTokens + trace[i].outputTokens > context) {
            check.issue("trace", p.trace + ": request " + std::to_string(i) + ": a prompt of " +
                                     std::to_string(p.sharedPrefix + trace[i].promptTokens) + " tokens and " +
                                     std::to_string(trace[i].outputTokens) + " output tokens pass the context of " +
                                     std::to_string(context));
            break;
        }
    std::vector<std::int64_t> widths;
    attentionWidths(check.model->architecture, widths);
    if (p.budgetMib > 0 && !widths.empty() && context % p.blockSize == 0) {
        const std::uint64_t per = blockBytes(widths, p.blockSize, storageOf(p.kvDtype));
        const std::int64_t blocks = budgetBlocks(p, per, context);
        const std::int64_t need = blocksFor(context, p.blockSize);
        if (blocks < need)
            check.issue("kv_budget_mib", "a budget of " + fixed(p.budgetMib, 3) + " MiB holds " + std::to_string(blocks) +
                                             " blocks of " + std::to_string(p.blockSize) + " tokens; one sequence of the context needs " +
                                             std::to_string(need) + " (" +
                                             fixed(static_cast<double>(need * per) / 1048576.0, 3) + " MiB)");
    }
}

} // namespace

void registerServeGenerate(StrategyRegistry& registry) {
    using P = GenerateParams;
    SchemaBuilder<P> b("serve.generate", "serve",
                       "serve generation requests with static or continuous batching over a paged KV pool: TTFT, TPOT, "
                       "tokens/s, KV memory");
    b.choice("arrival", &P::arrival,
             {{"poisson", ArrivalKind::Poisson}, {"gamma", ArrivalKind::Gamma}, {"onoff", ArrivalKind::OnOff},
              {"trace", ArrivalKind::Trace}, {"closed", ArrivalKind::Closed}},
             ArrivalKind::Poisson, "open-loop Poisson; Gamma gaps; on/off bursts; a CSV trace (closed is refused)");
    b.number("rate_per_s", &P::ratePerS, 20, {.min = 0, .minExclusive = true, .unit = "requests/s", .help = "mean offered rate"});
    b.number("cv", &P::cv, 2, {.min = 0, .minExclusive = true, .help = "gamma: coefficient of variation of the gaps"});
    b.number("on_ms", &P::onMs, 50, {.min = 0, .minExclusive = true, .unit = "ms", .help = "onoff: length of a burst"});
    b.number("off_ms", &P::offMs, 50, {.min = 0, .unit = "ms", .help = "onoff: silence between bursts"});
    b.integer("requests", &P::requests, 32, {.min = 1, .max = 1000000, .help = "requests offered (unless duration_s is set)"});
    b.number("duration_s", &P::durationS, 0, {.min = 0, .unit = "s", .help = "when above 0: offer requests for this long"});
    b.text("trace", &P::trace, "",
           "trace: CSV of arrival_ms,samples,priority[,prompt_tokens,output_tokens] rows (relative to the experiment)");
    b.integer("prompt_tokens_min", &P::promptMin, 8, {.min = 1, .help = "prompt length drawn uniformly from min..max"});
    b.integer("prompt_tokens_max", &P::promptMax, 32, {.min = 1, .help = "longest drawn prompt"});
    b.integer("output_tokens_min", &P::outputMin, 4, {.min = 1, .help = "shortest output (0 is refused: a request yields a token)"});
    b.integer("output_tokens_max", &P::outputMax, 64, {.min = 1, .help = "longest output"});
    b.choice("output_dist", &P::outputDist, {{"uniform", OutputDist::Uniform}, {"exponential", OutputDist::Exponential}},
             OutputDist::Uniform, "output lengths uniform in min..max, or exponential of output_tokens_mean clamped to it");
    b.number("output_tokens_mean", &P::outputMean, 16, {.min = 1, .help = "exponential: mean output length"});
    b.integer("shared_prefix_tokens", &P::sharedPrefix, 0,
              {.min = 0, .help = "a system prompt of this many tokens (the split's first window) before every prompt"});
    b.choice("policy", &P::policy, {{"static", GenPolicy::Static}, {"continuous", GenPolicy::Continuous}},
             GenPolicy::Continuous,
             "static: wait for max_batch requests, run them to the longest output; continuous: join and leave every step");
    b.integer("max_batch", &P::maxBatch, 16, {.min = 1, .max = 4096, .help = "sequences in the running batch at most"});
    b.choice("chunk", &P::chunk, {{"none", ChunkMode::None}, {"fixed", ChunkMode::Fixed}, {"sentence", ChunkMode::Sentence}},
             ChunkMode::None, "prefill whole prompts, in chunks of chunk_tokens, or in chunks cut at the last sentence end");
    b.integer("chunk_tokens", &P::chunkTokens, 32, {.min = 1, .help = "prefill tokens per iteration when chunking"});
    b.integer("queue_cap", &P::queueCap, 10000, {.min = 1, .help = "waiting requests beyond this are dropped and counted"});
    b.boolean("kv_paged", &P::kvPaged, true,
              "paged KV: blocks taken as a sequence grows; false: each sequence reserves the whole context on admission");
    b.integer("kv_block_size", &P::blockSize, 16, {.min = 1, .max = 4096, .unit = "tokens", .help = "tokens per KV block (divides the context)"});
    b.choice("kv_dtype", &P::kvDtype,
             {{"f32", KvDType::F32}, {"f16", KvDType::F16}, {"int8", KvDType::Int8}, {"fp8", KvDType::Fp8}}, KvDType::F32,
             "storage of the KV blocks: f32, f16, int8 with a scale per 32 values, or fp8 (E4M3, no scale, saturating at 448)");
    b.boolean("kv_prefix_cache", &P::prefixCache, false, "share full prompt blocks between requests by their content (paged only)");
    b.number("kv_budget_mib", &P::budgetMib, 0,
             {.min = 0, .unit = "MiB", .help = "KV memory (0: max_batch whole-context sequences); must hold one sequence"});
    b.number("slo_ttft_ms", &P::sloTtftMs, 500, {.min = 0, .minExclusive = true, .unit = "ms", .help = "time-to-first-token objective"});
    b.number("slo_tpot_ms", &P::sloTpotMs, 50, {.min = 0, .minExclusive = true, .unit = "ms", .help = "time-per-output-token objective"});
    b.integer("warmup_requests", &P::warmupRequests, 0, {.min = 0, .help = "first requests served but not measured"});
    b.integer("eval_windows", &P::evalWindows, 0,
              {.min = 0, .help = "when above 0: perplexity of this many evaluated windows read through the KV blocks "
                                 "(kv_dtype and chunking) beside f32 blocks"});
    b.checkModel([](const P& p, ModelCheck& check) { checkGenerate(p, check); });
    registry.add(b, [](const P& p) { return std::make_unique<ServeGenerate>(p); });
}

} // namespace lathe::serve

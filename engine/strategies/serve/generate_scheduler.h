// Iteration-level scheduling of generation requests (serve.generate): a running batch of sequences whose KV lives
// in fixed-size blocks (paged_kv.h's BlockAllocator), prefills (whole or in chunks: fixed or cut at sentence ends)
// and decoding steps planned at every iteration. "static" waits for a full batch and runs it until its longest
// output ends (finished sequences stay in as padding); "continuous" admits and retires sequences at every step.
// Memory: a paged sequence takes blocks as it grows, a contiguous one reserves the whole context on admission;
// when a block cannot be had, the latest admitted sequence is preempted (its blocks freed, recomputed later).
#pragma once

#include "engine/nn/paged_kv.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace lathe::serve {

enum class GenPolicy { Static, Continuous };
enum class ChunkMode { None, Fixed, Sentence };

struct GenRequest {
    std::int64_t id = 0;
    double arrivalMs = 0;
    std::vector<std::int32_t> prompt;
    std::int64_t outputTokens = 1;
};

struct GenSchedulerSettings {
    GenPolicy policy = GenPolicy::Continuous;
    int maxRunning = 16;            // sequences in the running batch at most
    ChunkMode chunk = ChunkMode::None;
    std::int64_t chunkTokens = 32;  // prefill tokens per iteration (sentence: cut at the last sentence end inside)
    std::size_t queueCap = 100000;  // waiting requests beyond this are dropped and counted
    std::int64_t blocks = 64, blockSize = 16;
    bool paged = true;              // false: reserve blocks for `context` tokens on admission
    std::int64_t context = 128;
    bool prefixCache = false;       // share full prompt blocks by content (paged only)
};

// One sequence of an iteration as the executor sees it: tokens [from, from + count) are fed at positions from..,
// with the KV of positions [0, from) already in `blocks`.
struct SeqWork {
    std::int64_t id = 0;
    const std::vector<std::int32_t>* tokens = nullptr;
    const std::vector<std::int32_t>* blocks = nullptr;
    std::int64_t from = 0, count = 0;
    bool emits = true; // its last token's logits choose the next token (a chunk ending the prompt, or a decode)
};

// Runs an iteration on a model (or a stand-in): each prefill chunk, then the decode rows as one batch. Fills
// `next` with the chosen token of every emitting prefill (in order) then of every decode row; returns the ms it
// took (what a virtual clock advances by).
class GenExecutor {
public:
    virtual ~GenExecutor() = default;
    virtual double run(const std::vector<SeqWork>& prefill, const std::vector<SeqWork>& decode,
                       std::vector<std::int32_t>& next) = 0;
};

// Time as the scheduler sees it: wall time since the stream started, or a virtual clock moved by the executor's
// reported durations (tests, hand-computed schedules).
class GenClock {
public:
    virtual ~GenClock() = default;
    virtual double nowMs() = 0;
    virtual void advance(double ms) = 0;     // after an iteration that took ms
    virtual void waitUntil(double ms) = 0;   // idle until the next arrival
};
class VirtualGenClock final : public GenClock {
public:
    double nowMs() override { return m_now; }
    void advance(double ms) override { m_now += ms; }
    void waitUntil(double ms) override { m_now = std::max(m_now, ms); }

private:
    double m_now = 0;
};
class WallGenClock final : public GenClock {
public:
    WallGenClock();
    double nowMs() override;
    void advance(double) override {}
    void waitUntil(double ms) override;

private:
    double m_startMs;
};

struct GenRequestRecord {
    std::int64_t id = 0;
    double arrivalMs = 0, admitMs = -1, firstTokenMs = -1, finishMs = -1;
    std::int64_t promptTokens = 0, outputTokens = 0;
    std::vector<double> tokenMs;        // when each output token was chosen
    std::vector<std::int32_t> output;   // the tokens
    bool dropped = false;
    int preemptions = 0;
    std::int64_t prefixHitTokens = 0;   // prompt tokens whose KV came from the prefix cache
    std::int64_t prefixLookupTokens = 0; // prompt tokens that could have come from it (whole blocks)
};

struct GenIteration {
    double startMs = 0, endMs = 0;
    std::vector<std::pair<std::int64_t, std::int64_t>> prefill; // (request id, tokens fed)
    std::vector<std::int64_t> decode;                            // request ids
    int running = 0;        // sequences holding KV after the iteration
    std::int64_t queued = 0; // requests waiting
    std::int64_t blocksUsed = 0;
};

struct GenLog {
    std::vector<GenRequestRecord> requests; // by id
    std::vector<GenIteration> iterations;
    int maxConcurrent = 0;
    std::int64_t peakBlocks = 0;
    std::int64_t peakTokens = 0;   // tokens whose KV the sequences held when the blocks peaked
    double fragmentationPeak = 0;  // 1 - tokens held / token capacity of the held blocks, the largest seen
    double fragmentationMean = 0;  // the same averaged over iterations
    std::int64_t preemptions = 0;
    bool cancelled = false;
};

struct GenObserver {
    std::function<void(const GenIteration&)> iteration;
};

// Serves `requests` (sorted by arrival) to the end. Throws ConfigError for a request that can never be served
// (prompt + output past the context, no output) before anything runs.
GenLog runGeneration(const std::vector<GenRequest>& requests, const GenSchedulerSettings& settings,
                     GenExecutor& executor, GenClock& clock, const GenObserver& observer = {},
                     const std::atomic<bool>* cancel = nullptr);

// Blocks a sequence of `tokens` tokens needs.
inline std::int64_t blocksFor(std::int64_t tokens, std::int64_t blockSize) { return (tokens + blockSize - 1) / blockSize; }

} // namespace lathe::serve

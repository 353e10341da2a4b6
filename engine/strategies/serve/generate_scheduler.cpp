// The iteration-level scheduler of serve.generate (generate_scheduler.h).
#include "engine/strategies/serve/generate_scheduler.h"

#include "engine/core/clock.h"
#include "engine/core/errors.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <memory>
#include <thread>

namespace lathe::serve {

WallGenClock::WallGenClock() : m_startMs(steadyClockMs()) {}
double WallGenClock::nowMs() { return steadyClockMs() - m_startMs; }
void WallGenClock::waitUntil(double ms) {
    const double wait = ms - nowMs();
    if (wait > 0) std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(wait));
}

namespace {

struct Seq {
    const GenRequest* req = nullptr;
    GenRequestRecord* rec = nullptr;
    std::vector<std::int32_t> tokens; // prompt, then every token generated (what a recompute prefills)
    std::int64_t target = 0;          // tokens to prefill before decoding (prompt, or all after a preemption)
    std::int64_t cached = 0;          // tokens whose KV is stored
    std::vector<std::int32_t> blocks;
    std::int64_t published = 0;       // leading blocks published to the prefix cache
    std::uint64_t chainHash = 0;      // hash of the published chain
    bool done = false;                // static: finished, kept as padding until the batch ends
    std::int64_t admitOrder = 0;
};

bool sentenceEnd(std::int32_t t) { return t == '.' || t == '!' || t == '?' || t == '\n'; }

class Scheduler {
public:
    Scheduler(const GenSchedulerSettings& s, GenLog& log) : m_s(s), m_log(log), m_alloc(s.blocks) {}

    // Admits waiting sequences as the policy and memory allow.
    void admit(std::deque<std::unique_ptr<Seq>>& waiting, bool streamEnded, double now) {
        if (m_s.policy == GenPolicy::Static) {
            if (!m_running.empty()) return;
            if (waiting.empty() || (static_cast<int>(waiting.size()) < m_s.maxRunning && !streamEnded)) return;
        }
        while (!waiting.empty() && static_cast<int>(m_running.size()) < m_s.maxRunning) {
            Seq& s = *waiting.front();
            if (!reserve(s)) break; // first come, first served: the head waits for memory
            s.admitOrder = m_nextOrder++;
            if (s.rec->admitMs < 0) s.rec->admitMs = now;
            m_running.push_back(std::move(waiting.front()));
            waiting.pop_front();
        }
    }

    // Blocks for a newly admitted sequence: reused prefix blocks, then enough for its prefill (paged) or the
    // whole context (contiguous). False (nothing kept) when the pool cannot give them now.
    bool reserve(Seq& s) {
        std::vector<std::int32_t> hits;
        std::uint64_t chain = 0;
        const std::int64_t bs = m_s.blockSize;
        // At least one prompt token is always computed: its logits choose the first output token.
        const std::int64_t shareable = (s.target - 1) / bs;
        if (m_s.prefixCache) {
            for (std::int64_t b = 0; b < shareable; ++b) {
                const std::uint64_t h = prefixBlockHash(chain, s.tokens.data() + b * bs, bs);
                const std::int32_t blk = m_alloc.lookup(h);
                if (blk < 0) break;
                hits.push_back(blk);
                chain = h;
            }
        }
        const std::int64_t need = (m_s.paged ? blocksFor(s.target + 1, bs) : blocksFor(m_s.context, bs)) -
                                  static_cast<std::int64_t>(hits.size());
        if (need > m_alloc.freeBlocks()) {
            for (auto b : hits) m_alloc.release(b);
            return false;
        }
        s.blocks = hits;
        for (std::int64_t i = 0; i < need; ++i) s.blocks.push_back(m_alloc.allocate());
        s.cached = static_cast<std::int64_t>(hits.size()) * bs;
        s.published = static_cast<std::int64_t>(hits.size());
        s.chainHash = chain;
        if (m_s.prefixCache && s.rec->prefixLookupTokens == 0) {
            s.rec->prefixLookupTokens = shareable * bs;
            s.rec->prefixHitTokens = s.cached;
        }
        return true;
    }

    void releaseAll(Seq& s) {
        for (auto b : s.blocks) m_alloc.release(b);
        s.blocks.clear();
        s.published = 0;
        s.chainHash = 0;
    }

    // Makes room for position `pos` of s; preempts the latest admitted other sequences (padding first) when the
    // pool is empty. False when s itself had to give way.
    bool grow(Seq& s, std::int64_t tokens, std::deque<std::unique_ptr<Seq>>& waiting) {
        while (static_cast<std::int64_t>(s.blocks.size()) * m_s.blockSize < tokens) {
            const std::int32_t b = m_alloc.allocate();
            if (b >= 0) {
                s.blocks.push_back(b);
                continue;
            }
            Seq* victim = pickVictim();
            if (victim == &s && s.done) return false; // padding that cannot grow simply stops
            preempt(*victim, waiting);
            if (victim == &s) return false;
        }
        return true;
    }

    Seq* pickVictim() {
        Seq* v = nullptr;
        for (auto& p : m_running)
            if (!v || (p->done && !v->done) || (p->done == v->done && p->admitOrder > v->admitOrder)) v = p.get();
        return v;
    }

    void preempt(Seq& v, std::deque<std::unique_ptr<Seq>>& waiting) {
        releaseAll(v);
        auto it = std::find_if(m_running.begin(), m_running.end(), [&](const auto& p) { return p.get() == &v; });
        std::unique_ptr<Seq> owned = std::move(*it);
        m_running.erase(it);
        if (owned->done) return; // static padding: its answer is complete
        ++owned->rec->preemptions;
        ++m_log.preemptions;
        owned->cached = 0;
        owned->target = static_cast<std::int64_t>(owned->tokens.size()); // recompute everything it holds
        waiting.push_front(std::move(owned));
    }

    // Publishes the sequence's full prompt blocks once their KV is stored.
    void publish(Seq& s) {
        if (!m_s.prefixCache) return;
        const std::int64_t bs = m_s.blockSize;
        const std::int64_t promptLen = static_cast<std::int64_t>(s.req->prompt.size());
        while (s.published < static_cast<std::int64_t>(s.blocks.size()) && (s.published + 1) * bs <= s.cached &&
               (s.published + 1) * bs <= promptLen) {
            const std::uint64_t h = prefixBlockHash(s.chainHash, s.tokens.data() + s.published * bs, bs);
            m_alloc.publish(s.blocks[static_cast<std::size_t>(s.published)], h);
            s.chainHash = h;
            ++s.published;
        }
    }

    std::vector<std::unique_ptr<Seq>> m_running;
    const GenSchedulerSettings& m_s;
    GenLog& m_log;
    BlockAllocator m_alloc;
    std::int64_t m_nextOrder = 0;
};

} // namespace

GenLog runGeneration(const std::vector<GenRequest>& requests, const GenSchedulerSettings& s, GenExecutor& executor,
                     GenClock& clock, const GenObserver& observer, const std::atomic<bool>* cancel) {
    if (s.maxRunning < 1) throw ConfigError("serve.generate: max_batch must be at least 1");
    if (s.prefixCache && !s.paged) throw ConfigError("serve.generate: kv_prefix_cache needs kv_paged");
    const std::int64_t perSeq = blocksFor(s.context, s.blockSize);
    if (perSeq > s.blocks)
        throw ConfigError("serve.generate: the KV budget holds " + std::to_string(s.blocks) + " blocks of " +
                          std::to_string(s.blockSize) + " tokens, fewer than one sequence of the context (" +
                          std::to_string(s.context) + " tokens) needs");
    GenLog log;
    log.requests.resize(requests.size());
    for (std::size_t i = 0; i < requests.size(); ++i) {
        const GenRequest& r = requests[i];
        if (r.outputTokens < 1)
            throw ConfigError("serve.generate: request " + std::to_string(i) + " asks for " +
                              std::to_string(r.outputTokens) + " output tokens (expected at least 1)");
        if (r.prompt.empty() || static_cast<std::int64_t>(r.prompt.size()) + r.outputTokens > s.context)
            throw ConfigError("serve.generate: request " + std::to_string(i) + ": a prompt of " +
                              std::to_string(r.prompt.size()) + " tokens and " + std::to_string(r.outputTokens) +
                              " output tokens do not fit the context of " + std::to_string(s.context));
        if (i > 0 && r.arrivalMs < requests[i - 1].arrivalMs)
            throw ConfigError("serve.generate: requests must come in arrival order");
        GenRequestRecord& rec = log.requests[i];
        rec.id = static_cast<std::int64_t>(i);
        rec.arrivalMs = r.arrivalMs;
        rec.promptTokens = static_cast<std::int64_t>(r.prompt.size());
        rec.outputTokens = r.outputTokens;
    }

    Scheduler sch(s, log);
    std::deque<std::unique_ptr<Seq>> waiting;
    std::size_t next = 0;
    double fragSum = 0;
    std::int64_t fragCount = 0;
    for (;;) {
        if (cancel && cancel->load()) {
            log.cancelled = true;
            break;
        }
        const double now = clock.nowMs();
        for (; next < requests.size() && requests[next].arrivalMs <= now; ++next) {
            if (waiting.size() >= s.queueCap) {
                log.requests[next].dropped = true;
                continue;
            }
            auto q = std::make_unique<Seq>();
            q->req = &requests[next];
            q->rec = &log.requests[next];
            q->tokens = requests[next].prompt;
            q->target = static_cast<std::int64_t>(q->tokens.size());
            waiting.push_back(std::move(q));
        }
        const bool ended = next == requests.size();
        sch.admit(waiting, ended, now);
        if (sch.m_running.empty()) {
            if (ended && waiting.empty()) break;
            if (!ended) {
                clock.waitUntil(requests[next].arrivalMs);
                continue;
            }
            throw BackendError("serve.generate: a waiting request cannot be admitted into an empty pool"); // guarded above
        }

        // Plan: prefill chunks within the token budget, then one decode row per sequence that has its prompt.
        std::vector<Seq*> prefillSeqs, decodeSeqs;
        std::vector<SeqWork> prefill, decode;
        std::int64_t budget = s.chunk == ChunkMode::None ? (1ll << 40) : s.chunkTokens;
        for (auto& p : sch.m_running) {
            Seq& q = *p;
            if (q.cached >= q.target || budget <= 0) continue;
            std::int64_t count = std::min(q.target - q.cached, budget);
            if (s.chunk == ChunkMode::Sentence && count < q.target - q.cached) {
                // Cut after the last sentence end inside the chunk, unless that leaves less than a quarter of it.
                for (std::int64_t k = count; k >= std::max<std::int64_t>(1, count / 4); --k)
                    if (sentenceEnd(q.tokens[static_cast<std::size_t>(q.cached + k - 1)])) {
                        count = k;
                        break;
                    }
            }
            budget -= count;
            prefillSeqs.push_back(&q);
            prefill.push_back({q.rec->id, &q.tokens, &q.blocks, q.cached, count, q.cached + count == q.target});
        }
        // Decode rows need a block for their new position; growing may preempt others (never one already planned
        // for a prefill this iteration: those hold their prompt blocks from admission).
        std::vector<Seq*> candidates;
        for (auto& p : sch.m_running)
            if (p->cached >= p->target && p->cached < s.context) candidates.push_back(p.get());
        for (Seq* q : candidates) {
            if (std::find_if(sch.m_running.begin(), sch.m_running.end(), [&](const auto& r) { return r.get() == q; }) ==
                sch.m_running.end())
                continue; // preempted by an earlier row
            if (!sch.grow(*q, q->cached + 1, waiting)) continue;
            decodeSeqs.push_back(q);
        }
        // A preemption may have removed a sequence planned for prefill or decode: drop it from the plan.
        auto alive = [&](Seq* q) {
            return std::find_if(sch.m_running.begin(), sch.m_running.end(), [&](const auto& r) { return r.get() == q; }) !=
                   sch.m_running.end();
        };
        {
            std::vector<Seq*> ps;
            std::vector<SeqWork> pw;
            for (std::size_t i = 0; i < prefillSeqs.size(); ++i)
                if (alive(prefillSeqs[i])) {
                    ps.push_back(prefillSeqs[i]);
                    pw.push_back(prefill[i]);
                }
            prefillSeqs.swap(ps);
            prefill.swap(pw);
            std::vector<Seq*> ds;
            for (Seq* q : decodeSeqs)
                if (alive(q)) ds.push_back(q);
            decodeSeqs.swap(ds);
        }
        for (Seq* q : decodeSeqs) {
            const std::int64_t pos = static_cast<std::int64_t>(q->tokens.size()) - 1;
            decode.push_back({q->rec->id, &q->tokens, &q->blocks, pos, 1, true});
        }
        if (prefill.empty() && decode.empty()) {
            // Nothing can run (only padding that cannot grow): end the static batch.
            for (auto& p : sch.m_running) sch.releaseAll(*p);
            sch.m_running.clear();
            continue;
        }

        GenIteration it;
        it.startMs = now;
        std::vector<std::int32_t> chosen;
        const double ms = executor.run(prefill, decode, chosen);
        clock.advance(ms);
        const double end = clock.nowMs();
        it.endMs = end;

        std::size_t c = 0;
        auto emit = [&](Seq& q, std::int32_t token) {
            q.tokens.push_back(token);
            if (q.done) return; // padding: computed, not answered
            GenRequestRecord& r = *q.rec;
            if (r.firstTokenMs < 0) r.firstTokenMs = end;
            r.tokenMs.push_back(end);
            r.output.push_back(token);
            if (static_cast<std::int64_t>(r.output.size()) >= r.outputTokens) {
                r.finishMs = end;
                q.done = true;
            }
        };
        for (std::size_t i = 0; i < prefillSeqs.size(); ++i) {
            Seq& q = *prefillSeqs[i];
            q.cached += prefill[i].count;
            it.prefill.emplace_back(q.rec->id, prefill[i].count);
            sch.publish(q);
            if (prefill[i].emits) {
                if (c >= chosen.size()) throw BackendError("serve.generate: the executor returned too few tokens");
                emit(q, chosen[c++]);
            }
        }
        for (Seq* q : decodeSeqs) {
            if (c >= chosen.size()) throw BackendError("serve.generate: the executor returned too few tokens");
            q->cached += 1;
            it.decode.push_back(q->rec->id);
            emit(*q, chosen[c++]);
        }
        // Retire: continuous at once; static when the whole batch is done.
        std::int64_t heldTokens = 0, heldBlocks = 0;
        for (auto& p : sch.m_running) {
            heldTokens += p->cached;
            heldBlocks += static_cast<std::int64_t>(p->blocks.size());
        }
        const bool allDone = std::all_of(sch.m_running.begin(), sch.m_running.end(), [](const auto& p) { return p->done; });
        const std::int64_t usedNow = sch.m_alloc.usedBlocks(); // at the iteration's end, before retiring
        log.maxConcurrent = std::max(log.maxConcurrent, static_cast<int>(sch.m_running.size()));
        if (usedNow > log.peakBlocks) {
            log.peakBlocks = usedNow;
            log.peakTokens = heldTokens;
        }
        if (heldBlocks > 0) {
            const double frag = 1.0 - static_cast<double>(heldTokens) / static_cast<double>(heldBlocks * s.blockSize);
            log.fragmentationPeak = std::max(log.fragmentationPeak, frag);
            fragSum += frag;
            ++fragCount;
        }
        if (s.policy == GenPolicy::Continuous || allDone) {
            for (auto& p : sch.m_running)
                if (p->done || s.policy == GenPolicy::Static) sch.releaseAll(*p);
            std::erase_if(sch.m_running, [](const auto& p) { return p->blocks.empty() && p->done; });
        }
        it.running = static_cast<int>(sch.m_running.size());
        it.blocksUsed = sch.m_alloc.usedBlocks();
        it.queued = static_cast<std::int64_t>(waiting.size());
        log.iterations.push_back(it);
        if (observer.iteration) observer.iteration(log.iterations.back());
    }
    log.fragmentationMean = fragCount ? fragSum / static_cast<double>(fragCount) : 0.0;
    sch.m_alloc.checkConsistency();
    return log;
}

} // namespace lathe::serve

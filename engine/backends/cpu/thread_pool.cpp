// The CPU backend's thread pool. Workers sleep on a condition variable between jobs (so they never
// steal cycles from other work) and claim chunks through one atomic word tagged with the job's
// generation. The caller claims chunks too: on a loaded machine where a worker is not scheduled in
// time, the caller simply runs every chunk itself instead of waiting.
#include "engine/backends/cpu/thread_pool.h"

#include <algorithm>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LATHE_CPU_RELAX() _mm_pause()
#else
#define LATHE_CPU_RELAX() std::this_thread::yield()
#endif

namespace lathe::cpu {
namespace {

thread_local bool tInsideJob = false;
constexpr std::uint64_t kClosed = 0xffffffffull;

std::uint64_t claimWord(std::uint32_t generation, std::uint64_t index) {
    return (static_cast<std::uint64_t>(generation) << 32) | index;
}

} // namespace

ThreadPool::ThreadPool(int threads) : m_threads(std::max(1, threads)) {
    for (int i = 1; i < m_threads; ++i) m_workers.emplace_back([this] { workerLoop(); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard lock(m_mutex);
        m_stop = true;
    }
    m_wake.notify_all();
    for (auto& t : m_workers) t.join();
}

void ThreadPool::runJob(std::uint32_t generation) {
    for (;;) {
        std::uint64_t word = m_claim.load(std::memory_order_acquire);
        if ((word >> 32) != generation) return;
        const std::uint64_t index = word & 0xffffffffull;
        // Read the job before claiming; if the job changed meanwhile the claim below fails.
        const std::int64_t chunks = m_chunks.load(std::memory_order_relaxed);
        const std::int64_t n = m_n.load(std::memory_order_relaxed), chunk = m_chunk.load(std::memory_order_relaxed);
        const auto* rangeFn = m_rangeFn.load(std::memory_order_relaxed);
        const auto* chunkFn = m_chunkFn.load(std::memory_order_relaxed);
        if (index == kClosed || static_cast<std::int64_t>(index) >= chunks) return;
        if (!m_claim.compare_exchange_weak(word, word + 1, std::memory_order_acq_rel, std::memory_order_relaxed))
            continue;
        const auto i = static_cast<std::int64_t>(index);
        if (chunkFn)
            (*chunkFn)(i);
        else
            (*rangeFn)(i * chunk, std::min(n, (i + 1) * chunk));
        m_done.fetch_add(1, std::memory_order_acq_rel);
    }
}

void ThreadPool::workerLoop() {
    tInsideJob = true;
    std::uint32_t seen = 0;
    for (;;) {
        {
            std::unique_lock lock(m_mutex);
            m_wake.wait(lock, [&] { return m_stop || m_wakeGeneration != seen; });
            if (m_stop) return;
            seen = m_wakeGeneration;
        }
        runJob(seen);
    }
}

void ThreadPool::dispatch(std::int64_t chunks, std::int64_t n, std::int64_t chunk,
                          const std::function<void(std::int64_t, std::int64_t)>* rangeFn,
                          const std::function<void(std::int64_t)>* chunkFn) {
    const std::uint32_t gen = ++m_generation;
    m_claim.store(claimWord(gen, kClosed), std::memory_order_release); // close: late workers back off
    m_rangeFn.store(rangeFn, std::memory_order_relaxed);
    m_chunkFn.store(chunkFn, std::memory_order_relaxed);
    m_n.store(n, std::memory_order_relaxed);
    m_chunk.store(chunk, std::memory_order_relaxed);
    m_chunks.store(chunks, std::memory_order_relaxed);
    m_done.store(0, std::memory_order_relaxed);
    m_claim.store(claimWord(gen, 0), std::memory_order_release); // open
    {
        std::lock_guard lock(m_mutex);
        m_wakeGeneration = gen;
    }
    m_wake.notify_all();
    tInsideJob = true;
    runJob(gen);
    tInsideJob = false;
    // Only chunks a worker has claimed are outstanding; they finish shortly. Yield on a busy machine.
    for (int spins = 0; m_done.load(std::memory_order_acquire) != chunks; ++spins) {
        if (spins < 2000)
            LATHE_CPU_RELAX();
        else
            std::this_thread::yield();
    }
}

void ThreadPool::parallelFor(std::int64_t n, std::int64_t minPerTask,
                             const std::function<void(std::int64_t, std::int64_t)>& fn) {
    if (n <= 0) return;
    minPerTask = std::max<std::int64_t>(1, minPerTask);
    if (m_threads == 1 || n < 2 * minPerTask || tInsideJob) {
        fn(0, n);
        return;
    }
    std::unique_lock submit(m_submit, std::try_to_lock);
    if (!submit.owns_lock()) {
        fn(0, n);
        return;
    }
    // A few chunks per thread balance uneven work and absorb a worker that starts late.
    const std::int64_t chunks = std::min<std::int64_t>(static_cast<std::int64_t>(m_threads) * 4, n / minPerTask);
    const std::int64_t chunk = (n + chunks - 1) / chunks;
    dispatch((n + chunk - 1) / chunk, n, chunk, &fn, nullptr);
}

void ThreadPool::forChunks(std::int64_t chunks, const std::function<void(std::int64_t)>& fn) {
    if (chunks <= 0) return;
    std::unique_lock submit(m_submit, std::defer_lock);
    if (m_threads == 1 || chunks == 1 || tInsideJob || !submit.try_lock()) {
        for (std::int64_t i = 0; i < chunks; ++i) fn(i);
        return;
    }
    dispatch(chunks, chunks, 1, nullptr, &fn);
}

} // namespace lathe::cpu

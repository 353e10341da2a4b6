// The CPU backend's thread pool: workers sleep on a condition variable between jobs (so they never
// steal cycles from OpenBLAS's own threads) and share a job's chunks through an atomic counter.
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
}

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

void ThreadPool::runChunks() {
    for (;;) {
        const std::int64_t c = m_nextChunk.fetch_add(1, std::memory_order_relaxed);
        if (c >= m_chunks) break;
        const std::int64_t begin = c * m_chunk;
        const std::int64_t end = std::min(m_n, begin + m_chunk);
        (*m_fn)(begin, end);
    }
}

void ThreadPool::workerLoop() {
    tInsideJob = true;
    std::uint64_t seen = 0;
    for (;;) {
        {
            std::unique_lock lock(m_mutex);
            m_wake.wait(lock, [&] { return m_stop || m_generation != seen; });
            if (m_stop) return;
            seen = m_generation;
        }
        runChunks();
        m_pending.fetch_sub(1, std::memory_order_acq_rel);
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
    if (!submit.owns_lock()) { // another thread is using the pool: do not queue behind it
        fn(0, n);
        return;
    }
    // A few chunks per thread balance uneven work without much counter traffic.
    const std::int64_t maxChunks = static_cast<std::int64_t>(m_threads) * 4;
    const std::int64_t chunks = std::min(maxChunks, n / minPerTask);
    m_fn = &fn;
    m_n = n;
    m_chunk = (n + chunks - 1) / chunks;
    m_chunks = (n + m_chunk - 1) / m_chunk;
    m_nextChunk.store(0, std::memory_order_relaxed);
    m_pending.store(static_cast<int>(m_workers.size()), std::memory_order_relaxed);
    {
        std::lock_guard lock(m_mutex);
        ++m_generation;
    }
    m_wake.notify_all();
    tInsideJob = true;
    runChunks();
    tInsideJob = false;
    // Workers finish their last chunk shortly after ours; spin rather than sleep.
    // On a busy machine a worker may not be scheduled at once, so fall back to yielding.
    for (int spins = 0; m_pending.load(std::memory_order_acquire) != 0; ++spins) {
        if (spins < 4000)
            LATHE_CPU_RELAX();
        else
            std::this_thread::yield();
    }
    m_fn = nullptr;
}

} // namespace lathe::cpu

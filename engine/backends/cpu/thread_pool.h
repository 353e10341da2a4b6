// A small persistent thread pool for the CPU backend's loops. The calling thread takes part in
// every job, so a pool of T threads keeps T-1 workers; small jobs run inline with no wake-up at all.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lathe::cpu {

class ThreadPool {
public:
    // threads: total threads including the caller (>= 1).
    explicit ThreadPool(int threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int threads() const { return m_threads; }

    // Calls fn(begin, end) over disjoint ranges covering [0, n), in chunks of at least minPerTask
    // (a few chunks per thread). Runs inline when n < 2 * minPerTask, when the pool has one thread,
    // from inside a pool job (no nesting), or while another thread owns the pool.
    // fn must not throw (ops check their arguments before a parallel loop starts).
    void parallelFor(std::int64_t n, std::int64_t minPerTask,
                     const std::function<void(std::int64_t, std::int64_t)>& fn);

    // Calls fn(i) for every chunk index i in [0, chunks): the caller decides the chunking (so results
    // can be independent of the thread count). Same inline rules as parallelFor.
    void forChunks(std::int64_t chunks, const std::function<void(std::int64_t)>& fn);

private:
    void workerLoop();
    void runJob(std::uint32_t generation);
    void dispatch(std::int64_t chunks, std::int64_t n, std::int64_t chunk,
                  const std::function<void(std::int64_t, std::int64_t)>* rangeFn,
                  const std::function<void(std::int64_t)>* chunkFn);

    int m_threads;
    std::vector<std::thread> m_workers;

    std::mutex m_submit; // one job at a time; other callers run inline
    std::mutex m_mutex;
    std::condition_variable m_wake;
    std::uint32_t m_wakeGeneration = 0; // guarded by m_mutex
    bool m_stop = false;

    // The job in flight. A worker claims chunk i by moving m_claim from (gen, i) to (gen, i + 1);
    // the claim fails once the caller has closed the job, so a worker that wakes late never runs a
    // chunk of a finished job, and the caller never waits for a worker that did not wake.
    std::atomic<std::uint64_t> m_claim{0};
    std::atomic<std::int64_t> m_done{0};
    std::atomic<const std::function<void(std::int64_t, std::int64_t)>*> m_rangeFn{nullptr};
    std::atomic<const std::function<void(std::int64_t)>*> m_chunkFn{nullptr};
    std::atomic<std::int64_t> m_n{0}, m_chunk{1}, m_chunks{0};
    std::uint32_t m_generation = 0; // owned by the submitting thread
};

} // namespace lathe::cpu

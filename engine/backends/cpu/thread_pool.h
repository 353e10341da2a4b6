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

    // Calls fn(begin, end) over disjoint ranges covering [0, n). Runs inline when n < 2 * minPerTask,
    // when the pool has one thread, from inside a pool job (no nesting), or while another thread
    // owns the pool. fn must not throw (errors are checked before a parallel loop starts).
    void parallelFor(std::int64_t n, std::int64_t minPerTask,
                     const std::function<void(std::int64_t, std::int64_t)>& fn);

private:
    void workerLoop();
    void runChunks();

    int m_threads;
    std::vector<std::thread> m_workers;

    std::mutex m_submit;  // one job at a time; others run inline
    std::mutex m_mutex;
    std::condition_variable m_wake;
    std::uint64_t m_generation = 0; // guarded by m_mutex
    bool m_stop = false;

    // The job in flight.
    const std::function<void(std::int64_t, std::int64_t)>* m_fn = nullptr;
    std::int64_t m_n = 0, m_chunk = 1, m_chunks = 0;
    std::atomic<std::int64_t> m_nextChunk{0};
    std::atomic<int> m_pending{0}; // workers that have not finished the current job
};

} // namespace lathe::cpu

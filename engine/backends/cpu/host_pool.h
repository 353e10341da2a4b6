// The CPU backend's caching allocator: freed blocks are kept per size and handed out again, so a
// model that runs the same shapes every batch stops calling malloc after the first one. It also
// keeps the byte accounting (current and peak bytes held by live tensors).
#pragma once

#include "engine/core/tensor.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace lathe::cpu {

class HostPool : public std::enable_shared_from_this<HostPool> {
public:
    // Blocks up to maxCachedBlock bytes are cached, at most maxCachedTotal bytes in all.
    explicit HostPool(std::size_t maxCachedBlock = std::size_t{64} << 20,
                      std::size_t maxCachedTotal = std::size_t{512} << 20);
    ~HostPool();
    HostPool(const HostPool&) = delete;
    HostPool& operator=(const HostPool&) = delete;

    std::shared_ptr<Storage> allocate(std::size_t bytes);

    std::uint64_t currentBytes() const { return m_current.load(std::memory_order_relaxed); }
    std::uint64_t peakBytes() const { return m_peak.load(std::memory_order_relaxed); }
    void resetPeak() { m_peak.store(currentBytes(), std::memory_order_relaxed); }
    std::size_t cachedBytes() const;
    void releaseCached(); // frees every cached block

private:
    friend class PooledStorage;
    void give(void* p, std::size_t capacity, std::size_t bytes) noexcept;

    const std::size_t m_maxCachedBlock, m_maxCachedTotal;
    mutable std::mutex m_mutex;
    std::unordered_map<std::size_t, std::vector<void*>> m_free; // capacity -> blocks
    std::size_t m_cached = 0;
    std::atomic<std::uint64_t> m_current{0}, m_peak{0};
};

} // namespace lathe::cpu

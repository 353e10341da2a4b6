// The CPU backend's caching allocator (see host_pool.h).
#include "engine/backends/cpu/host_pool.h"

#include <cstdlib>
#include <new>

namespace lathe::cpu {

// Host memory from a HostPool; returns its block to the pool (which it keeps alive) when freed.
class PooledStorage final : public Storage {
public:
    PooledStorage(std::shared_ptr<HostPool> pool, void* data, std::size_t bytes, std::size_t capacity)
        : Storage(Device{DeviceKind::Cpu, 0}, data, bytes), m_pool(std::move(pool)), m_capacity(capacity) {}
    ~PooledStorage() override { m_pool->give(m_data, m_capacity, m_bytes); }

private:
    std::shared_ptr<HostPool> m_pool;
    std::size_t m_capacity;
};

HostPool::HostPool(std::size_t maxCachedBlock, std::size_t maxCachedTotal)
    : m_maxCachedBlock(maxCachedBlock), m_maxCachedTotal(maxCachedTotal) {}

HostPool::~HostPool() { releaseCached(); }

std::shared_ptr<Storage> HostPool::allocate(std::size_t bytes) {
    // 64-byte aligned blocks (AVX-512 friendly), capacity rounded so near sizes share a bin.
    const std::size_t capacity = bytes == 0 ? 64 : (bytes + 63) / 64 * 64;
    void* p = nullptr;
    if (capacity <= m_maxCachedBlock) {
        std::lock_guard lock(m_mutex);
        auto it = m_free.find(capacity);
        if (it != m_free.end() && !it->second.empty()) {
            p = it->second.back();
            it->second.pop_back();
            m_cached -= capacity;
        }
    }
    if (!p) {
        p = std::aligned_alloc(64, capacity);
        if (!p) throw std::bad_alloc();
    }
    const std::uint64_t now = m_current.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    std::uint64_t peak = m_peak.load(std::memory_order_relaxed);
    while (now > peak && !m_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
    try {
        return std::make_shared<PooledStorage>(shared_from_this(), p, bytes, capacity);
    } catch (...) {
        m_current.fetch_sub(bytes, std::memory_order_relaxed);
        std::free(p);
        throw;
    }
}

void HostPool::give(void* p, std::size_t capacity, std::size_t bytes) noexcept {
    m_current.fetch_sub(bytes, std::memory_order_relaxed);
    if (capacity <= m_maxCachedBlock) {
        std::lock_guard lock(m_mutex);
        if (m_cached + capacity <= m_maxCachedTotal) {
            try {
                m_free[capacity].push_back(p);
                m_cached += capacity;
                return;
            } catch (...) { // out of memory for the bin: just free the block
            }
        }
    }
    std::free(p);
}

std::size_t HostPool::cachedBytes() const {
    std::lock_guard lock(m_mutex);
    return m_cached;
}

void HostPool::releaseCached() {
    std::lock_guard lock(m_mutex);
    for (auto& [cap, blocks] : m_free)
        for (void* p : blocks) std::free(p);
    m_free.clear();
    m_cached = 0;
}

} // namespace lathe::cpu

// Bounded single-producer/single-consumer ring of MetricSamples between the engine thread and the
// UI. On overflow the producer drops the oldest sample and counts it; the consumer drains in bulk.
#pragma once

#include "engine/core/metrics.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace lathe {

class SampleRing final : public MetricSink {
public:
    explicit SampleRing(std::size_t capacity = 1 << 16);

    // Producer side (engine thread).
    void push(const MetricSample& sample) override;
    // Consumer side (UI thread): appends everything available to out, returns how many.
    std::size_t drain(std::vector<MetricSample>& out, std::size_t max = SIZE_MAX);

    std::uint64_t dropped() const { return m_dropped.load(std::memory_order_relaxed); }
    std::size_t capacity() const { return m_capacity; }
    std::size_t sizeApprox() const;

private:
    // A slot is read by the consumer while the producer may be overwriting it (after dropping it);
    // word-wise relaxed atomics keep that race defined. A torn copy is discarded because the
    // consumer's CAS on m_tail then fails.
    static constexpr std::size_t kWords = (sizeof(MetricSample) + 7) / 8;
    struct Slot {
        std::atomic<std::uint64_t> words[kWords];
    };
    void store(std::uint64_t index, const MetricSample& sample);
    MetricSample load(std::uint64_t index) const;

    std::unique_ptr<Slot[]> m_slots;
    std::size_t m_capacity;                  // a power of two
    std::size_t m_mask;
    alignas(64) std::atomic<std::uint64_t> m_head{0}; // next write (producer)
    alignas(64) std::atomic<std::uint64_t> m_tail{0}; // next read (consumer); producer advances it on overflow
    alignas(64) std::atomic<std::uint64_t> m_dropped{0};
};

} // namespace lathe

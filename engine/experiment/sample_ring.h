// Bounded single-producer/single-consumer ring of MetricSamples between the engine thread and the
// UI. On overflow the producer drops the oldest sample and counts it; the consumer drains in bulk.
#pragma once

#include "engine/experiment/metrics.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
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
    std::size_t capacity() const { return m_buffer.size(); }
    std::size_t sizeApprox() const;

private:
    std::vector<MetricSample> m_buffer;
    std::size_t m_mask;
    alignas(64) std::atomic<std::uint64_t> m_head{0}; // next write (producer)
    alignas(64) std::atomic<std::uint64_t> m_tail{0}; // next read (consumer); producer advances it on overflow
    alignas(64) std::atomic<std::uint64_t> m_dropped{0};
};

} // namespace lathe

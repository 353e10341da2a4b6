// SampleRing: the bounded SPSC ring between the engine thread (producer) and the UI (consumer).
// Overflow drops the oldest sample: the producer moves m_tail forward itself, and the consumer
// learns of it when its compare-and-swap on m_tail fails.
#include "engine/experiment/sample_ring.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

namespace lathe {

static_assert(std::is_trivially_copyable_v<MetricSample>, "samples are copied word by word");

namespace {
std::size_t roundUpPow2(std::size_t n) {
    std::size_t p = 2;
    while (p < n) {
        p <<= 1;
    }
    return p;
}
} // namespace

SampleRing::SampleRing(std::size_t capacity)
    : m_slots(std::make_unique<Slot[]>(roundUpPow2(capacity))), m_capacity(roundUpPow2(capacity)),
      m_mask(m_capacity - 1) {}

void SampleRing::store(std::uint64_t index, const MetricSample& sample) {
    std::uint64_t words[kWords] = {};
    std::memcpy(words, &sample, sizeof(MetricSample));
    Slot& slot = m_slots[index & m_mask];
    for (std::size_t i = 0; i < kWords; ++i) {
        slot.words[i].store(words[i], std::memory_order_relaxed);
    }
}

MetricSample SampleRing::load(std::uint64_t index) const {
    std::uint64_t words[kWords];
    const Slot& slot = m_slots[index & m_mask];
    for (std::size_t i = 0; i < kWords; ++i) {
        words[i] = slot.words[i].load(std::memory_order_relaxed);
    }
    MetricSample sample;
    std::memcpy(&sample, words, sizeof(MetricSample));
    return sample;
}

void SampleRing::push(const MetricSample& sample) {
    const std::uint64_t head = m_head.load(std::memory_order_relaxed); // only this thread writes it
    std::uint64_t tail = m_tail.load(std::memory_order_acquire);
    while (head - tail >= m_capacity) {
        // Full: drop the oldest. If the consumer took it meanwhile, tail is reloaded and we re-check.
        if (m_tail.compare_exchange_weak(tail, tail + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
            m_dropped.fetch_add(1, std::memory_order_relaxed);
            break;
        }
    }
    // The acquire on m_tail above orders this write after the consumer finished copying the slot.
    store(head, sample);
    m_head.store(head + 1, std::memory_order_release);
}

std::size_t SampleRing::drain(std::vector<MetricSample>& out, std::size_t max) {
    std::size_t taken = 0;
    std::vector<MetricSample> chunk;
    while (taken < max) {
        std::uint64_t tail = m_tail.load(std::memory_order_acquire);
        const std::uint64_t head = m_head.load(std::memory_order_acquire);
        if (tail >= head) {
            break;
        }
        const std::uint64_t end = tail + std::min<std::uint64_t>(head - tail, max - taken);
        chunk.clear();
        for (std::uint64_t i = tail; i < end; ++i) {
            chunk.push_back(load(i));
        }
        // Claim [tail, end). A failed CAS means the producer dropped [tail, newTail): those copies may
        // be torn and are discarded; copies at or after newTail were read before anyone could reuse
        // their slots (that needs m_tail past them), so they stay valid and we try to claim them.
        std::uint64_t expected = tail;
        while (!m_tail.compare_exchange_weak(expected, end, std::memory_order_acq_rel, std::memory_order_acquire)) {
            if (expected >= end) {
                break;
            }
        }
        if (expected >= end) {
            continue; // everything we copied was dropped under us
        }
        const std::size_t skip = static_cast<std::size_t>(expected - tail);
        out.insert(out.end(), chunk.begin() + static_cast<std::ptrdiff_t>(skip), chunk.end());
        taken += chunk.size() - skip;
    }
    return taken;
}

std::size_t SampleRing::sizeApprox() const {
    const std::uint64_t head = m_head.load(std::memory_order_acquire);
    const std::uint64_t tail = m_tail.load(std::memory_order_acquire);
    return head > tail ? static_cast<std::size_t>(head - tail) : 0;
}

} // namespace lathe

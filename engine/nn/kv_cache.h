// A preallocated, contiguous KV cache for autoregressive generation: one buffer per attention layer, sized for
// the whole context up front, so a decoding step appends its tokens' rows and attends over the prefix without
// recomputing it or allocating. Each attention layer's slot holds the rows of its fused QKV input (N, capacity,
// 3 * D): a step appends its rows with one contiguous copy per sequence, and attention reads the K and V columns.
#pragma once

#include "engine/backends/backend.h"

#include <cstdint>
#include <map>
#include <vector>

namespace lathe {

class KvCache {
public:
    // batch sequences of up to `capacity` tokens each, on `be`.
    KvCache(Backend& be, std::int64_t batch, std::int64_t capacity);

    std::int64_t batch() const { return m_batch; }
    std::int64_t capacity() const { return m_capacity; }
    std::int64_t length() const { return m_length; } // tokens cached (committed by advance)

    // The slot of one attention layer (keyed by the layer's address), allocated on first use as (N, capacity,
    // rowWidth) on the cache's backend. A later call with another rowWidth throws BackendError.
    Tensor& slot(const void* layer, std::int64_t rowWidth);
    // Copies rows (N, T, rowWidth) into the layer's slot at positions [length, length + T); throws BackendError
    // when they would pass the capacity. The tokens become visible to later steps only after advance(T).
    void append(const void* layer, const Tensor& rows);
    // Commits the T tokens every layer appended in this step.
    void advance(std::int64_t tokens);
    void clear() { m_length = 0; }
    // Bytes the slots hold (what `kv_bytes_peak` reports).
    std::uint64_t bytes() const;

private:
    Backend* m_be;
    std::int64_t m_batch, m_capacity, m_length = 0;
    std::map<const void*, Tensor> m_slots;
};

} // namespace lathe

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

// What an attention layer asks of a KV store while generating (ForwardContext::kvCache): keep this step's rows
// and attend over everything its sequences hold. The contiguous KvCache below is one; the serving family's paged
// store (paged_kv.h) another.
class KvStore {
public:
    virtual ~KvStore() = default;
    // x (N, T, 3D): the step's fused QKV rows of `layer`; writes out (N, T, D) and lse (N, H, T) of attention of
    // the step's queries over each sequence's cached keys and the step's own. keyLengths: the batch's valid
    // lengths as SequenceBatch gives them (null: all valid); a store that tracks its own lengths may ignore it.
    virtual void attend(Backend& be, const void* layer, const Tensor& x, const Tensor* keyLengths, AttentionParams p,
                        Tensor& out, Tensor& lse) = 0;
};

class KvCache final : public KvStore {
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
    // Appends x to the layer's slot and attends over the cached tokens and x (causal queries at the end).
    void attend(Backend& be, const void* layer, const Tensor& x, const Tensor* keyLengths, AttentionParams p,
                Tensor& out, Tensor& lse) override;

private:
    Backend* m_be;
    std::int64_t m_batch, m_capacity, m_length = 0;
    std::map<const void*, Tensor> m_slots;
};

} // namespace lathe

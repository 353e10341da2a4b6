// KvCache: slots allocated once per attention layer, appended to by contiguous copies.
#include "engine/nn/kv_cache.h"

#include "engine/core/errors.h"

namespace lathe {

KvCache::KvCache(Backend& be, std::int64_t batch, std::int64_t capacity)
    : m_be(&be), m_batch(batch), m_capacity(capacity) {
    if (batch < 1 || capacity < 1)
        throw ConfigError("kv cache: batch (" + std::to_string(batch) + ") and capacity (" + std::to_string(capacity) +
                          ") must be at least 1");
}

Tensor& KvCache::slot(const void* layer, std::int64_t rowWidth) {
    auto it = m_slots.find(layer);
    if (it == m_slots.end()) it = m_slots.emplace(layer, m_be->zeros({m_batch, m_capacity, rowWidth})).first;
    if (it->second.dim(2) != rowWidth)
        throw BackendError("kv cache: a layer's slot holds rows of " + std::to_string(it->second.dim(2)) +
                           " values, asked for " + std::to_string(rowWidth));
    return it->second;
}

void KvCache::append(const void* layer, const Tensor& rows) {
    if (rows.rank() != 3 || rows.dim(0) != m_batch)
        throw BackendError("kv cache: rows " + rows.describe() + ", expected (" + std::to_string(m_batch) + ", T, W)");
    const std::int64_t t = rows.dim(1), w = rows.dim(2);
    if (m_length + t > m_capacity)
        throw BackendError("kv cache: " + std::to_string(m_length) + " cached + " + std::to_string(t) +
                           " new tokens exceed the capacity of " + std::to_string(m_capacity));
    Tensor& s = slot(layer, w);
    const Tensor flatSlot = s.view({m_batch * m_capacity, w});
    const Tensor flatRows = rows.view({m_batch * t, w});
    for (std::int64_t n = 0; n < m_batch; ++n) {
        Tensor dst = flatSlot.slice0(n * m_capacity + m_length, n * m_capacity + m_length + t); // (T, W)
        m_be->copy(flatRows.slice0(n * t, (n + 1) * t), dst);
    }
}

void KvCache::advance(std::int64_t tokens) {
    if (tokens < 0 || m_length + tokens > m_capacity)
        throw BackendError("kv cache: cannot advance by " + std::to_string(tokens) + " from " +
                           std::to_string(m_length) + " (capacity " + std::to_string(m_capacity) + ")");
    m_length += tokens;
}

void KvCache::attend(Backend& be, const void* layer, const Tensor& x, const Tensor* keyLengths, AttentionParams p,
                     Tensor& out, Tensor& lse) {
    append(layer, x);
    const Tensor& keys = slot(layer, x.dim(2)); // (N, capacity, 3D): the cache with the step appended
    p.keyLen = m_length + x.dim(1);
    p.queryLen = x.dim(1);
    be.attentionForward(x, keys, keys, keyLengths, out, lse, p);
}

std::uint64_t KvCache::bytes() const {
    std::uint64_t b = 0;
    for (const auto& [layer, t] : m_slots) b += t.bytes();
    return b;
}

} // namespace lathe

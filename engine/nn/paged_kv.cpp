// BlockAllocator and PagedKvStore (paged_kv.h): rows are written into their blocks and gathered per sequence into
// one padded tensor that the backend's attention reads with each row's key length.
#include "engine/nn/paged_kv.h"

#include "engine/core/errors.h"

#include <algorithm>

namespace lathe {

BlockAllocator::BlockAllocator(std::int64_t blocks) {
    if (blocks < 1 || blocks > (1ll << 30))
        throw ConfigError("kv blocks: expected between 1 and 2^30 blocks, got " + std::to_string(blocks));
    const auto n = static_cast<std::size_t>(blocks);
    m_ref.assign(n, 0);
    m_hash.assign(n, 0);
    m_hashed.assign(n, 0);
    m_lruPos.resize(n);
    m_free.reserve(n);
    for (std::int64_t b = blocks - 1; b >= 0; --b) m_free.push_back(static_cast<std::int32_t>(b)); // 0 first
}

void BlockAllocator::checkId(std::int32_t block, const char* op) const {
    if (block < 0 || block >= capacity())
        throw BackendError(std::string("block allocator: ") + op + " of block " + std::to_string(block) +
                           ", outside [0, " + std::to_string(capacity()) + ")");
}

std::int32_t BlockAllocator::refCount(std::int32_t block) const {
    checkId(block, "refcount");
    return m_ref[static_cast<std::size_t>(block)];
}

std::int32_t BlockAllocator::allocate() {
    std::int32_t b = -1;
    if (!m_free.empty()) {
        b = m_free.back();
        m_free.pop_back();
    } else if (!m_lru.empty()) {
        b = m_lru.front(); // the least recently released prefix block gives way
        m_lru.pop_front();
        m_byHash.erase(m_hash[static_cast<std::size_t>(b)]);
        m_hashed[static_cast<std::size_t>(b)] = 0;
    } else {
        return -1;
    }
    m_ref[static_cast<std::size_t>(b)] = 1;
    ++m_used;
    return b;
}

void BlockAllocator::retain(std::int32_t block) {
    checkId(block, "retain");
    auto& r = m_ref[static_cast<std::size_t>(block)];
    if (r == 0) {
        if (!m_hashed[static_cast<std::size_t>(block)])
            throw BackendError("block allocator: retain of free block " + std::to_string(block));
        m_lru.erase(m_lruPos[static_cast<std::size_t>(block)]); // revived from the prefix cache
        ++m_used;
    }
    ++r;
}

void BlockAllocator::release(std::int32_t block) {
    checkId(block, "release");
    auto& r = m_ref[static_cast<std::size_t>(block)];
    if (r == 0) throw BackendError("block allocator: double free of block " + std::to_string(block));
    if (--r > 0) return;
    --m_used;
    if (m_hashed[static_cast<std::size_t>(block)]) {
        m_lruPos[static_cast<std::size_t>(block)] = m_lru.insert(m_lru.end(), block);
    } else {
        m_free.push_back(block);
    }
}

std::int32_t BlockAllocator::lookup(std::uint64_t hash) {
    const auto it = m_byHash.find(hash);
    if (it == m_byHash.end()) return -1;
    retain(it->second);
    return it->second;
}

void BlockAllocator::publish(std::int32_t block, std::uint64_t hash) {
    checkId(block, "publish");
    if (m_ref[static_cast<std::size_t>(block)] == 0)
        throw BackendError("block allocator: publish of free block " + std::to_string(block));
    if (m_hashed[static_cast<std::size_t>(block)] || m_byHash.count(hash)) return;
    m_hash[static_cast<std::size_t>(block)] = hash;
    m_hashed[static_cast<std::size_t>(block)] = 1;
    m_byHash.emplace(hash, block);
}

void BlockAllocator::checkConsistency() const {
    std::int64_t used = 0;
    std::vector<int> seen(m_ref.size(), 0);
    for (std::size_t b = 0; b < m_ref.size(); ++b) {
        if (m_ref[b] < 0) throw BackendError("block allocator: block " + std::to_string(b) + " has a negative count");
        used += m_ref[b] > 0 ? 1 : 0;
    }
    if (used != m_used)
        throw BackendError("block allocator: " + std::to_string(used) + " referenced blocks, counted " +
                           std::to_string(m_used));
    for (const std::int32_t b : m_free) {
        if (m_ref[static_cast<std::size_t>(b)] != 0 || seen[static_cast<std::size_t>(b)]++)
            throw BackendError("block allocator: free list holds block " + std::to_string(b) + " twice or in use");
        if (m_hashed[static_cast<std::size_t>(b)])
            throw BackendError("block allocator: free list holds published block " + std::to_string(b));
    }
    for (const std::int32_t b : m_lru)
        if (m_ref[static_cast<std::size_t>(b)] != 0 || seen[static_cast<std::size_t>(b)]++ ||
            !m_hashed[static_cast<std::size_t>(b)])
            throw BackendError("block allocator: prefix cache holds block " + std::to_string(b) + " wrongly");
    if (static_cast<std::int64_t>(m_free.size() + m_lru.size()) + m_used != capacity())
        throw BackendError("block allocator: " + std::to_string(m_free.size()) + " free + " +
                           std::to_string(m_lru.size()) + " cached + " + std::to_string(m_used) +
                           " used blocks != " + std::to_string(capacity()) + " (a leak)");
    for (const auto& [h, b] : m_byHash)
        if (!m_hashed[static_cast<std::size_t>(b)] || m_hash[static_cast<std::size_t>(b)] != h)
            throw BackendError("block allocator: hash index names block " + std::to_string(b) + " wrongly");
}

std::uint64_t prefixBlockHash(std::uint64_t parent, const std::int32_t* tokens, std::int64_t count) {
    std::uint64_t h = 1469598103934665603ull;
    auto mix = [&h](std::uint64_t v) {
        for (int i = 0; i < 8; ++i) {
            h ^= (v >> (8 * i)) & 0xff;
            h *= 1099511628211ull;
        }
    };
    mix(parent);
    for (std::int64_t i = 0; i < count; ++i) mix(static_cast<std::uint32_t>(tokens[i]));
    return h;
}

PagedKvStore::PagedKvStore(Backend& be, std::int64_t blocks, std::int64_t blockSize, DType dtype)
    : m_be(&be), m_blocks(blocks), m_blockSize(blockSize), m_dtype(dtype) {
    if (blocks < 1 || blockSize < 1)
        throw ConfigError("paged kv: blocks (" + std::to_string(blocks) + ") and block size (" +
                          std::to_string(blockSize) + ") must be at least 1");
    if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::Q8_0 && dtype != DType::F8E4M3)
        throw ConfigError(std::string("paged kv: blocks hold f32, f16, q8_0 (int8) or f8e4m3 (fp8), not ") + dtypeName(dtype));
}

Tensor& PagedKvStore::pool(const void* layer, std::int64_t rowWidth) {
    auto it = m_pools.find(layer);
    if (it == m_pools.end()) {
        const DTypeTraits& t = traits(m_dtype);
        if (rowWidth % t.blockSize != 0)
            throw ConfigError(std::string("paged kv: rows of ") + std::to_string(rowWidth) + " values do not split into " +
                              dtypeName(m_dtype) + " groups of " + std::to_string(t.blockSize));
        it = m_pools.emplace(layer, m_be->empty({m_blocks * m_blockSize, rowWidth}, m_dtype)).first;
    }
    if (it->second.dim(1) != rowWidth)
        throw BackendError("paged kv: a layer's pool holds rows of " + std::to_string(it->second.dim(1)) +
                           " values, asked for " + std::to_string(rowWidth));
    return it->second;
}

void PagedKvStore::attend(Backend& be, const void* layer, const Tensor& x, const Tensor*, AttentionParams p,
                          Tensor& out, Tensor& lse) {
    const std::int64_t n = x.dim(0), t = x.dim(1), w = x.dim(2);
    if (static_cast<std::int64_t>(m_rows.size()) != n)
        throw BackendError("paged kv: the batch has " + std::to_string(m_rows.size()) + " sequences, x " + x.describe());
    Tensor& pl = pool(layer, w); // (blocks * B, W)
    const Tensor rows = x.view({n * t, w});
    std::int64_t longest = 0;
    bool full = false;
    std::vector<std::int32_t> lengths(static_cast<std::size_t>(n));
    for (std::int64_t r = 0; r < n; ++r) {
        const PagedSequence& s = m_rows[static_cast<std::size_t>(r)];
        const std::int64_t real = s.count < 0 ? t : s.count;
        if (real < 1 || real > t)
            throw BackendError("paged kv: sequence " + std::to_string(r) + " has " + std::to_string(real) +
                               " real tokens of the forward's " + std::to_string(t));
        full = full || real == t;
        const std::int64_t len = s.cached + real;
        if (!s.blocks || static_cast<std::int64_t>(s.blocks->size()) * m_blockSize < len)
            throw BackendError("paged kv: sequence " + std::to_string(r) + " has no block for position " +
                               std::to_string(len - 1));
        if (t > 1 && s.cached != m_rows[0].cached)
            throw BackendError("paged kv: a forward of " + std::to_string(t) +
                               " tokens per row needs rows of equal cached lengths");
        // Store the step's real rows, block by block.
        for (std::int64_t i = 0; i < real;) {
            const std::int64_t pos = s.cached + i, off = pos % m_blockSize;
            const std::int64_t cnt = std::min(m_blockSize - off, real - i);
            const std::int64_t base = (*s.blocks)[static_cast<std::size_t>(pos / m_blockSize)] * m_blockSize + off;
            Tensor dst = pl.slice0(base, base + cnt);
            be.convert(rows.slice0(r * t + i, r * t + i + cnt), dst);
            i += cnt;
        }
        longest = std::max(longest, len);
        lengths[static_cast<std::size_t>(r)] = static_cast<std::int32_t>(len);
    }
    // Causal queries sit at the end of the longest row: a padded batch needs one row without padding.
    if (!full) throw BackendError("paged kv: every row of the forward is padded");
    // Gather each sequence's blocks into one padded (N, L, W) tensor in F32.
    Tensor keys = be.empty({n, longest, w});
    // Rows shorter than the longest leave a padded tail; zeros there, so a kernel that loads a whole tile of keys
    // before masking by length never meets uninitialised bits (a NaN pattern times a zero weight is NaN).
    if (std::any_of(lengths.begin(), lengths.end(), [&](std::int32_t l) { return l != longest; })) be.fill(keys, 0.0f);
    Tensor flat = keys.view({n * longest, w});
    for (std::int64_t r = 0; r < n; ++r) {
        const PagedSequence& s = m_rows[static_cast<std::size_t>(r)];
        const std::int64_t len = lengths[static_cast<std::size_t>(r)];
        for (std::int64_t pos = 0; pos < len;) {
            // Runs of consecutive blocks are one copy (a contiguous reservation is a single run).
            std::size_t j = static_cast<std::size_t>(pos / m_blockSize);
            std::int64_t cnt = std::min(m_blockSize, len - pos);
            while (pos + cnt < len && (*s.blocks)[j + 1] == (*s.blocks)[j] + 1) {
                ++j;
                cnt += std::min(m_blockSize, len - pos - cnt);
            }
            const std::int64_t base = (*s.blocks)[static_cast<std::size_t>(pos / m_blockSize)] * m_blockSize;
            Tensor dst = flat.slice0(r * longest + pos, r * longest + pos + cnt);
            be.convert(pl.slice0(base, base + cnt), dst);
            pos += cnt;
        }
    }
    const Tensor keyLengths = be.uploadI32(lengths, {n});
    p.queryLen = t;
    p.keyLen = longest;
    be.attentionForward(x, keys, keys, &keyLengths, out, lse, p);
}

std::uint64_t PagedKvStore::bytesPerBlock() const {
    std::uint64_t b = 0;
    for (const auto& [layer, t] : m_pools) b += t.bytes() / static_cast<std::uint64_t>(m_blocks);
    return b;
}

std::uint64_t PagedKvStore::bytes() const {
    std::uint64_t b = 0;
    for (const auto& [layer, t] : m_pools) b += t.bytes();
    return b;
}

} // namespace lathe

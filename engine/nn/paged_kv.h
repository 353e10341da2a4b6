// Paged KV memory for serving many sequences at once (PagedAttention's layout): a pool of fixed-size blocks per
// attention layer, a block table per sequence, and an allocator with reference counts so that full prompt blocks
// can be shared between requests by a hash of their content (prefix caching). Blocks hold each token's fused QKV
// row (as the contiguous KvCache does) in F32, F16, Q8_0 (INT8 with a scale per 32 values) or FP8 E4M3 (unscaled,
// saturating at +-448, as an FP8 KV cache with unit scales).
#pragma once

#include "engine/nn/kv_cache.h"

#include <cstdint>
#include <list>
#include <map>
#include <unordered_map>
#include <vector>

namespace lathe {

// Which blocks are free, referenced, or free but still holding a published prefix (kept for reuse until the
// space is needed, least recently released first). Every operation checks its block id and reference count:
// releasing a free block or retaining an unknown one throws BackendError instead of corrupting the pool.
class BlockAllocator {
public:
    explicit BlockAllocator(std::int64_t blocks);

    std::int64_t capacity() const { return static_cast<std::int64_t>(m_ref.size()); }
    std::int64_t usedBlocks() const { return m_used; }                // referenced by at least one sequence
    std::int64_t freeBlocks() const { return capacity() - m_used; }   // allocatable (cached ones included)
    std::int64_t cachedBlocks() const { return static_cast<std::int64_t>(m_lru.size()); }
    std::int32_t refCount(std::int32_t block) const;

    // A block with reference count 1 and no content hash, or -1 when every block is referenced. Takes a
    // never-published free block first, else evicts the least recently released cached one.
    std::int32_t allocate();
    void retain(std::int32_t block);
    // Drops one reference; at 0 the block is free (and stays findable by lookup while it keeps its hash).
    void release(std::int32_t block);

    // Prefix caching: the block published under `hash`, retained for the caller, or -1.
    std::int32_t lookup(std::uint64_t hash);
    // Block (referenced, full) now holds the content `hash` stands for; a hash already published keeps its block.
    void publish(std::int32_t block, std::uint64_t hash);

    // Recounts every list against the reference counts; throws BackendError naming the first disagreement.
    void checkConsistency() const;

private:
    void checkId(std::int32_t block, const char* op) const;

    std::vector<std::int32_t> m_ref;
    std::vector<std::uint64_t> m_hash;
    std::vector<char> m_hashed;
    std::vector<std::int32_t> m_free; // free, never published (or unpublished on eviction)
    std::list<std::int32_t> m_lru;    // free but published, least recently released first
    std::vector<std::list<std::int32_t>::iterator> m_lruPos;
    std::unordered_map<std::uint64_t, std::int32_t> m_byHash;
    std::int64_t m_used = 0;
};

// The hash of a full block of tokens following the block chain `parent` (0 for the first block): equal hashes
// stand for equal prefixes (FNV-1a over the parent hash and the ids).
std::uint64_t prefixBlockHash(std::uint64_t parent, const std::int32_t* tokens, std::int64_t count);

// One sequence of a forward as the store sees it: its block table, the tokens already stored, and how many of
// the forward's T new tokens are real (-1: all T; fewer: the row is right-padded and its padding is neither
// stored nor attended to).
struct PagedSequence {
    const std::vector<std::int32_t>* blocks = nullptr;
    std::int64_t cached = 0;
    std::int64_t count = -1;
};

// The pools of every attention layer and the batch of the next forward. A forward with T > 1 new tokens per
// row (prefill chunks) needs rows that all hold the same number of cached tokens, at least one of them with all
// T tokens real (prefills of new sequences batched together); decoding steps (T = 1) mix any lengths.
class PagedKvStore final : public KvStore {
public:
    PagedKvStore(Backend& be, std::int64_t blocks, std::int64_t blockSize, DType dtype);

    std::int64_t blocks() const { return m_blocks; }
    std::int64_t blockSize() const { return m_blockSize; }
    DType dtype() const { return m_dtype; }
    // The sequences of the next forward, one per row of its input, in order; their tables must hold blocks for
    // positions [0, cached + T).
    void setBatch(std::vector<PagedSequence> rows) { m_rows = std::move(rows); }

    void attend(Backend& be, const void* layer, const Tensor& x, const Tensor* keyLengths, AttentionParams p,
                Tensor& out, Tensor& lse) override;

    // Bytes of one block over every layer seen so far (the pools are allocated on a layer's first forward).
    std::uint64_t bytesPerBlock() const;
    std::uint64_t bytes() const; // every pool
    int layers() const { return static_cast<int>(m_pools.size()); }

private:
    Tensor& pool(const void* layer, std::int64_t rowWidth);

    Backend* m_be;
    std::int64_t m_blocks, m_blockSize;
    DType m_dtype;
    std::map<const void*, Tensor> m_pools; // (blocks * blockSize, W) of m_dtype per attention layer
    std::vector<PagedSequence> m_rows;
};

} // namespace lathe

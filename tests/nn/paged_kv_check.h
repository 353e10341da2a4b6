// Paged attention against contiguous attention on the same sequences (issue 15), shared by the CPU test and the
// CUDA one: random fused QKV rows for sequences of different lengths are fed through a contiguous KvCache one
// sequence at a time, and through a PagedKvStore whose blocks are scattered in the pool (the prompts' first
// chunks as one right-padded forward, their other chunks alone, then batched decoding steps of every sequence
// at its own length); every step's outputs on real tokens must agree.
#pragma once

#include "engine/core/rng.h"
#include "engine/nn/paged_kv.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>

namespace lathe::test {

// The largest |a - b| over both outputs' elements.
inline double maxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
    double m = a.size() == b.size() ? 0.0 : 1e30;
    for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
    return m;
}

// Returns the largest difference seen between paged and contiguous outputs (F32 blocks), over prefills of
// `prompts` tokens in chunks of `chunk` and `steps` decoding steps of all sequences at once.
inline double pagedVersusContiguous(Backend& be, DType blockType, std::int64_t blockSize = 4) {
    const std::int64_t heads = 2, headDim = 16, d = heads * headDim, w = 3 * d; // rows of 96: whole Q8_0 groups
    const std::vector<std::int64_t> prompts = {5, 9, 1, 12};
    const std::int64_t steps = 6, chunk = 4, capacity = 32;
    const auto n = static_cast<std::int64_t>(prompts.size());
    Rng rng(7);
    auto randomRows = [&](std::int64_t rows) {
        std::vector<float> v(static_cast<std::size_t>(rows * w));
        for (auto& x : v) x = rng.normal();
        return v;
    };
    AttentionParams p;
    p.heads = heads;
    p.headDim = headDim;
    p.kOffset = d;
    p.vOffset = 2 * d;
    p.causal = true;
    const int layer = 0; // the pools' key
    // Scattered block tables: the pool's blocks shuffled among the sequences.
    const std::int64_t perSeq = capacity / blockSize, blocks = n * perSeq;
    std::vector<std::int32_t> order(static_cast<std::size_t>(blocks));
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937(3));
    std::vector<std::vector<std::int32_t>> tables(static_cast<std::size_t>(n));
    for (std::int64_t s = 0; s < n; ++s)
        tables[static_cast<std::size_t>(s)].assign(order.begin() + s * perSeq, order.begin() + (s + 1) * perSeq);
    PagedKvStore paged(be, blocks, blockSize, blockType);
    std::vector<std::unique_ptr<KvCache>> contiguous;
    for (std::int64_t s = 0; s < n; ++s) contiguous.push_back(std::make_unique<KvCache>(be, 1, capacity));
    std::vector<std::int64_t> cached(static_cast<std::size_t>(n), 0);
    double worst = 0;
    // counts: the real tokens of each row (right padding after them); empty: all t.
    auto attendBoth = [&](const std::vector<std::int64_t>& rowsOf, std::int64_t t, const std::vector<float>& x,
                          std::vector<std::int64_t> counts = {}) {
        const auto m = static_cast<std::int64_t>(rowsOf.size());
        if (counts.empty()) counts.assign(static_cast<std::size_t>(m), t);
        // Paged: all rows in one call.
        std::vector<PagedSequence> rows;
        for (std::size_t r = 0; r < rowsOf.size(); ++r)
            rows.push_back({&tables[static_cast<std::size_t>(rowsOf[r])], cached[static_cast<std::size_t>(rowsOf[r])],
                            counts[r]});
        paged.setBatch(rows);
        Tensor xt = be.upload(x, {m, t, w});
        Tensor out = be.empty({m, t, d}), lse = be.empty({m, heads, t});
        paged.attend(be, &layer, xt, nullptr, p, out, lse);
        const std::vector<float> got = be.downloadF32(out);
        // Contiguous: each sequence alone.
        for (std::int64_t r = 0; r < m; ++r) {
            KvCache& c = *contiguous[static_cast<std::size_t>(rowsOf[static_cast<std::size_t>(r)])];
            const std::int64_t k = counts[static_cast<std::size_t>(r)];
            std::vector<float> xr(x.begin() + r * t * w, x.begin() + (r * t + k) * w);
            Tensor o = be.empty({1, k, d}), l = be.empty({1, heads, k});
            c.attend(be, &layer, be.upload(xr, {1, k, w}), nullptr, p, o, l);
            c.advance(k);
            const std::vector<float> want = be.downloadF32(o);
            const std::vector<float> mine(got.begin() + r * t * d, got.begin() + (r * t + k) * d); // real rows only
            worst = std::max(worst, maxAbsDiff(mine, want));
            cached[static_cast<std::size_t>(rowsOf[static_cast<std::size_t>(r)])] += k;
        }
    };
    std::vector<std::int64_t> all(static_cast<std::size_t>(n));
    std::iota(all.begin(), all.end(), 0);
    // The first chunk of every prompt as one right-padded forward (all start at position 0), the rest alone.
    std::vector<std::int64_t> firsts;
    for (auto len : prompts) firsts.push_back(std::min(chunk, len));
    attendBoth(all, *std::max_element(firsts.begin(), firsts.end()), randomRows(n * chunk), firsts);
    for (std::int64_t s = 0; s < n; ++s)
        for (std::int64_t from = firsts[static_cast<std::size_t>(s)]; from < prompts[static_cast<std::size_t>(s)]; from += chunk) {
            const std::int64_t t = std::min(chunk, prompts[static_cast<std::size_t>(s)] - from);
            attendBoth({s}, t, randomRows(t));
        }
    for (std::int64_t k = 0; k < steps; ++k) attendBoth(all, 1, randomRows(n));
    return worst;
}

} // namespace lathe::test

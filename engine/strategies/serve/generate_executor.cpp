// ModelGenExecutor (generate_executor.h).
#include "engine/strategies/serve/generate_executor.h"

#include "engine/core/clock.h"
#include "engine/core/errors.h"

#include <algorithm>
#include <cmath>

namespace lathe::serve {

ModelGenExecutor::ModelGenExecutor(Model& model, PagedKvStore& store)
    : m_model(model), m_be(*model.backend()), m_store(store) {}

Tensor ModelGenExecutor::forwardRows(const std::vector<std::int32_t>& ids, std::int64_t n, std::int64_t t,
                                     const std::vector<PagedSequence>& rows, const std::vector<std::int32_t>* positions) {
    auto seq = std::make_shared<SequenceBatch>();
    seq->batch = n;
    seq->length = t;
    seq->positionOffset = rows.front().cached;
    if (positions) seq->positionIds = m_be.uploadI32(*positions, {n * t});
    ForwardContext ctx;
    ctx.sequence = seq;
    ctx.kvCache = &m_store;
    m_store.setBatch(rows);
    return m_model.forward(m_be.uploadI32(ids, {n, t}), ctx); // (N, T, V)
}

double ModelGenExecutor::run(const std::vector<SeqWork>& prefill, const std::vector<SeqWork>& decode,
                             std::vector<std::int32_t>& next) {
    const double t0 = steadyClockMs();
    next.clear();
    const std::int64_t v = m_model.numClasses();
    // Prefill chunks that start at the same position run as one right-padded forward.
    std::vector<std::int32_t> chosen(prefill.size(), -1);
    std::vector<char> done(prefill.size(), 0);
    for (std::size_t a = 0; a < prefill.size(); ++a) {
        if (done[a]) continue;
        std::vector<std::size_t> group;
        std::int64_t t = 0;
        for (std::size_t b = a; b < prefill.size(); ++b)
            if (!done[b] && prefill[b].from == prefill[a].from) {
                group.push_back(b);
                done[b] = 1;
                t = std::max(t, prefill[b].count);
            }
        const auto n = static_cast<std::int64_t>(group.size());
        std::vector<std::int32_t> ids(static_cast<std::size_t>(n * t), 0);
        std::vector<PagedSequence> rows;
        for (std::int64_t r = 0; r < n; ++r) {
            const SeqWork& w = prefill[group[static_cast<std::size_t>(r)]];
            std::copy(w.tokens->begin() + w.from, w.tokens->begin() + w.from + w.count, ids.begin() + r * t);
            rows.push_back({w.blocks, w.from, w.count});
        }
        const Tensor logits = forwardRows(ids, n, t, rows, nullptr); // (N, T, V)
        const Tensor flat = logits.view({n * t, v});
        for (std::int64_t r = 0; r < n; ++r) {
            const SeqWork& w = prefill[group[static_cast<std::size_t>(r)]];
            if (!w.emits) continue;
            Tensor best = m_be.empty({1}, DType::I32);
            m_be.argmaxRows(flat.slice0(r * t + w.count - 1, r * t + w.count), best);
            chosen[group[static_cast<std::size_t>(r)]] = static_cast<std::int32_t>(m_be.downloadF32(best)[0]);
        }
    }
    for (std::size_t i = 0; i < prefill.size(); ++i)
        if (prefill[i].emits) next.push_back(chosen[i]);
    if (!decode.empty()) {
        const auto n = static_cast<std::int64_t>(decode.size());
        std::vector<std::int32_t> ids, positions;
        std::vector<PagedSequence> rows;
        for (const SeqWork& w : decode) {
            ids.push_back((*w.tokens)[static_cast<std::size_t>(w.from)]);
            positions.push_back(static_cast<std::int32_t>(w.from));
            rows.push_back({w.blocks, w.from});
        }
        const Tensor logits = forwardRows(ids, n, 1, rows, &positions);
        Tensor best = m_be.empty({n}, DType::I32);
        m_be.argmaxRows(logits.view({n, v}), best);
        for (const float c : m_be.downloadF32(best)) next.push_back(static_cast<std::int32_t>(c));
    }
    m_be.synchronize();
    return steadyClockMs() - t0;
}

double ModelGenExecutor::windowLossNats(
    const std::vector<std::int32_t>& ids, const std::vector<std::int32_t>& labels, std::int64_t windows,
    std::int64_t length, const std::function<std::int64_t(const std::vector<std::int32_t>&, std::int64_t)>& chunkOf) {
    const std::int64_t v = m_model.numClasses();
    const std::int64_t blocksNeeded = (length + m_store.blockSize() - 1) / m_store.blockSize();
    if (blocksNeeded > m_store.blocks())
        throw ConfigError("serve.generate: the KV pool holds fewer blocks than one evaluation window needs");
    std::vector<std::int32_t> table(static_cast<std::size_t>(blocksNeeded));
    for (std::int64_t b = 0; b < blocksNeeded; ++b) table[static_cast<std::size_t>(b)] = static_cast<std::int32_t>(b);
    double sum = 0;
    std::int64_t count = 0;
    for (std::int64_t w = 0; w < windows; ++w) {
        const std::vector<std::int32_t> window(ids.begin() + w * length, ids.begin() + (w + 1) * length);
        for (std::int64_t from = 0; from < length;) {
            const std::int64_t t = std::clamp<std::int64_t>(chunkOf(window, from), 1, length - from);
            const std::vector<std::int32_t> part(window.begin() + from, window.begin() + from + t);
            const std::vector<float> logits = m_be.downloadF32(forwardRows(part, 1, t, {{&table, from}}, nullptr));
            for (std::int64_t i = 0; i < t; ++i) {
                const float* row = logits.data() + i * v;
                const float m = *std::max_element(row, row + v);
                double z = 0;
                for (std::int64_t k = 0; k < v; ++k) z += std::exp(static_cast<double>(row[k] - m));
                const std::int32_t y = labels[static_cast<std::size_t>(w * length + from + i)];
                sum += std::log(z) + m - row[y];
                ++count;
            }
            from += t;
        }
    }
    return count ? sum / static_cast<double>(count) : 0.0;
}

} // namespace lathe::serve

// Executes serve.generate's iterations on a token model (gpt-char) with its KV in a PagedKvStore: each prefill
// chunk as its own forward (one sequence, positions from its cached length), the decode rows as one batched
// forward with each row's own position and key length; greedy choice of the next token.
#pragma once

#include "engine/nn/model.h"
#include "engine/strategies/serve/generate_scheduler.h"

namespace lathe::serve {

class ModelGenExecutor final : public GenExecutor {
public:
    ModelGenExecutor(Model& model, PagedKvStore& store);
    double run(const std::vector<SeqWork>& prefill, const std::vector<SeqWork>& decode,
               std::vector<std::int32_t>& next) override;

    // Teacher-forced loss of the next token over windows (N, T) of ids with their labels, each window fed in the
    // chunks `chunkOf(window, from)` gives (the whole window when it returns the rest) through the store: every
    // key and value is read back from the blocks, so the perplexity shows what the store's dtype costs.
    double windowLossNats(const std::vector<std::int32_t>& ids, const std::vector<std::int32_t>& labels,
                          std::int64_t windows, std::int64_t length,
                          const std::function<std::int64_t(const std::vector<std::int32_t>&, std::int64_t)>& chunkOf);

private:
    Tensor forwardRows(const std::vector<std::int32_t>& ids, std::int64_t n, std::int64_t t,
                       const std::vector<PagedSequence>& rows, const std::vector<std::int32_t>* positions);

    Model& m_model;
    Backend& m_be;
    PagedKvStore& m_store;
};

} // namespace lathe::serve

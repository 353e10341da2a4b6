// `prune.nm`: semi-structured N:M sparsity (2:4 by default, the pattern sparse tensor cores run): in every
// group of M consecutive inputs of each output row of a Linear or Conv2d weight, the N of largest
// magnitude are kept and the rest set to zero; a mask keeps them zero through later training. With
// `execution` auto, each pruned Linear then runs through its 2:4 or CSR copy where that was timed faster
// (sparse_paths.h); Conv2d weights always stay dense (no sparse convolution kernel).
#include "engine/strategies/prune/pruning.h"
#include "engine/strategies/prune/sparse_paths.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace lathe::prune {

void zeroNmGroups(std::vector<float>& weight, std::int64_t rowLength, int n, int m) {
    if (rowLength <= 0 || weight.size() % static_cast<std::size_t>(rowLength) != 0)
        throw ConfigError("prune.nm: a weight of " + std::to_string(weight.size()) + " values is not made of rows of " +
                          std::to_string(rowLength));
    std::vector<int> order(static_cast<std::size_t>(m));
    for (std::size_t row = 0; row < weight.size(); row += static_cast<std::size_t>(rowLength)) {
        for (std::int64_t start = 0; start < rowLength; start += m) {
            float* g = weight.data() + row + static_cast<std::size_t>(start);
            const int size = static_cast<int>(std::min<std::int64_t>(m, rowLength - start));
            const int keep = std::min(n, size);
            if (keep == size) continue;
            order.resize(static_cast<std::size_t>(size));
            std::iota(order.begin(), order.end(), 0);
            std::partial_sort(order.begin(), order.begin() + keep, order.end(), [g](int a, int b) {
                const float fa = std::fabs(g[a]), fb = std::fabs(g[b]);
                return fa > fb || (fa == fb && a < b);
            });
            for (auto it = order.begin() + keep; it != order.end(); ++it) g[*it] = 0.0f;
        }
    }
}

namespace {

struct NmParams {
    int n = 2;
    int m = 4;
    LayerSelection layers = LayerSelection::All;
    ExecutionParams execution;
};

std::string nmProblem(int n, int m) {
    if (n > m) return "N = " + std::to_string(n) + " is larger than M = " + std::to_string(m) +
                      ": a group of M weights cannot keep more than M";
    return {};
}

class NmPrune final : public Strategy {
public:
    explicit NmPrune(NmParams p) : m_params(p) {}

    void apply(StepContext& ctx) override {
        if (const std::string problem = nmProblem(m_params.n, m_params.m); !problem.empty())
            throw ConfigError("prune.nm: " + problem);
        Backend& be = ctx.backend();
        const auto weights = prunableWeights(ctx.model(), m_params.layers);
        if (weights.empty()) throw ConfigError("prune.nm: the model has no Linear or Conv2d weights to prune");
        auto host = downloadWeights(be, weights);
        bool partial = false;
        for (std::size_t i = 0; i < weights.size(); ++i) {
            const Shape& shape = weights[i].param->value.shape();
            const std::int64_t rowLength = weights[i].param->value.numel() / shape[0]; // in, or C*KH*KW
            partial = partial || rowLength % m_params.m != 0;
            zeroNmGroups(host[i], rowLength, m_params.n, m_params.m);
        }
        auto masks = std::make_shared<std::vector<Mask>>();
        const std::string pattern = std::to_string(m_params.n) + ":" + std::to_string(m_params.m);
        const SparsityCount count = uploadPruned(be, weights, host, *masks);
        reportLayerSparsity(ctx, weights, host);
        keepMasks(ctx, "prune.nm", masks);
        if (partial)
            ctx.info("prune.nm: an input dimension is not a multiple of " + std::to_string(m_params.m) +
                     ": its last partial group keeps its min(N, size) largest weights");
        reportSparsity(ctx, "prune.nm (" + pattern + ")", count);
        chooseSparsePaths(ctx, m_params.execution, "prune.nm");
        std::size_t convolutions = 0;
        for (const auto& w : weights) convolutions += w.param->value.rank() == 4 ? 1 : 0;
        if (convolutions > 0)
            ctx.notes()["sparse_paths"] += "; " + std::to_string(convolutions) +
                                           " Conv2d weight(s) pruned and run dense (no sparse convolution kernel)";
    }

private:
    NmParams m_params;
};

} // namespace

void registerNmPrune(StrategyRegistry& registry) {
    SchemaBuilder<NmParams> b("prune.nm", "prune",
                              "semi-structured N:M sparsity: keep the N largest of every M consecutive inputs (2:4)");
    b.integer("n", &NmParams::n, 2, {.min = 1, .max = 64, .help = "weights kept in each group (N <= M)"});
    b.integer("m", &NmParams::m, 4,
              {.min = 2, .max = 64, .help = "group size: consecutive inputs of one output row (a Conv2d's C*KH*KW)"});
    b.choice("layers", &NmParams::layers, {{"all", LayerSelection::All}, {"all_but_last", LayerSelection::AllButLast}},
             LayerSelection::All, "prune every Linear and Conv2d weight, or all but the last (the classifier)");
    executionFields(b, &NmParams::execution);
    b.checkModel([](const NmParams& p, ModelCheck& c) {
        if (const std::string problem = nmProblem(p.n, p.m); !problem.empty()) c.issue("n", problem);
    });
    registry.add(b, [](const NmParams& p) { return std::make_unique<NmPrune>(p); });
}

} // namespace lathe::prune

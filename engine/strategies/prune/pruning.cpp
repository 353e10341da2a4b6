// The `prune` family's shared parts: prunable weights, magnitude selection, masks and the hook that keeps
// them through later training, the sparsity figures every pruning step reports, and the before/after timing of the
// steps that shrink the model.
#include "engine/strategies/prune/pruning.h"

#include "engine/measure/flops.h"
#include "engine/strategies/measure/side_by_side.h"

#include <algorithm>
#include <cmath>

namespace lathe::prune {

std::vector<NamedParameter> prunableWeights(Model& model) {
    std::vector<NamedParameter> out;
    for (const auto& np : model.namedParameters())
        if (np.param->value.rank() >= 2 && np.param->value.dtype() == DType::F32 &&
            np.name.size() > 7 && np.name.ends_with(".weight"))
            out.push_back(np);
    return out;
}

std::vector<NamedParameter> prunableWeights(Model& model, LayerSelection which) {
    auto out = prunableWeights(model);
    if (which == LayerSelection::AllButLast && !out.empty()) out.pop_back();
    return out;
}

std::vector<std::vector<float>> downloadWeights(Backend& be, const std::vector<NamedParameter>& weights) {
    std::vector<std::vector<float>> host;
    host.reserve(weights.size());
    for (const auto& w : weights) host.push_back(be.downloadF32(w.param->value));
    return host;
}

void zeroSmallest(std::vector<float*>& refs, std::size_t count) {
    count = std::min(count, refs.size());
    if (count == 0) return;
    std::nth_element(refs.begin(), refs.begin() + static_cast<std::ptrdiff_t>(count - 1), refs.end(),
                     [](const float* a, const float* b) {
                         const float fa = std::fabs(*a), fb = std::fabs(*b);
                         return fa < fb || (fa == fb && a < b);
                     });
    for (std::size_t i = 0; i < count; ++i) *refs[i] = 0.0f;
}

void zeroSmallestFraction(std::vector<std::vector<float>>& host, double sparsity, PruneScope scope) {
    auto count = [sparsity](std::size_t n) { return static_cast<std::size_t>(std::floor(sparsity * double(n))); };
    if (scope == PruneScope::Global) {
        std::vector<float*> all;
        for (auto& h : host)
            for (auto& v : h) all.push_back(&v);
        zeroSmallest(all, count(all.size()));
        return;
    }
    for (auto& h : host) {
        std::vector<float*> refs;
        refs.reserve(h.size());
        for (auto& v : h) refs.push_back(&v);
        zeroSmallest(refs, count(h.size()));
    }
}

void applyMasks(Model& model, const std::vector<Mask>& masks, bool gradients) {
    if (masks.empty()) return;
    for (const auto& np : model.namedParameters())
        for (const auto& m : masks)
            if (m.name == np.name && m.keep.shape() == np.param->value.shape()) {
                Tensor& t = gradients ? np.param->grad : np.param->value;
                if (t.defined()) model.backend()->mul(t, m.keep, t);
            }
}

SparsityCount countZeros(const std::vector<float>& host) {
    return {static_cast<double>(std::count(host.begin(), host.end(), 0.0f)), static_cast<double>(host.size())};
}

SparsityCount countZeros(const std::vector<std::vector<float>>& host) {
    SparsityCount c;
    for (const auto& h : host) {
        const SparsityCount one = countZeros(h);
        c.zeros += one.zeros;
        c.total += one.total;
    }
    return c;
}

SparsityCount uploadPruned(Backend& be, const std::vector<NamedParameter>& weights,
                           const std::vector<std::vector<float>>& host, std::vector<Mask>& masks) {
    masks.clear();
    for (std::size_t i = 0; i < weights.size(); ++i) {
        Tensor& value = weights[i].param->value;
        be.copyFromHost(value, host[i].data());
        std::vector<float> keep(host[i].size());
        for (std::size_t j = 0; j < keep.size(); ++j) keep[j] = host[i][j] == 0.0f ? 0.0f : 1.0f;
        masks.push_back({weights[i].name, be.upload(keep, value.shape())});
    }
    be.synchronize();
    return countZeros(host);
}

void reportLayerSparsity(const StepContext& ctx, const std::vector<NamedParameter>& weights,
                         const std::vector<std::vector<float>>& host) {
    for (std::size_t i = 0; i < weights.size(); ++i)
        ctx.addLayerStat(weights[i].name, "sparsity", countZeros(host[i]).fraction());
}

void keepMasks(const StepContext& ctx, const std::string& owner, MaskSet masks) {
    ctx.addTrainHook({owner, [masks](Model& m) { applyMasks(m, *masks, true); },
                      [masks](Model& m) { applyMasks(m, *masks, false); }});
}

void reportSparsity(const StepContext& ctx, const std::string& owner, const SparsityCount& count) {
    ctx.summary()["sparsity"] = count.fraction();
    auto& note = ctx.notes()["sparse_kernels"];
    if (note.empty())
        note = "the pruned weights are stored and multiplied as dense zeros: sparsity makes this model no "
               "faster by itself (no sparse kernel runs)";
    ctx.info(owner + ": " + std::to_string(static_cast<long long>(count.zeros)) + " of " +
             std::to_string(static_cast<long long>(count.total)) + " weights are zero");
}

BeforeShrinking measureBeforeShrinking(StepContext& ctx, const MeasureSettings& settings, const std::string& step,
                                       double from, double to) {
    BeforeShrinking b;
    b.flops = forwardFlopsPerSample(ctx.model());
    b.params = static_cast<double>(ctx.model().parameterCount());
    b.outcome = measureLabelled(ctx, settings, step, "original", from, to);
    return b;
}

void reportShrunk(StepContext& ctx, const MeasureSettings& settings, const std::string& step,
                  const BeforeShrinking& before, double from, double to) {
    ctx.backend().synchronize();
    const double flopsAfter = forwardFlopsPerSample(ctx.model());
    const MeasureOutcome after = measureLabelled(ctx, settings, step, "pruned", from, to);
    const double realized =
        reportSideBySide(ctx, settings, {"original", "pruned", before.outcome, after, before.flops, flopsAfter});
    ctx.summary()["original.params"] = before.params;
    ctx.info(step + ": FLOPs per sample " + std::to_string(static_cast<long long>(before.flops)) + " -> " +
             std::to_string(static_cast<long long>(flopsAfter)) +
             (realized > 0 ? ", realized speedup " + std::to_string(realized) : ""));
}

} // namespace lathe::prune

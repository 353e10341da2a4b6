// What the `prune` family's strategies share: which weights are prunable, magnitude selection on host
// copies, the masks that keep pruned weights at exactly zero through later training, and the figures a
// pruning step reports (per-layer and overall sparsity, the note that dense kernels still multiply zeros).
#pragma once

#include "engine/measure/model_measure.h"
#include "engine/strategies/strategy.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lathe::prune {

enum class PruneScope { Layer, Global };

// Which weights a structured pattern applies to: every prunable one, or all but the last (the classifier).
enum class LayerSelection { All, AllButLast };

// The prunable weights: matrices and convolution kernels (rank >= 2), not biases or norm scales.
std::vector<NamedParameter> prunableWeights(Model& model);
std::vector<NamedParameter> prunableWeights(Model& model, LayerSelection which);

// Host copies of the weights, in the same order.
std::vector<std::vector<float>> downloadWeights(Backend& be, const std::vector<NamedParameter>& weights);

// Zeroes the `count` entries of smallest magnitude among `refs` (ties broken by position, so the result
// does not depend on the sort's stability).
void zeroSmallest(std::vector<float*>& refs, std::size_t count);

// Unstructured magnitude pruning of host copies: floor(sparsity * n) zeros, counted over all weights
// together (Global) or in each weight (Layer). Weights already zero count among the smallest.
void zeroSmallestFraction(std::vector<std::vector<float>>& host, double sparsity, PruneScope scope);

// N:M semi-structured pruning of one host weight laid out as rows of `rowLength` inputs (a Linear's
// (out, in), a Conv2d's (out, C*KH*KW)): in each group of `m` consecutive inputs of a row, the `n` of
// largest magnitude are kept (ties: the earlier one) and the rest set to zero. A last partial group of
// g < m inputs keeps min(n, g).
void zeroNmGroups(std::vector<float>& weight, std::int64_t rowLength, int n, int m);

// 1 where a weight is kept, 0 where it was pruned; on the model's backend.
struct Mask {
    std::string name;
    Tensor keep;
};
using MaskSet = std::shared_ptr<std::vector<Mask>>;

// Multiplies each parameter a mask names (same name and shape) by it: its gradient or its value. A layer
// replaced since (another shape under the same name) is no longer the mask's business.
void applyMasks(Model& model, const std::vector<Mask>& masks, bool gradients);

struct SparsityCount {
    double zeros = 0;
    double total = 0;
    double fraction() const { return total > 0 ? zeros / total : 0.0; }
};
// Uploads the pruned host copies into the weights and replaces `masks` with their zero patterns (1 where
// a host value is nonzero); returns the zeros over all of them.
SparsityCount uploadPruned(Backend& be, const std::vector<NamedParameter>& weights,
                           const std::vector<std::vector<float>>& host, std::vector<Mask>& masks);

// Zero count of host copies (overall), and "sparsity" per weight as a layer stat.
SparsityCount countZeros(const std::vector<float>& host);
SparsityCount countZeros(const std::vector<std::vector<float>>& host);
void reportLayerSparsity(const StepContext& ctx, const std::vector<NamedParameter>& weights,
                         const std::vector<std::vector<float>>& host);

// Keeps the masks for every later training phase of the run: gradients masked after backward, weights
// after each update (an optimizer with momentum or weight decay would otherwise move them).
void keepMasks(const StepContext& ctx, const std::string& owner, MaskSet masks);

// The summary's `sparsity`, and the note that says what it does not mean: dense kernels still multiply
// the zeros, so the step makes the model no faster by itself.
void reportSparsity(const StepContext& ctx, const std::string& owner, const SparsityCount& count);

// The `scope` field of a magnitude-pruning strategy (one declaration for all of them).
template <class Params>
void scopeField(SchemaBuilder<Params>& b, PruneScope Params::*member) {
    b.choice("scope", member, {{"layer", PruneScope::Layer}, {"global", PruneScope::Global}}, PruneScope::Global,
             "one threshold over all layers (global) or the same fraction in each layer (layer)");
}

// Registration of the family's strategies beyond prune.magnitude (one source per strategy).
void registerNmPrune(StrategyRegistry& registry);
void registerGradualPrune(StrategyRegistry& registry);
void registerSensitivitySweep(StrategyRegistry& registry);
void registerStructuredPrune(StrategyRegistry& registry);
void registerHeadPrune(StrategyRegistry& registry);

// prune.structured's ranking: L1 (or L2) norm of each output row of a weight laid out as (out, rowLength), and
// the units a layer keeps: all but floor(ratio * n) of smallest norm, at least min(minChannels, n), ascending.
std::vector<double> rowNorms(const std::vector<float>& weight, std::int64_t out, bool l2);
std::vector<std::int64_t> keptUnits(const std::vector<double>& norms, double ratio, std::int64_t minChannels);

// prune.heads' selection from importance[layer][head] (higher: kept longer): Global removes the globalCount least
// important heads of all layers, never a layer's last one (the next least important elsewhere goes instead);
// Layer removes perLayerCount[i] of layer i's. Ties go by position (earlier layer, then earlier head, first).
// Returns the removed heads of each layer, ascending; ConfigError when a layer would lose every head.
std::vector<std::vector<std::int64_t>> headsToRemove(const std::vector<std::vector<double>>& importance,
                                                     PruneScope scope, std::int64_t globalCount,
                                                     const std::vector<std::int64_t>& perLayerCount);

// The steps that shrink the model (prune.structured, prune.heads) time and evaluate it right before ("original") and
// after ("pruned") and store both side by side (side_by_side.h). measureBeforeShrinking takes the first half with
// the model's FLOPs and parameter count; reportShrunk the second, writes `original.params` and logs the FLOPs and
// the realized speedup. Progress maps into [from, to] of the step's.
struct BeforeShrinking {
    MeasureOutcome outcome;
    double flops = 0, params = 0;
};
BeforeShrinking measureBeforeShrinking(StepContext& ctx, const MeasureSettings& settings, const std::string& step,
                                       double from, double to);
void reportShrunk(StepContext& ctx, const MeasureSettings& settings, const std::string& step,
                  const BeforeShrinking& before, double from, double to);

} // namespace lathe::prune

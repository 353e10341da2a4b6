// `prune.heads`: removes whole attention heads, those that matter least by the entropy of their attention or by
// the gradient of the loss with respect to a gate on their output (head_importance.h), over all layers at once or
// the same share in each layer. The heads' Q, K, V rows and output-projection columns are removed (ModelEditor), so
// the model is smaller and faster; the step times it before and after, side by side.
#include "engine/backends/registry.h"
#include "engine/core/errors.h"
#include "engine/nn/model_edit.h"
#include "engine/strategies/measure/measure_fields.h"
#include "engine/strategies/prune/head_importance.h"
#include "engine/strategies/prune/pruning.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>
#include <tuple>

namespace lathe::prune {
namespace {

enum class HeadScore { Gradient, Entropy };
enum class CalibrationSplit { Evaluated, Train };

struct HeadPruneParams {
    double fraction = 0.25;
    std::int64_t count = 0;
    PruneScope scope = PruneScope::Global;
    HeadScore score = HeadScore::Gradient;
    std::int64_t calibrationSamples = 64;
    std::int64_t calibrationBatch = 8;
    CalibrationSplit calibrationSplit = CalibrationSplit::Evaluated;
    MeasureSettings measure;
};

const char* kStep = "prune.heads";

// The heads a request removes: floor(fraction x heads) (of all heads, or of each layer's), or `count` when set.
// A request that would leave a layer without a head is refused at the field that made it, naming the numbers.
struct Removal {
    std::int64_t global = 0;           // scope global
    std::vector<std::int64_t> perSite; // scope layer
    std::string field, problem;        // where and why the request cannot be met ("" when it can)
};

Removal removalFor(const HeadPruneParams& p, const std::vector<AttentionSite>& sites) {
    Removal r;
    r.field = p.count > 0 ? "count" : "fraction";
    std::ostringstream fraction;
    fraction << p.fraction;
    const std::string asked = p.count > 0 ? "count " + std::to_string(p.count) : "fraction " + fraction.str();
    if (p.scope == PruneScope::Global) {
        std::int64_t total = 0;
        for (const AttentionSite& s : sites) total += s.heads;
        r.global = p.count > 0 ? p.count : static_cast<std::int64_t>(std::floor(p.fraction * double(total)));
        const std::int64_t most = total - static_cast<std::int64_t>(sites.size());
        if (r.global > most)
            r.problem = std::string(kStep) + ": " + asked + " removes " + std::to_string(r.global) + " of the " +
                        std::to_string(total) + " heads, but each of the " + std::to_string(sites.size()) +
                        " attention layers keeps at least one, so at most " + std::to_string(most) + " can go";
        return r;
    }
    for (const AttentionSite& s : sites) {
        const std::int64_t n = p.count > 0 ? p.count : static_cast<std::int64_t>(std::floor(p.fraction * double(s.heads)));
        r.perSite.push_back(n);
        if (n >= s.heads && r.problem.empty())
            r.problem = std::string(kStep) + ": " + asked + " removes " + std::to_string(n) + " heads of " + s.path +
                        ", which has " + std::to_string(s.heads) + "; an attention layer keeps at least one head";
    }
    return r;
}

std::string noSiteMessage(const std::string& model, const std::vector<std::string>& problems) {
    std::string m = std::string(kStep) + ": the model " + model +
                    " has no attention layer between a fused QKV linear and an output linear, so it has no head to remove";
    for (const std::string& p : problems) m += "; " + p;
    return m;
}

void checkHeads(const HeadPruneParams& p, ModelCheck& check) {
    if (!check.model || check.model->architecture.is_null()) return;
    auto model = Model::fromArchitecture(check.model->architecture);
    std::vector<std::string> problems;
    const auto sites = attentionSites(*model, &problems);
    if (sites.empty()) {
        check.issue("", noSiteMessage(model->name(), problems));
        return;
    }
    if (const Removal r = removalFor(p, sites); !r.problem.empty()) check.issue(r.field, r.problem);
    check.model->name += " (heads pruned)";
    check.model->architecture = nullptr; // which heads go is known only once they are scored
}

} // namespace

std::vector<std::vector<std::int64_t>> headsToRemove(const std::vector<std::vector<double>>& importance,
                                                     PruneScope scope, std::int64_t globalCount,
                                                     const std::vector<std::int64_t>& perLayerCount) {
    // (importance, layer, head) ascending: the least important first, ties by position.
    std::vector<std::vector<std::int64_t>> removed(importance.size());
    auto order = [&](std::vector<std::tuple<double, std::size_t, std::int64_t>>& heads) {
        std::sort(heads.begin(), heads.end());
    };
    if (scope == PruneScope::Global) {
        std::vector<std::tuple<double, std::size_t, std::int64_t>> heads;
        for (std::size_t i = 0; i < importance.size(); ++i)
            for (std::size_t h = 0; h < importance[i].size(); ++h)
                heads.emplace_back(importance[i][h], i, static_cast<std::int64_t>(h));
        order(heads);
        std::int64_t taken = 0;
        for (const auto& [score, i, h] : heads) {
            if (taken == globalCount) break;
            // The last head of a layer stays: the next least important head elsewhere goes instead.
            if (removed[i].size() + 1 >= importance[i].size()) continue;
            removed[i].push_back(h);
            ++taken;
        }
        if (taken < globalCount)
            throw ConfigError(std::string(kStep) + ": only " + std::to_string(taken) + " of " +
                              std::to_string(globalCount) + " heads can go with one left in each layer");
    } else {
        for (std::size_t i = 0; i < importance.size(); ++i) {
            const std::int64_t n = perLayerCount.at(i);
            if (n >= static_cast<std::int64_t>(importance[i].size()))
                throw ConfigError(std::string(kStep) + ": layer " + std::to_string(i) + " would lose all its heads");
            std::vector<std::tuple<double, std::size_t, std::int64_t>> heads;
            for (std::size_t h = 0; h < importance[i].size(); ++h)
                heads.emplace_back(importance[i][h], i, static_cast<std::int64_t>(h));
            order(heads);
            for (std::int64_t k = 0; k < n; ++k) removed[i].push_back(std::get<2>(heads[static_cast<std::size_t>(k)]));
        }
    }
    for (auto& r : removed) std::sort(r.begin(), r.end());
    return removed;
}

namespace {

std::string joinScores(const std::vector<double>& v) {
    std::ostringstream s;
    s.precision(4);
    for (std::size_t i = 0; i < v.size(); ++i) s << (i ? " " : "") << v[i];
    return s.str();
}

class HeadPrune final : public Strategy {
public:
    explicit HeadPrune(HeadPruneParams p) : m_params(std::move(p)) {}

    void apply(StepContext& ctx) override {
        Backend& be = ctx.backend();
        Model& model = ctx.model();
        std::vector<std::string> problems;
        const auto sites = attentionSites(model, &problems);
        if (sites.empty()) throw ConfigError(noSiteMessage(model.name(), problems));
        const Removal removal = removalFor(m_params, sites);
        if (!removal.problem.empty()) throw ConfigError(removal.problem);
        for (const std::string& p : problems) ctx.warn(std::string(kStep) + ": left alone: " + p);

        const Dataset& split =
            m_params.calibrationSplit == CalibrationSplit::Train ? ctx.data().train : ctx.evalData();
        std::int64_t samples = m_params.calibrationSamples;
        if (samples > split.size()) {
            ctx.warn(std::string(kStep) + ": calibration_samples " + std::to_string(samples) + " is more than the " +
                     split.name + " split's " + std::to_string(split.size()) + " samples; using all of them");
            samples = split.size();
        }
        if (m_params.score == HeadScore::Gradient && !split.labelled)
            throw ConfigError(std::string(kStep) + ": score gradient needs the labels of a loss, and " +
                              split.name + " has none (use score entropy)");
        const Dataset calibrationData = split.head(samples);
        const Calibration calibration{calibrationData, m_params.calibrationBatch, ctx.cancel};
        if (ctx.progress) ctx.progress(0.0, "scoring heads");

        // Higher importance = kept longer. Entropy: a head spreading its attention evenly (high entropy) goes
        // first. Gradient: Michel et al.'s sum of |dL/dxi| over batches, each layer's scores divided by their L2
        // norm for a global ranking (as their implementation does), so layers with larger gradients do not keep
        // all their heads.
        std::vector<std::vector<double>> scores, importance;
        if (m_params.score == HeadScore::Entropy) {
            scores = headEntropy(model, be, sites, calibration);
            importance = scores;
            for (auto& layer : importance)
                for (double& v : layer) v = -v;
        } else {
            const HeadGradients g = headGateGradients(model, be, sites, calibration);
            scores = g.importance;
            importance = g.importance;
            if (m_params.scope == PruneScope::Global)
                for (auto& layer : importance) {
                    double norm = 0;
                    for (double v : layer) norm += v * v;
                    norm = std::sqrt(norm);
                    if (norm > 0)
                        for (double& v : layer) v /= norm;
                }
            ctx.summary()["calibration_loss"] = g.loss;
        }
        const auto removed = headsToRemove(importance, m_params.scope, removal.global, removal.perSite);

        const BeforeShrinking before = measureBeforeShrinking(ctx, m_params.measure, kStep, 0.3, 0.6);

        ModelEditor editor(ctx.model());
        std::int64_t headsBefore = 0, headsAfter = 0;
        std::string kept, scoreNote;
        for (std::size_t i = 0; i < sites.size(); ++i) {
            if (ctx.cancel && ctx.cancel->load(std::memory_order_relaxed)) throw CancelledError();
            const AttentionSite& s = sites[i];
            std::vector<std::int64_t> keep;
            for (std::int64_t h = 0; h < s.heads; ++h)
                if (!std::binary_search(removed[i].begin(), removed[i].end(), h)) keep.push_back(h);
            if (!removed[i].empty()) editor.pruneAttentionHeads(s.path, keep);
            const auto k = static_cast<std::int64_t>(keep.size());
            headsBefore += s.heads;
            headsAfter += k;
            ctx.addLayerStat(s.path, "heads_before", static_cast<double>(s.heads));
            ctx.addLayerStat(s.path, "heads_after", static_cast<double>(k));
            for (std::int64_t h = 0; h < s.heads; ++h)
                ctx.addLayerStat(s.path, "head_score@h" + std::to_string(h), scores[i][static_cast<std::size_t>(h)]);
            std::string gone;
            for (std::int64_t h : removed[i]) gone += (gone.empty() ? "" : ",") + std::to_string(h);
            kept += (kept.empty() ? "" : "; ") + s.path + " " + std::to_string(s.heads) + "->" + std::to_string(k) +
                    (gone.empty() ? "" : " (removed " + gone + ")");
            scoreNote += (scoreNote.empty() ? "" : "; ") + s.path + ": " + joinScores(scores[i]);
        }
        reportShrunk(ctx, m_params.measure, kStep, before, 0.65, 1.0);
        ctx.summary()["original.heads"] = static_cast<double>(headsBefore);
        ctx.summary()["heads"] = static_cast<double>(headsAfter);
        ctx.summary()["heads_pruned_fraction"] = double(headsBefore - headsAfter) / double(headsBefore);
        ctx.notes()["heads_kept"] = kept;
        ctx.notes()["head_scores"] = std::string(m_params.score == HeadScore::Entropy ? "entropy (nats)"
                                                                                      : "sum over batches of |dL/dxi|") +
                                     ": " + scoreNote;
        ctx.info(std::string(kStep) + ": heads " + std::to_string(headsBefore) + " -> " + std::to_string(headsAfter) +
                 "; " + kept);
    }

private:
    HeadPruneParams m_params;
};

} // namespace

void registerHeadPrune(StrategyRegistry& registry) {
    SchemaBuilder<HeadPruneParams> b("prune.heads", "prune",
                                     "remove the least important attention heads (entropy or gradient score): "
                                     "the layers shrink");
    b.number("fraction", &HeadPruneParams::fraction, 0.25,
             {.min = 0, .max = 1, .maxExclusive = true,
              .help = "fraction of the heads removed, rounded down (of all heads, or of each layer's: scope)"});
    b.integer("count", &HeadPruneParams::count, 0,
              {.min = 0, .max = 1e6,
               .help = "heads removed instead of the fraction when above 0 (in all, or in each layer: scope)"});
    b.choice("scope", &HeadPruneParams::scope, {{"global", PruneScope::Global}, {"layer", PruneScope::Layer}},
             PruneScope::Global,
             "rank the heads of all layers together (each layer keeps at least one) or remove the same share of "
             "each layer's");
    b.choice("score", &HeadPruneParams::score, {{"gradient", HeadScore::Gradient}, {"entropy", HeadScore::Entropy}},
             HeadScore::Gradient,
             "gradient: sum over calibration batches of |dL/dxi_h| of a gate xi_h on each head's output (Michel et "
             "al. 2019); entropy: the heads whose attention is spread most evenly go first");
    b.integer("calibration_samples", &HeadPruneParams::calibrationSamples, 64,
              {.min = 1, .max = 1e7, .help = "samples the heads are scored on (the first of the split)"});
    b.integer("calibration_batch", &HeadPruneParams::calibrationBatch, 8,
              {.min = 1, .max = 1e5, .help = "samples per scoring pass (the gradient score sums |dL/dxi| per batch)"});
    b.choice("calibration_split", &HeadPruneParams::calibrationSplit,
             {{"evaluated", CalibrationSplit::Evaluated}, {"train", CalibrationSplit::Train}},
             CalibrationSplit::Evaluated, "the split the heads are scored on: the evaluated one, or train");
    b.include(measureSettingsSchema(), &HeadPruneParams::measure, "/measure");
    b.checkModel([](const HeadPruneParams& p, ModelCheck& c) { checkHeads(p, c); });
    registry.add(b, [](const HeadPruneParams& p) { return std::make_unique<HeadPrune>(p); });
}

} // namespace lathe::prune

// `prune.structured`: removes whole output neurons of Linear layers and filters of Conv2d layers, those of
// smallest L1 or L2 norm, or (network slimming, Liu et al. 2017) the filters whose BatchNorm2d scale |gamma| is
// smallest, and the matching inputs of the layer that consumes them (ModelEditor), so the model is physically
// smaller and runs faster on the same dense kernels. The step times the model before and after shrinking, side by
// side, like lowrank.svd.
#include "engine/backends/registry.h"
#include "engine/core/errors.h"
#include "engine/nn/model_edit.h"
#include "engine/strategies/measure/measure_fields.h"
#include "engine/strategies/prune/pruning.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace lathe::prune {
namespace {

enum class Criterion { L1, L2, BnGamma };
enum class StructuredLayers { AllButLast, Conv };

struct StructuredParams {
    double ratio = 0.5;
    std::int64_t minChannels = 8;
    Criterion criterion = Criterion::L1;
    StructuredLayers layers = StructuredLayers::AllButLast;
    MeasureSettings measure;
};

const char* kStep = "prune.structured";

// A Linear or Conv2d whose outputs the step may remove, by its ModelEditor path.
struct Site {
    std::string path;
    bool conv = false;
    std::int64_t channels = 0; // outputs of a Linear, filters of a Conv2d
};

// The Linear and Conv2d layers in depth-first order, the last one (the classifier) left out, then those of the
// requested kind.
std::vector<Site> selectSites(Model& model, StructuredLayers which) {
    const ModelEditor editor(model);
    std::vector<Site> all;
    for (const LayerInfo& info : editor.list())
        if (info.type == "linear" || info.type == "conv2d")
            all.push_back({info.path, info.type == "conv2d", editor.layer(info.path).config().at("out").get<std::int64_t>()});
    if (!all.empty()) all.pop_back();
    if (which == StructuredLayers::Conv) std::erase_if(all, [](const Site& s) { return !s.conv; });
    return all;
}

// The path of the batchnorm2d standing right after the layer at `path` in its sequence; "" when there is none.
std::string followingBatchNorm(const ModelEditor& editor, const std::string& path) {
    const std::size_t dot = path.rfind('.');
    const std::string next = path.substr(0, dot + 1) + std::to_string(std::stoll(path.substr(dot + 1)) + 1);
    try {
        return editor.layer(next).type() == "batchnorm2d" ? next : std::string();
    } catch (const ConfigError&) { // the layer is the last of its sequence
        return {};
    }
}

// Why bn_gamma cannot rank the site's outputs ("" when it can).
std::string bnGammaProblem(const ModelEditor& editor, const Site& s) {
    if (!s.conv)
        return s.path + " is a linear layer; bn_gamma ranks Conv2d filters by the batchnorm2d after them (use " +
               "layers \"conv\", or criterion l1 or l2)";
    if (followingBatchNorm(editor, s.path).empty())
        return s.path + " (conv2d) is not directly followed by a batchnorm2d, whose |weight| bn_gamma ranks its " +
               "filters by (use criterion l1 or l2)";
    return {};
}

// The f32 weight of a layer (a Linear's or Conv2d's rows, a BatchNorm2d's gamma), on the host.
std::vector<float> f32Weight(Backend& be, Layer& layer, const std::string& path) {
    Parameter* weight = nullptr;
    for (Parameter* p : layer.parameters())
        if (p->name == "weight") weight = p;
    if (!weight || weight->value.dtype() != DType::F32)
        throw ConfigError(std::string(kStep) + ": " + path + ": expected an f32 weight");
    return be.downloadF32(weight->value);
}

std::vector<double> absValues(const std::vector<float>& v) {
    std::vector<double> out(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) out[i] = std::fabs(static_cast<double>(v[i]));
    return out;
}

std::string shrink(ModelEditor& editor, const Site& site, const std::vector<std::int64_t>& keep) {
    return site.conv ? editor.shrinkConvOutputs(site.path, keep) : editor.shrinkLinearOutputs(site.path, keep);
}

std::vector<std::int64_t> allChannels(std::int64_t n) {
    std::vector<std::int64_t> v(static_cast<std::size_t>(n));
    std::iota(v.begin(), v.end(), std::int64_t(0));
    return v;
}

std::string noSiteMessage(StructuredLayers which, const std::string& skipped) {
    std::string why = std::string(kStep) + ": the model has no " +
                      (which == StructuredLayers::Conv ? "Conv2d" : "Linear or Conv2d") +
                      " layer whose outputs can be removed (the last layer, the classifier, is never pruned)";
    if (!skipped.empty()) why += "; " + skipped;
    return why;
}

// Validation where the architecture is known: a model with fresh weights tries each site's shrink with every
// channel kept (the editor refuses an unsupported consumer before changing anything).
void checkSites(const StructuredParams& p, ModelCheck& check) {
    if (!check.model || check.model->architecture.is_null()) return;
    auto model = Model::fromArchitecture(check.model->architecture);
    model->initialize(*cpuBackend(), 1);
    model->to(*cpuBackend());
    ModelEditor editor(*model);
    std::string skipped;
    bool any = false;
    if (p.criterion == Criterion::BnGamma) {
        std::string problems;
        for (const Site& s : selectSites(*model, p.layers))
            if (const std::string why = bnGammaProblem(editor, s); !why.empty())
                problems += (problems.empty() ? "" : "; ") + why;
        if (!problems.empty()) check.issue("criterion", std::string(kStep) + ": criterion bn_gamma: " + problems);
    }
    for (const Site& s : selectSites(*model, p.layers)) {
        try {
            shrink(editor, s, allChannels(s.channels));
            any = true;
        } catch (const ConfigError& e) {
            skipped += (skipped.empty() ? "" : "; ") + std::string(e.what());
        }
    }
    if (!any) check.issue("layers", noSiteMessage(p.layers, skipped));
    check.model->name += " (pruned)";
    check.model->architecture = nullptr;
    check.model->layers = 0;
}

} // namespace

// Among equal norms the earlier unit is kept, so the choice does not depend on the sort.
std::vector<std::int64_t> keptUnits(const std::vector<double>& norms, double ratio, std::int64_t minChannels) {
    const auto n = static_cast<std::int64_t>(norms.size());
    const std::int64_t keepCount =
        std::max(n - static_cast<std::int64_t>(std::floor(ratio * double(n))), std::min(minChannels, n));
    std::vector<std::int64_t> order = allChannels(n);
    std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
        return norms[static_cast<std::size_t>(a)] > norms[static_cast<std::size_t>(b)];
    });
    order.resize(static_cast<std::size_t>(keepCount));
    std::sort(order.begin(), order.end());
    return order;
}

// L1 or L2 norm of each output row of a weight laid out as (out, rowLength): a Linear's (out, in) or a Conv2d's
// filters (K, C*KH*KW).
std::vector<double> rowNorms(const std::vector<float>& w, std::int64_t out, bool l2) {
    const std::size_t row = w.size() / static_cast<std::size_t>(out);
    std::vector<double> norms(static_cast<std::size_t>(out), 0.0);
    for (std::size_t r = 0; r < norms.size(); ++r) {
        double acc = 0;
        for (std::size_t i = 0; i < row; ++i) {
            const double v = w[r * row + i];
            acc += l2 ? v * v : std::fabs(v);
        }
        norms[r] = l2 ? std::sqrt(acc) : acc;
    }
    return norms;
}

namespace {

class StructuredPrune final : public Strategy {
public:
    explicit StructuredPrune(StructuredParams p) : m_params(std::move(p)) {}

    void apply(StepContext& ctx) override {
        Backend& be = ctx.backend();
        const auto sites = selectSites(ctx.model(), m_params.layers);
        if (sites.empty()) throw ConfigError(noSiteMessage(m_params.layers, ""));

        // Every layer ranked on the weights as they are before any shrinking: shrinking one layer removes input
        // columns of the next, which would otherwise change that layer's norms.
        std::vector<std::vector<std::int64_t>> keeps;
        const ModelEditor ranking(ctx.model());
        for (const Site& s : sites) {
            std::string ranked = s.path;
            if (m_params.criterion == Criterion::BnGamma) {
                if (const std::string why = bnGammaProblem(ranking, s); !why.empty())
                    throw ConfigError(std::string(kStep) + ": criterion bn_gamma: " + why);
                ranked = followingBatchNorm(ranking, s.path);
            }
            const std::vector<float> weight = f32Weight(be, ranking.layer(ranked), ranked);
            const std::vector<double> scores = m_params.criterion == Criterion::BnGamma
                                                   ? absValues(weight)
                                                   : rowNorms(weight, s.channels, m_params.criterion == Criterion::L2);
            keeps.push_back(keptUnits(scores, m_params.ratio, m_params.minChannels));
        }

        const BeforeShrinking before = measureBeforeShrinking(ctx, m_params.measure, kStep, 0.0, 0.45);

        ModelEditor editor(ctx.model());
        std::string kept, skipped;
        int shrunk = 0;
        for (std::size_t i = 0; i < sites.size(); ++i) {
            if (ctx.cancel && ctx.cancel->load(std::memory_order_relaxed)) throw CancelledError();
            const Site& s = sites[i];
            const auto k = static_cast<std::int64_t>(keeps[i].size());
            const std::string entry = s.path + " " + std::to_string(s.channels) + "->";
            try {
                if (k < s.channels) shrink(editor, s, keeps[i]);
            } catch (const ConfigError& e) {
                skipped += (skipped.empty() ? "" : "; ") + std::string(e.what());
                continue;
            }
            ctx.addLayerStat(s.path + ".weight", "channels_before", static_cast<double>(s.channels));
            ctx.addLayerStat(s.path + ".weight", "channels_after", static_cast<double>(k));
            shrunk += k < s.channels ? 1 : 0;
            kept += (kept.empty() ? "" : "; ") + entry + std::to_string(k) +
                    (k == s.channels && m_params.ratio > 0 ? " (min_channels keeps all)" : "");
        }
        if (kept.empty()) throw ConfigError(noSiteMessage(m_params.layers, skipped));
        reportShrunk(ctx, m_params.measure, kStep, before, 0.55, 1.0);
        ctx.notes()["structured_kept"] = kept + (skipped.empty() ? "" : "; skipped: " + skipped);
        ctx.info(std::string(kStep) + ": shrunk " + std::to_string(shrunk) + " layers, kept " + kept);
        if (!skipped.empty()) ctx.warn(std::string(kStep) + ": skipped " + skipped);
    }

private:
    StructuredParams m_params;
};

} // namespace

void registerStructuredPrune(StrategyRegistry& registry) {
    SchemaBuilder<StructuredParams> b("prune.structured", "prune",
                                      "remove whole neurons and filters of smallest norm: the model shrinks");
    b.number("ratio", &StructuredParams::ratio, 0.5,
             {.min = 0, .max = 1, .maxExclusive = true,
              .help = "fraction of each selected layer's outputs removed (rounded down)"});
    b.integer("min_channels", &StructuredParams::minChannels, 8,
              {.min = 1, .max = 1e9, .help = "outputs each layer keeps at least (a smaller layer keeps all)"});
    b.choice("criterion", &StructuredParams::criterion,
             {{"l1", Criterion::L1}, {"l2", Criterion::L2}, {"bn_gamma", Criterion::BnGamma}}, Criterion::L1,
             "what ranks an output: the L1 or L2 norm of its row or filter (bias excluded), or bn_gamma (network "
             "slimming): the |weight| of the batchnorm2d directly after a Conv2d, for each of its filters");
    b.choice("layers", &StructuredParams::layers,
             {{"all_but_last", StructuredLayers::AllButLast}, {"conv", StructuredLayers::Conv}},
             StructuredLayers::AllButLast,
             "every Linear and Conv2d but the last (the classifier), or the Conv2d layers only");
    b.include(measureSettingsSchema(), &StructuredParams::measure, "/measure");
    b.checkModel([](const StructuredParams& p, ModelCheck& c) { checkSites(p, c); });
    registry.add(b, [](const StructuredParams& p) { return std::make_unique<StructuredPrune>(p); });
}

} // namespace lathe::prune

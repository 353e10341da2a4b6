// The `lowrank` family. `lowrank.svd`: each selected Linear (weight W (out, in), bias b) becomes a
// `sequential` pair in -> r (no bias, weight diag(sqrt(s_r)) V_r^T) and r -> out (weight U_r diag(sqrt(s_r)),
// bias b) from the truncated SVD W ~ U_r diag(s_r) V_r^T, r fixed or the smallest rank keeping a fraction of
// sum s^2. The pair runs on the existing dense kernels of every backend. The step times the model before and
// after factoring, side by side ("original." and "factored." keys and series), so the run stores the realized
// speedup next to the theoretical one (FLOPs before / after).
#include "engine/measure/flops.h"
#include "engine/nn/model_edit.h"
#include "engine/strategies/lowrank/svd.h"
#include "engine/strategies/measure/measure_fields.h"
#include "engine/strategies/measure/side_by_side.h"
#include "engine/strategies/strategy.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>

namespace lathe {
namespace {

enum class LayerSelection { All, AllButLast };

struct SvdParams {
    std::int64_t rank = 0; // 0: from energy
    double energy = 0.9;
    LayerSelection layers = LayerSelection::AllButLast;
    bool minSaving = true;
    MeasureSettings measure;
};

const char* kStep = "lowrank.svd";

// A Linear the step may factor, addressed by its ModelEditor path.
struct LinearSite {
    std::string path;
    std::int64_t in = 0, out = 0;
    bool bias = true;
};

// Every Linear (blocks included, depth-first), the last one (the classifier) left out for AllButLast.
std::vector<LinearSite> selectLinears(Model& model, LayerSelection selection) {
    std::vector<LinearSite> sites;
    const ModelEditor editor(model);
    for (const LayerInfo& info : editor.list()) {
        if (info.type != "linear") continue;
        const nlohmann::json c = editor.layer(info.path).config();
        sites.push_back({info.path, c.at("in").get<std::int64_t>(), c.at("out").get<std::int64_t>(),
                         c.value("bias", true)});
    }
    if (selection == LayerSelection::AllButLast && !sites.empty()) sites.pop_back();
    return sites;
}

std::string noLinearMessage(Model& model, LayerSelection selection) {
    std::string why = std::string(kStep) + ": the model has no Linear layer to factor";
    if (selection == LayerSelection::AllButLast && !selectLinears(model, LayerSelection::All).empty())
        why += " (its only Linear is the last one, which layers \"all_but_last\" leaves alone)";
    return why;
}

// A fixed rank no selected layer can take ("" when some can): a layer whose min(in, out) is below the rank is
// factored at full rank, which min_saving then skips.
std::string rankProblem(const std::vector<LinearSite>& sites, std::int64_t rank) {
    if (rank <= 0 || sites.empty()) return {};
    std::string dims;
    for (const auto& s : sites) {
        if (rank <= std::min(s.in, s.out)) return {};
        dims += (dims.empty() ? "" : ", ") + s.path + ": " + std::to_string(std::min(s.in, s.out));
    }
    return "rank " + std::to_string(rank) + " is larger than min(in, out) of every selected Linear layer (" + dims + ")";
}

// Validation: where the architecture is known (a zoo model or an architecture file, or a distilled
// student), so are the layers, and a rank none of them can take is refused here; otherwise at the run.
void checkRank(const SvdParams& p, ModelCheck& check) {
    if (!check.model || check.model->architecture.is_null()) return;
    const auto model = Model::fromArchitecture(check.model->architecture);
    const auto sites = selectLinears(*model, p.layers);
    if (sites.empty()) check.issue("layers", noLinearMessage(*model, p.layers));
    else if (const std::string why = rankProblem(sites, p.rank); !why.empty()) check.issue("rank", why);
    // The steps after this one see a factored model: same input and classes, other layers.
    check.model->name += " (factored)";
    check.model->architecture = nullptr;
    check.model->layers = 0;
}

class SvdFactor final : public Strategy {
public:
    explicit SvdFactor(SvdParams p) : m_params(std::move(p)) {}

    void apply(StepContext& ctx) override {
        Backend& be = ctx.backend();
        const auto sites = selectLinears(ctx.model(), m_params.layers);
        if (sites.empty()) throw ConfigError(noLinearMessage(ctx.model(), m_params.layers));
        if (const std::string why = rankProblem(sites, m_params.rank); !why.empty())
            throw ConfigError(std::string(kStep) + ": " + why);

        const double flopsBefore = forwardFlopsPerSample(ctx.model());
        const MeasureOutcome before = measure(ctx, "original", 0.0, 0.45);

        std::string ranks;
        int factored = 0;
        for (std::size_t i = 0; i < sites.size(); ++i) {
            if (ctx.cancel && ctx.cancel->load(std::memory_order_relaxed)) throw CancelledError();
            if (ctx.progress) ctx.progress(0.45 + 0.1 * double(i) / double(sites.size()), "factoring " + sites[i].path);
            const std::string entry = factor(ctx, sites[i]);
            factored += entry.find("skipped") == std::string::npos ? 1 : 0;
            ranks += (ranks.empty() ? "" : "; ") + entry;
        }
        be.synchronize();
        const double flopsAfter = forwardFlopsPerSample(ctx.model());
        const MeasureOutcome after = measure(ctx, "factored", 0.55, 1.0);

        const double realized = reportSideBySide(
            ctx, m_params.measure, {"original", "factored", before, after, flopsBefore, flopsAfter});
        ctx.notes()["lowrank_ranks"] = ranks;
        ctx.info(std::string(kStep) + ": factored " + std::to_string(factored) + " of " + std::to_string(sites.size()) +
                 " Linear layers: " + ranks);
        ctx.info(std::string(kStep) + ": FLOPs per sample " + fixed(flopsBefore, 0) + " -> " + fixed(flopsAfter, 0) +
                 (realized > 0 ? ", realized speedup " + fixed(realized, 3) : ""));
        if (factored == 0) ctx.warn(std::string(kStep) + ": no layer was factored (" + ranks + ")");
    }

private:
    MeasureOutcome measure(StepContext& ctx, const std::string& label, double from, double to) const {
        return measureLabelled(ctx, m_params.measure, kStep, label, from, to);
    }

    // Factors one Linear in place (or skips it); returns its entry of the note.
    std::string factor(StepContext& ctx, const LinearSite& site) const {
        Backend& be = ctx.backend();
        ModelEditor editor(ctx.model());
        Layer& layer = editor.layer(site.path);
        Parameter* weight = nullptr;
        Parameter* bias = nullptr;
        for (Parameter* p : layer.parameters()) (p->name == "weight" ? weight : bias) = p;
        if (!weight || weight->value.dtype() != DType::F32)
            throw ConfigError(std::string(kStep) + ": " + site.path + ": expected an f32 weight");
        const std::vector<float> w = be.downloadF32(weight->value); // (out, in)
        const lowrank::Svd svd = lowrank::thinSvd(w.data(), site.out, site.in);
        const std::int64_t r = m_params.rank > 0 ? std::min(m_params.rank, svd.k)
                                                 : lowrank::rankForEnergy(svd.s, m_params.energy);
        const double kept = lowrank::energyKept(svd.s, r);
        const std::int64_t weightsBefore = site.in * site.out, weightsAfter = r * (site.in + site.out);
        const std::int64_t biasCount = site.bias ? site.out : 0;
        const std::string name = site.path + ".weight";
        ctx.addLayerStat(name, "rank", static_cast<double>(r));
        ctx.addLayerStat(name, "energy_kept", kept);
        ctx.addLayerStat(name, "params_before", static_cast<double>(weightsBefore + biasCount));
        const std::string shape = std::to_string(site.out) + "x" + std::to_string(site.in);
        if (m_params.minSaving && weightsAfter >= weightsBefore) {
            ctx.addLayerStat(name, "params_after", static_cast<double>(weightsBefore + biasCount));
            return site.path + " " + shape + " skipped (rank " + std::to_string(r) + " would need " +
                   std::to_string(weightsAfter) + " weights, not fewer than " + std::to_string(weightsBefore) + ")";
        }
        ctx.addLayerStat(name, "params_after", static_cast<double>(weightsAfter + biasCount));

        const lowrank::Factors f = lowrank::splitFactors(svd, r);
        nlohmann::json second = {{"type", "linear"}, {"in", r}, {"out", site.out}};
        if (!site.bias) second["bias"] = false;
        // A fused activation (fuse.activation) follows the product: it goes on the second factor.
        const std::string act = layer.config().value("activation", "none");
        if (act != "none") second["activation"] = act;
        auto pair = makeLayer({{"type", "sequential"},
                               {"layers", {{{"type", "linear"}, {"in", site.in}, {"out", r}, {"bias", false}}, second}}});
        auto& children = *pair->sublayers();
        for (Parameter* p : children[0]->parameters()) p->value = Tensor::host({r, site.in}, DType::F32);
        std::copy(f.first.begin(), f.first.end(), children[0]->parameters()[0]->value.ptr<float>());
        for (Parameter* p : children[1]->parameters()) {
            if (p->name == "weight") {
                p->value = Tensor::host({site.out, r}, DType::F32);
                std::copy(f.second.begin(), f.second.end(), p->value.ptr<float>());
            } else {
                p->value = be.download(bias->value); // the original bias, unchanged
            }
        }
        editor.replace(site.path, std::move(pair));
        return site.path + " " + shape + " rank " + std::to_string(r) + " (energy " + fixed(kept, 3) + ")";
    }

    SvdParams m_params;
};

} // namespace
} // namespace lathe

LATHE_STRATEGY_FAMILY(lowrank) {
    using namespace lathe;
    SchemaBuilder<SvdParams> b("lowrank.svd", "lowrank",
                               "replace Linear layers by a pair of thinner ones from their truncated SVD");
    b.integer("rank", &SvdParams::rank, 0,
              {.min = 0, .max = 1e9, .help = "rank kept in each factored layer (0: the smallest rank reaching energy)"});
    b.number("energy", &SvdParams::energy, 0.9,
             {.min = 0, .max = 1, .minExclusive = true,
              .help = "with rank 0: the fraction of the sum of squared singular values each layer keeps"});
    b.choice("layers", &SvdParams::layers,
             {{"all", LayerSelection::All}, {"all_but_last", LayerSelection::AllButLast}}, LayerSelection::AllButLast,
             "which Linear layers are factored: all, or all but the last (the classifier, usually small)");
    b.boolean("min_saving", &SvdParams::minSaving, true,
              "skip a layer whose factored pair would not have fewer weights: r (in + out) >= in out");
    b.include(measureSettingsSchema(), &SvdParams::measure, "/measure");
    b.checkModel([](const SvdParams& p, ModelCheck& c) { checkRank(p, c); });
    registry.add(b, [](const SvdParams& p) { return std::make_unique<SvdFactor>(p); });
}

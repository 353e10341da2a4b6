// `quantize.sensitivity`: each selected Linear alone is converted to the chosen format, the model is evaluated,
// and the layer is put back, so the model leaves the step as it came; per layer it stores the accuracy drop and
// the SQNR of the layer's output on a calibration batch ("quant_accuracy_drop", "quant_sqnr_db").
// `quantize.auto_mixed`: the same sweep, then every layer is converted and, while the accuracy lost exceeds the
// budget, the most sensitive converted layer goes back to float; it reports which layers were kept.
#include "engine/measure/flops.h"
#include "engine/nn/model_edit.h"
#include "engine/strategies/measure/measure_fields.h"
#include "engine/strategies/measure/side_by_side.h"
#include "engine/strategies/quantize/quantize_common.h"

#include <algorithm>
#include <numeric>

namespace lathe::quant {
namespace {

enum class Format { Int8Static, Int8Dynamic, Int8Weight, Int4, Nf4 };

struct SensitivityParams {
    Format format = Format::Int8Static;
    std::int64_t group = 128;
    bool symmetric = true;
    CalibrationSettings calibration;
    SiteSettings sites;
    double budgetPoints = 0.5; // auto_mixed
    MeasureSettings measure;   // auto_mixed
};

QuantChoice choiceFor(const SensitivityParams& p) {
    QuantChoice c;
    c.calibration = p.calibration;
    switch (p.format) {
    case Format::Int8Static: c.layer.activations = ActivationQuant::Static; break;
    case Format::Int8Dynamic: c.layer.activations = ActivationQuant::Dynamic; break;
    case Format::Int8Weight: c.layer.weights = {WeightFormat::Int8, 0, true}; break;
    case Format::Int4: c.layer.weights = {WeightFormat::Int4, p.group, p.symmetric}; break;
    case Format::Nf4: c.layer.weights = {WeightFormat::Nf4, p.group, true}; break;
    }
    return c;
}

struct SiteSensitivity {
    LinearSite site;
    double drop = 0;  // accuracy lost (fraction) with this layer alone converted
    double sqnr = 0;  // of its output, dB
};

// Converts each site alone, evaluates, restores. `records` holds every site's calibration record (its first
// batch is the input the output SQNR is measured on).
std::vector<SiteSensitivity> sweep(StepContext& ctx, const std::vector<LinearSite>& sites, const QuantChoice& choice,
                                   const std::vector<ActivationRecord>& records, double baseline, double from,
                                   double to) {
    Backend& be = ctx.backend();
    ModelEditor editor(ctx.model());
    std::vector<SiteSensitivity> out;
    for (std::size_t i = 0; i < sites.size(); ++i) {
        if (ctx.cancel && ctx.cancel->load(std::memory_order_relaxed)) throw CancelledError();
        if (ctx.progress)
            ctx.progress(from + (to - from) * double(i) / double(sites.size()), "converting " + sites[i].path + " alone");
        auto q = quantizedSite(ctx, sites[i], choice, &records[i]);
        Layer& floatLayer = editor.layer(sites[i].path);
        const double sqnr =
            std::min(200.0, sqnrDb(layerOutput(be, floatLayer, records[i].firstBatch),
                                   layerOutput(be, *q, records[i].firstBatch)));
        auto original = editor.replace(sites[i].path, std::move(q));
        double accuracy = 0;
        try {
            accuracy = evalAccuracy(ctx, ctx.model());
        } catch (...) {
            editor.replace(sites[i].path, std::move(original));
            throw;
        }
        editor.replace(sites[i].path, std::move(original));
        const std::string name = sites[i].path + ".weight";
        ctx.addLayerStat(name, "quant_accuracy_drop", baseline - accuracy);
        ctx.addLayerStat(name, "quant_sqnr_db", sqnr);
        out.push_back({sites[i], baseline - accuracy, sqnr});
        ctx.info("quantize: " + sites[i].path + " alone: accuracy drop " + fixed(100 * (baseline - accuracy), 2) +
                 " points, output SQNR " + fixed(sqnr, 1) + " dB");
    }
    return out;
}

std::vector<std::string> pathsOf(const std::vector<LinearSite>& sites) {
    std::vector<std::string> paths;
    for (const auto& s : sites) paths.push_back(s.path);
    return paths;
}

class Sensitivity final : public Strategy {
public:
    explicit Sensitivity(SensitivityParams p) : m_params(std::move(p)) {}

    void apply(StepContext& ctx) override {
        const std::string step = "quantize.sensitivity";
        const QuantChoice choice = choiceFor(m_params);
        const auto sites = selectSites(ctx.model(), m_params.sites, step);
        requireKernels(ctx, choice, step,
                       std::any_of(sites.begin(), sites.end(), [](const LinearSite& s) { return s.conv; }));
        const double baseline = evalAccuracy(ctx, ctx.model());
        ctx.summary()["accuracy"] = baseline;
        const auto records = recordInputs(ctx, pathsOf(sites), choice.calibration, step);
        const auto result = sweep(ctx, sites, choice, records, baseline, 0.1, 1.0);
        const auto worst = std::max_element(result.begin(), result.end(),
                                            [](const auto& a, const auto& b) { return a.drop < b.drop; });
        ctx.summary()["sensitivity_max_drop"] = worst->drop;
        ctx.notes()["quantization"] = choice.describe();
        ctx.notes()["most_sensitive_layer"] = worst->site.path;
        ctx.info(step + ": " + choice.describe() + "; most sensitive " + worst->site.path + " (" +
                 fixed(100 * worst->drop, 2) + " points)");
    }

private:
    SensitivityParams m_params;
};

class AutoMixed final : public Strategy {
public:
    explicit AutoMixed(SensitivityParams p) : m_params(std::move(p)) {}

    void apply(StepContext& ctx) override {
        const std::string step = "quantize.auto_mixed";
        const QuantChoice choice = choiceFor(m_params);
        const auto sites = selectSites(ctx.model(), m_params.sites, step);
        requireKernels(ctx, choice, step,
                       std::any_of(sites.begin(), sites.end(), [](const LinearSite& s) { return s.conv; }));
        const double flops = forwardFlopsPerSample(ctx.model());
        const MeasureOutcome before = measureLabelled(ctx, m_params.measure, step, "float", 0.0, 0.25);
        const double baseline = evalAccuracy(ctx, ctx.model());
        const auto records = recordInputs(ctx, pathsOf(sites), choice.calibration, step);
        auto ranked = sweep(ctx, sites, choice, records, baseline, 0.25, 0.55);
        // Most sensitive first: the largest drop, then the lowest SQNR.
        std::stable_sort(ranked.begin(), ranked.end(), [](const SiteSensitivity& a, const SiteSensitivity& b) {
            return a.drop != b.drop ? a.drop > b.drop : a.sqnr < b.sqnr;
        });

        ModelEditor editor(ctx.model());
        std::map<std::string, std::unique_ptr<Layer>> originals;
        for (std::size_t i = 0; i < sites.size(); ++i) {
            auto q = quantizedSite(ctx, sites[i], choice, &records[i]);
            Layer* quantized = q.get();
            auto old = editor.replace(sites[i].path, std::move(q));
            recordSiteStats(ctx, sites[i], *old, *quantized, &records[i], choice);
            originals[sites[i].path] = std::move(old);
        }
        const double budget = m_params.budgetPoints / 100.0;
        double accuracy = evalAccuracy(ctx, ctx.model());
        std::string kept;
        for (const SiteSensitivity& s : ranked) {
            if (baseline - accuracy <= budget) break;
            if (ctx.cancel && ctx.cancel->load(std::memory_order_relaxed)) throw CancelledError();
            editor.replace(s.site.path, std::move(originals[s.site.path]));
            kept += (kept.empty() ? "" : ", ") + s.site.path;
            accuracy = evalAccuracy(ctx, ctx.model());
            ctx.info(step + ": " + s.site.path + " back to float: accuracy drop " + fixed(100 * (baseline - accuracy), 2) +
                     " points");
        }
        const bool met = baseline - accuracy <= budget;
        if (!met)
            ctx.warn(step + ": every layer is back in float and the drop is still " +
                     fixed(100 * (baseline - accuracy), 2) + " points (budget " + fixed(m_params.budgetPoints, 2) + ")");
        reportSizes(ctx);
        ctx.summary()["accuracy_budget_points"] = m_params.budgetPoints;
        ctx.summary()["budget_met"] = met ? 1 : 0;
        ctx.notes()["quantization"] = choice.describe();
        ctx.notes()["layers_kept_fp"] = kept.empty() ? "none" : kept;
        const MeasureOutcome after = measureLabelled(ctx, m_params.measure, step, "quantized", 0.6, 1.0);
        reportSideBySide(ctx, m_params.measure, {"float", "quantized", before, after, flops, flops});
        ctx.info(step + ": kept in float: " + (kept.empty() ? std::string("none") : kept) + "; accuracy " +
                 fixed(100 * baseline, 2) + " -> " + fixed(100 * accuracy, 2));
    }

private:
    SensitivityParams m_params;
};

template <class P>
void formatFields(SchemaBuilder<P>& b) {
    b.choice("format", &SensitivityParams::format,
             {{"int8", Format::Int8Static},
              {"int8_dynamic", Format::Int8Dynamic},
              {"int8_weight_only", Format::Int8Weight},
              {"int4", Format::Int4},
              {"nf4", Format::Nf4}},
             Format::Int8Static,
             "what each layer is converted to: int8 (W8A8, static calibrated activations), int8_dynamic, "
             "int8_weight_only, int4 or nf4 (weight-only)");
    b.integer("group", &SensitivityParams::group, 128, {.min = 1, .max = 1e9, .help = "int4 / nf4 group along the input"});
    b.boolean("symmetric", &SensitivityParams::symmetric, true, "int4: symmetric codes, or a zero point per group");
    b.include(calibrationSchema(), &SensitivityParams::calibration);
    b.include(siteSchema(), &SensitivityParams::sites);
}

} // namespace

void registerSensitivity(StrategyRegistry& registry) {
    {
        SchemaBuilder<SensitivityParams> b("quantize.sensitivity", "quantize",
                                           "per-layer sensitivity: convert each Linear alone, evaluate, restore; "
                                           "stores the accuracy drop and the output SQNR per layer");
        formatFields(b);
        registry.add(b, [](const SensitivityParams& p) { return std::make_unique<Sensitivity>(p); });
    }
    {
        SchemaBuilder<SensitivityParams> b("quantize.auto_mixed", "quantize",
                                           "automatic mixed precision: convert every Linear, then return the most "
                                           "sensitive ones to float until the accuracy budget holds");
        formatFields(b);
        b.number("budget_points", &SensitivityParams::budgetPoints, 0.5,
                 {.min = 0, .max = 100, .unit = "points", .help = "accuracy (percentage points) the step may lose"});
        b.include(measureSettingsSchema(), &SensitivityParams::measure, "/measure");
        registry.add(b, [](const SensitivityParams& p) { return std::make_unique<AutoMixed>(p); });
    }
}

} // namespace lathe::quant

// `quantize.smoothquant` (Xiao et al. 2023): before the int8 W8A8 conversion, the quantization difficulty of
// each Linear's input channels is migrated into its weights. For input channel j, with a_j = max |x_j| over
// the calibration samples and w_j = max |W[:, j]|, s_j = a_j^alpha / w_j^(1 - alpha); the layer's weight
// column j is multiplied by s_j and its input divided by s_j. The division is folded into the layer that
// produces the input — a Linear directly before it, or before a ReLU (relu(z / s) = relu(z) / s for s > 0):
// that layer's output row j and bias are divided by s_j — so the float model computes the same function (up
// to rounding; the step checks its logits) and nothing runs at inference that did not before. A layer whose
// input comes from anything else (the model's input, a GELU, a norm) is quantized unsmoothed and listed.
#include "engine/measure/flops.h"
#include "engine/measure/latency.h"
#include "engine/nn/model_edit.h"
#include "engine/strategies/measure/measure_fields.h"
#include "engine/strategies/measure/side_by_side.h"
#include "engine/strategies/quantize/quantize_common.h"

#include <algorithm>
#include <cmath>

namespace lathe::quant {
namespace {

// The smoothed float model's logits may differ from the original's by float rounding only.
constexpr double kSmoothingTolerance = 1e-4;

struct SmoothParams {
    double alpha = 0.5;
    CalibrationSettings calibration;
    SiteSettings sites;
    MeasureSettings measure;
};

Parameter* param(Layer& layer, const char* name) {
    for (Parameter* p : layer.parameters())
        if (p->name == name) return p;
    return nullptr;
}

// The float Linear whose outputs feed `path` through nothing or one ReLU, in the same sequence; "" if none.
std::string producerOf(const ModelEditor& editor, const std::string& path) {
    const auto dot = path.rfind('.');
    const std::string parent = path.substr(0, dot + 1);
    const long index = std::stol(path.substr(dot + 1));
    auto typeAt = [&](long i) -> std::string {
        if (i < 0) return {};
        try {
            const Layer& l = editor.layer(parent + std::to_string(i));
            // A fused GELU (fuse.activation) does not commute with the per-channel scale; a fused ReLU does.
            const nlohmann::json c = l.config();
            if (l.type() == "linear" && !c.contains("dtype") && c.value("activation", "none") != "gelu")
                return "linear";
            return l.type();
        } catch (const ConfigError&) {
            return {};
        }
    };
    if (typeAt(index - 1) == "linear") return parent + std::to_string(index - 1);
    if (typeAt(index - 1) == "relu" && typeAt(index - 2) == "linear") return parent + std::to_string(index - 2);
    return {};
}

std::vector<float> logits(StepContext& ctx) {
    const auto batches = makeInputBatches(ctx.backend(), ctx.model(), ctx.evalData(),
                                          std::min<std::int64_t>(64, ctx.evalData().size()), 1);
    return ctx.backend().downloadF32(ctx.model().forward(batches[0], ForwardContext{}));
}

class SmoothQuant final : public Strategy {
public:
    explicit SmoothQuant(SmoothParams p) : m_params(std::move(p)) {}

    void apply(StepContext& ctx) override {
        const std::string step = "quantize.smoothquant";
        Backend& be = ctx.backend();
        const auto sites = selectSites(ctx.model(), m_params.sites, step, false);
        QuantChoice w8a8;
        w8a8.layer.activations = ActivationQuant::Static;
        requireKernels(ctx, w8a8, step, false);
        const double flops = forwardFlopsPerSample(ctx.model());
        const MeasureOutcome before = measureLabelled(ctx, m_params.measure, step, "float", 0.0, 0.35);
        const std::vector<float> logitsBefore = logits(ctx);

        std::vector<std::string> paths;
        for (const auto& s : sites) paths.push_back(s.path);
        const auto records = recordInputs(ctx, paths, m_params.calibration, step);
        ModelEditor editor(ctx.model());
        std::string smoothed, unsmoothed;
        for (std::size_t i = 0; i < sites.size(); ++i) {
            const std::string producer = producerOf(editor, sites[i].path);
            if (producer.empty()) {
                unsmoothed += (unsmoothed.empty() ? "" : ", ") + sites[i].path;
                continue;
            }
            smooth(ctx, editor, sites[i], producer, records[i]);
            smoothed += (smoothed.empty() ? "" : ", ") + sites[i].path;
        }
        be.synchronize();
        double largest = 0, diff = 0;
        const std::vector<float> logitsSmoothed = logits(ctx);
        for (std::size_t i = 0; i < logitsBefore.size(); ++i) {
            largest = std::max(largest, std::fabs(double(logitsBefore[i])));
            diff = std::max(diff, std::fabs(double(logitsBefore[i]) - double(logitsSmoothed[i])));
        }
        const double relative = largest > 0 ? diff / largest : diff;
        ctx.summary()["smoothing_max_rel_diff"] = relative;
        if (relative > kSmoothingTolerance)
            throw Error(step + ": the smoothed float model's logits differ from the original ones by " +
                        fixed(relative, 6) + " of the largest (tolerance " + fixed(kSmoothingTolerance, 6) + ")");

        // The smoothed layers' inputs changed: calibrate again, then convert every site to W8A8.
        const auto smoothedRecords = recordInputs(ctx, paths, m_params.calibration, step);
        QuantChoice choice;
        choice.layer.activations = ActivationQuant::Static;
        choice.calibration = m_params.calibration;
        for (std::size_t i = 0; i < sites.size(); ++i) {
            auto q = quantizedSite(ctx, sites[i], choice, &smoothedRecords[i]);
            Layer* quantized = q.get();
            auto old = editor.replace(sites[i].path, std::move(q));
            recordSiteStats(ctx, sites[i], *old, *quantized, &smoothedRecords[i], choice);
        }
        reportSizes(ctx);
        ctx.summary()["smoothquant_alpha"] = m_params.alpha;
        ctx.notes()["quantization"] = "SmoothQuant (alpha " + fixed(m_params.alpha, 2) + "), " + choice.describe();
        ctx.notes()["smoothed_layers"] = smoothed.empty() ? "none" : smoothed;
        if (!unsmoothed.empty()) {
            ctx.notes()["unsmoothed_layers"] = unsmoothed;
            ctx.info(step + ": " + unsmoothed + " quantized unsmoothed (no Linear, or Linear + ReLU, produces its input)");
        }
        const MeasureOutcome after = measureLabelled(ctx, m_params.measure, step, "quantized", 0.65, 1.0);
        reportSideBySide(ctx, m_params.measure, {"float", "quantized", before, after, flops, flops});
    }

private:
    void smooth(StepContext& ctx, ModelEditor& editor, const LinearSite& site, const std::string& producer,
                const ActivationRecord& record) const {
        Backend& be = ctx.backend();
        Layer& layer = editor.layer(site.path);
        Layer& prev = editor.layer(producer);
        Parameter* w = param(layer, "weight");
        Parameter* pw = param(prev, "weight");
        Parameter* pb = param(prev, "bias");
        std::vector<float> wv = be.downloadF32(w->value), pwv = be.downloadF32(pw->value);
        std::vector<float> pbv = pb ? be.downloadF32(pb->value) : std::vector<float>();
        const std::int64_t in = site.in, out = site.out, rows = std::int64_t(record.absValues.size()) / in;
        std::vector<float> s(static_cast<std::size_t>(in), 1.0f);
        double smallest = 1e30, largestScale = 0;
        for (std::int64_t j = 0; j < in; ++j) {
            float a = 0, m = 0;
            for (std::int64_t r = 0; r < rows; ++r) a = std::max(a, record.absValues[std::size_t(r * in + j)]);
            for (std::int64_t o = 0; o < out; ++o) m = std::max(m, std::fabs(wv[std::size_t(o * in + j)]));
            // A channel never active, or with no weight, keeps scale 1.
            if (a > 0 && m > 0) s[std::size_t(j)] = float(std::pow(a, m_params.alpha) / std::pow(m, 1.0 - m_params.alpha));
            smallest = std::min(smallest, double(s[std::size_t(j)]));
            largestScale = std::max(largestScale, double(s[std::size_t(j)]));
        }
        for (std::int64_t o = 0; o < out; ++o)
            for (std::int64_t j = 0; j < in; ++j) wv[std::size_t(o * in + j)] *= s[std::size_t(j)];
        const std::int64_t prevIn = std::int64_t(pwv.size()) / in;
        for (std::int64_t j = 0; j < in; ++j) {
            for (std::int64_t k = 0; k < prevIn; ++k) pwv[std::size_t(j * prevIn + k)] /= s[std::size_t(j)];
            if (pb) pbv[std::size_t(j)] /= s[std::size_t(j)];
        }
        be.copyFromHost(w->value, wv.data());
        be.copyFromHost(pw->value, pwv.data());
        if (pb) be.copyFromHost(pb->value, pbv.data());
        ctx.addLayerStat(site.path + ".weight", "smoothing_scale_min", smallest);
        ctx.addLayerStat(site.path + ".weight", "smoothing_scale_max", largestScale);
    }

    SmoothParams m_params;
};

} // namespace

void registerSmoothQuant(StrategyRegistry& registry) {
    SchemaBuilder<SmoothParams> b("quantize.smoothquant", "quantize",
                                  "SmoothQuant: migrate each Linear's activation outliers into its weights (folded into "
                                  "the Linear before it), then int8 W8A8 with calibrated static scales");
    b.number("alpha", &SmoothParams::alpha, 0.5,
             {.min = 0, .max = 1, .help = "migration strength: 0 leaves the activations, 1 moves all of their range"});
    b.include(calibrationSchema(), &SmoothParams::calibration);
    b.include(siteSchema(), &SmoothParams::sites);
    b.include(measureSettingsSchema(), &SmoothParams::measure, "/measure");
    registry.add(b, [](const SmoothParams& p) { return std::make_unique<SmoothQuant>(p); });
}

} // namespace lathe::quant

// The `quantize` family's conversions. `quantize.int8` (W8A8, or int8 weight-only), `quantize.int4` and
// `quantize.nf4` (weight-only, group-wise), `quantize.fp8` (the FP8 GEMM) turn each selected float Linear into a qlinear holding real codes and
// scales, run by the backend's integer / dequantizing kernels. Static activation scales are calibrated on
// samples of the training split. The step times the model before and after, side by side ("float." and
// "quantized." keys and series), and stores per-layer weight SQNR, bits per weight and calibrated clips.
#include "engine/measure/flops.h"
#include "engine/nn/model_edit.h"
#include "engine/strategies/measure/measure_fields.h"
#include "engine/strategies/measure/side_by_side.h"
#include "engine/strategies/quantize/quantize_common.h"

#include <algorithm>

namespace lathe::quant {
namespace {

enum class Granularity { PerChannel, PerTensor };

struct QuantizeParams {
    // int8
    Granularity granularity = Granularity::PerChannel;
    ActivationQuant activations = ActivationQuant::Static;
    CalibrationSettings calibration;
    // every format
    std::int64_t group = 0;
    bool symmetric = true;
    bool doubleQuant = false; // nf4
    bool simulate = false;    // fp8: emulate the FP8 GEMM where the backend has no FP8 units
    SiteSettings sites;
    MeasureSettings measure;
};

// The format's checks that need the model: the layers it would convert exist.
void checkSites(const SiteSettings& s, ModelCheck& check, const std::string& step, const char* suffix,
                bool convs = true) {
    if (!check.model || check.model->architecture.is_null()) return;
    const auto model = Model::fromArchitecture(check.model->architecture);
    try {
        selectSites(*model, s, step, convs);
    } catch (const ConfigError& e) {
        check.issue("skip", e.what());
    }
    check.model->name += suffix;
    check.model->architecture = nullptr;
    check.model->layers = 0;
}

class Quantize final : public Strategy {
public:
    Quantize(std::string step, QuantChoice choice, QuantizeParams p)
        : m_step(std::move(step)), m_choice(std::move(choice)), m_params(std::move(p)) {}

    void checkBackend(const Backend& be) const override { requireKernels(be, m_choice, m_step, false); }

    void apply(StepContext& ctx) override {
        // 16-bit formats keep Conv2d layers in f32 (a conv has no 16-bit weight of its own yet).
        const auto sites = selectSites(ctx.model(), m_params.sites, m_step, m_choice.floatFormat == DType::F32);
        requireKernels(ctx, m_choice, m_step,
                       std::any_of(sites.begin(), sites.end(), [](const LinearSite& s) { return s.conv; }));
        const double flops = forwardFlopsPerSample(ctx.model());
        const MeasureOutcome before = measureLabelled(ctx, m_params.measure, m_step, "float", 0.0, 0.4);

        std::vector<ActivationRecord> records;
        if (m_choice.needsCalibration()) {
            if (ctx.progress) ctx.progress(0.4, "calibrating on the training split");
            std::vector<std::string> paths;
            for (const auto& s : sites) paths.push_back(s.path);
            records = recordInputs(ctx, paths, m_choice.calibration, m_step);
        }
        ModelEditor editor(ctx.model());
        for (std::size_t i = 0; i < sites.size(); ++i) {
            if (ctx.cancel && ctx.cancel->load(std::memory_order_relaxed)) throw CancelledError();
            if (ctx.progress) ctx.progress(0.5 + 0.1 * double(i) / double(sites.size()), "quantizing " + sites[i].path);
            const ActivationRecord* record = records.empty() ? nullptr : &records[i];
            auto q = quantizedSite(ctx, sites[i], m_choice, record);
            Layer* quantized = q.get();
            auto old = editor.replace(sites[i].path, std::move(q));
            recordSiteStats(ctx, sites[i], *old, *quantized, record, m_choice);
        }
        ctx.backend().synchronize();
        reportSizes(ctx);
        ctx.notes()["quantization"] = m_choice.describe();
        if (m_choice.layer.weights.format == WeightFormat::Fp8 && m_choice.layer.activations != ActivationQuant::None &&
            fp8ModeFor(ctx.backend(), m_choice, m_step) == Fp8Mode::Emulated)
            ctx.markSimulated(m_step + ": " + ctx.backend().name() +
                              " has no FP8 GEMM, so the quantized figures come from its numerics computed in f32 "
                              "(weights stored as real E4M3 bytes and decoded by the fp8 weight-only kernel, "
                              "activations rounded to E4M3 with their per-tensor scale): accuracy and model_bytes "
                              "are FP8's, latency and throughput are not an FP8 GEMM's");
        const MeasureOutcome after = measureLabelled(ctx, m_params.measure, m_step, "quantized", 0.6, 1.0);
        const double realized =
            reportSideBySide(ctx, m_params.measure, {"float", "quantized", before, after, flops, flops});
        ctx.info(m_step + ": " + std::to_string(sites.size()) + " layers to " + m_choice.describe() +
                 ", " + fixed(ctx.summary()["weight_bits_mean"], 2) + " bits per weight" +
                 (realized > 0 ? ", realized speedup " + fixed(realized, 3) : ""));
    }

private:
    std::string m_step;
    QuantChoice m_choice;
    QuantizeParams m_params;
};

std::vector<std::pair<std::string, ActivationQuant>> activationChoices() {
    return {{"static", ActivationQuant::Static}, {"dynamic", ActivationQuant::Dynamic}, {"none", ActivationQuant::None}};
}

} // namespace
} // namespace lathe::quant

LATHE_STRATEGY_FAMILY(quantize) {
    using namespace lathe;
    using namespace lathe::quant;
    {
        SchemaBuilder<QuantizeParams> b("quantize.int8", "quantize",
                                        "int8 weights (W8A8 with int8 activations, or weight-only): real int8 GEMMs "
                                        "with int32 sums, timed before and after");
        b.choice("granularity", &QuantizeParams::granularity,
                 {{"per_channel", Granularity::PerChannel}, {"per_tensor", Granularity::PerTensor}},
                 Granularity::PerChannel,
                 "weight scales: one per output channel, or one for the whole weight");
        b.choice("activations", &QuantizeParams::activations, activationChoices(), ActivationQuant::Static,
                 "activations: static (a calibrated per-tensor scale), dynamic (per row, at run time) or none "
                 "(weight-only int8)");
        b.include(calibrationSchema(), &QuantizeParams::calibration);
        b.include(siteSchema(), &QuantizeParams::sites);
        b.include(measureSettingsSchema(), &QuantizeParams::measure, "/measure");
        b.checkModel([](const QuantizeParams& p, ModelCheck& c) { checkSites(p.sites, c, "quantize.int8", " (int8)"); });
        registry.add(b, [](const QuantizeParams& p) {
            QuantChoice c;
            c.layer.weights = {WeightFormat::Int8, 0, true};
            c.layer.activations = p.activations;
            c.layer.perChannel = p.granularity == Granularity::PerChannel;
            c.calibration = p.calibration;
            return std::make_unique<Quantize>("quantize.int8", c, p);
        });
    }
    {
        SchemaBuilder<QuantizeParams> b("quantize.int4", "quantize",
                                        "int4 weight-only, group-wise (scale and zero point per group), two codes per "
                                        "byte; dequantized inside the kernel");
        b.integer("group", &QuantizeParams::group, 128,
                  {.min = 1, .max = 1e9, .help = "weights per group along the input (32, 64, 128...); a group that "
                                                 "does not divide the layer leaves a smaller last group"});
        b.boolean("symmetric", &QuantizeParams::symmetric, true,
                  "symmetric codes (scale only) or asymmetric (scale and zero point per group)");
        b.include(siteSchema(), &QuantizeParams::sites);
        b.include(measureSettingsSchema(), &QuantizeParams::measure, "/measure");
        b.checkModel([](const QuantizeParams& p, ModelCheck& c) { checkSites(p.sites, c, "quantize.int4", " (int4)"); });
        registry.add(b, [](const QuantizeParams& p) {
            QuantChoice c;
            c.layer.weights = {WeightFormat::Int4, p.group, p.symmetric};
            c.layer.activations = ActivationQuant::None;
            return std::make_unique<Quantize>("quantize.int4", c, p);
        });
    }
    {
        SchemaBuilder<QuantizeParams> b("quantize.nf4", "quantize",
                                        "4-bit NormalFloat weight-only (the bitsandbytes code book), an absmax per "
                                        "group; dequantized inside the kernel");
        b.integer("group", &QuantizeParams::group, 64,
                  {.min = 1, .max = 1e9, .help = "weights per absmax block along the input (bitsandbytes uses 64)"});
        b.boolean("double_quant", &QuantizeParams::doubleQuant, false,
                  "double quantization (bitsandbytes' compress_statistics): the absmax stored as 8-bit codes of "
                  "(absmax - mean) in blocks of 256, one f32 scale per block");
        b.include(siteSchema(), &QuantizeParams::sites);
        b.include(measureSettingsSchema(), &QuantizeParams::measure, "/measure");
        b.checkModel([](const QuantizeParams& p, ModelCheck& c) { checkSites(p.sites, c, "quantize.nf4", " (nf4)"); });
        registry.add(b, [](const QuantizeParams& p) {
            QuantChoice c;
            c.layer.weights = {WeightFormat::Nf4, p.group, true, p.doubleQuant};
            c.layer.activations = ActivationQuant::None;
            return std::make_unique<Quantize>("quantize.nf4", c, p);
        });
    }
    {
        SchemaBuilder<QuantizeParams> b("quantize.fp8", "quantize",
                                        "FP8 E4M3 GEMM: weights stored as E4M3 bytes with a per-output-channel scale "
                                        "(absmax / 448), activations quantized to E4M3 per tensor at run time; "
                                        "cuBLASLt on compute capability 8.9 and newer");
        b.boolean("simulate", &QuantizeParams::simulate, false,
                  "where the backend has no FP8 GEMM (a CPU, a GPU below compute capability 8.9), compute its "
                  "numerics in f32 instead of refusing the run, and mark the run simulated");
        b.include(siteSchema(), &QuantizeParams::sites);
        b.include(measureSettingsSchema(), &QuantizeParams::measure, "/measure");
        b.checkModel([](const QuantizeParams& p, ModelCheck& c) { checkSites(p.sites, c, "quantize.fp8", " (fp8)"); });
        registry.add(b, [](const QuantizeParams& p) {
            QuantChoice c;
            c.layer.weights = {WeightFormat::Fp8, 0, true};
            c.layer.activations = ActivationQuant::Dynamic;
            c.layer.simulate = p.simulate;
            return std::make_unique<Quantize>("quantize.fp8", c, p);
        });
    }
    for (const DType dt : {DType::F16, DType::BF16}) {
        const std::string name = dt == DType::F16 ? "quantize.fp16" : "quantize.bf16";
        SchemaBuilder<QuantizeParams> b(name, "quantize",
                                        std::string(dtypeName(dt)) + " Linear weights (16-bit storage; inputs and outputs "
                                        "of each layer rounded to the format, sums in f32)");
        b.include(siteSchema(), &QuantizeParams::sites);
        b.include(measureSettingsSchema(), &QuantizeParams::measure, "/measure");
        b.checkModel([name, dt](const QuantizeParams& p, ModelCheck& c) {
            checkSites(p.sites, c, name, (std::string(" (") + dtypeName(dt) + ")").c_str(), false);
        });
        registry.add(b, [name, dt](const QuantizeParams& p) {
            QuantChoice c;
            c.floatFormat = dt;
            return std::make_unique<Quantize>(name, c, p);
        });
    }
    registerSensitivity(registry);
    registerSmoothQuant(registry);
}

// Shared parts of the quantize strategies (quantize_common.h).
#include "engine/strategies/quantize/quantize_common.h"

#include "engine/nn/model_edit.h"
#include "engine/nn/layer.h"
#include "engine/nn/trainer.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <tuple>

namespace lathe::quant {
namespace {

std::vector<std::string> splitPaths(const std::string& text) {
    std::vector<std::string> out;
    std::string item;
    std::istringstream in(text);
    while (std::getline(in, item, ',')) {
        item.erase(0, item.find_first_not_of(" \t"));
        item.erase(item.find_last_not_of(" \t") + 1);
        if (!item.empty()) out.push_back(item);
    }
    return out;
}

Tensor* named(Layer& layer, const char* name) {
    for (Parameter* p : layer.parameters())
        if (p->name == name) return &p->value;
    return nullptr;
}

// The weight a converted layer multiplies by, as f32 (out, in), and the bytes it stores for it (codes, scales
// and zero points; not the bias).
std::vector<float> effectiveWeight(Backend& be, Layer& layer) {
    if (layer.type() == "qlinear" || layer.type() == "qconv2d") return dequantizedWeight(be, layer);
    return be.downloadF32(*named(layer, "weight"));
}

double storedWeightBytes(Layer& layer) {
    if (layer.type() == "qlinear" || layer.type() == "qconv2d") {
        const QuantizedLinearConfig c = quantizedLinearConfig(layer);
        return double(quantizedLinearBytes(layer)) - (c.bias ? double(c.out) * sizeof(float) : 0.0);
    }
    const Tensor* w = named(layer, "weight");
    return w ? double(w->bytes()) : 0.0;
}

} // namespace

std::vector<LinearSite> selectSites(Model& model, const SiteSettings& s, const std::string& step, bool convs,
                                    const std::string& skipField) {
    std::vector<LinearSite> sites;
    const ModelEditor editor(model);
    auto pair = [](const nlohmann::json& c, const char* key, std::int64_t fallback) {
        if (!c.contains(key)) return std::pair<std::int64_t, std::int64_t>{fallback, fallback};
        const nlohmann::json& v = c.at(key);
        if (v.is_array()) return std::pair<std::int64_t, std::int64_t>{v[0].get<std::int64_t>(), v[1].get<std::int64_t>()};
        return std::pair<std::int64_t, std::int64_t>{v.get<std::int64_t>(), v.get<std::int64_t>()};
    };
    for (const LayerInfo& info : editor.list()) {
        const nlohmann::json c = editor.layer(info.path).config();
        if (info.type == "linear") {
            if (c.contains("dtype")) continue; // already 16-bit
            sites.push_back({info.path, c.at("in").get<std::int64_t>(), c.at("out").get<std::int64_t>(),
                             c.value("bias", true)});
        } else if (info.type == "conv2d" && convs && c.value("groups", 1) == 1) {
            LinearSite site{info.path, 0, c.at("out").get<std::int64_t>(), c.value("bias", true), true, {}};
            QuantizedConvShape& k = site.convShape;
            k.inChannels = c.at("in").get<std::int64_t>();
            std::tie(k.kernelH, k.kernelW) = pair(c, "kernel", 1);
            std::tie(k.strideH, k.strideW) = pair(c, "stride", 1);
            std::tie(k.padH, k.padW) = pair(c, "padding", 0);
            site.in = k.inChannels * k.kernelH * k.kernelW;
            sites.push_back(site);
        }
    }
    if (sites.empty())
        throw ConfigError(step + (convs ? ": the model has no float Linear or Conv2d layer to quantize"
                                        : ": the model has no float Linear layer to quantize"));
    if (s.layers == LayerSelection::AllButLast) {
        auto last = std::find_if(sites.rbegin(), sites.rend(), [](const LinearSite& x) { return !x.conv; });
        if (last != sites.rend()) sites.erase(std::next(last).base());
    }
    for (const std::string& skip : splitPaths(s.skip)) {
        auto it = std::find_if(sites.begin(), sites.end(), [&](const LinearSite& x) { return x.path == skip; });
        if (it == sites.end())
            throw ConfigError(step + ": " + skipField + " names \"" + skip + "\", which is not a float " +
                              (convs ? "Linear or Conv2d" : "Linear") + " layer it would convert");
        sites.erase(it);
    }
    if (sites.empty())
        throw ConfigError(step + ": every layer is left out (layers, " + skipField + "); nothing to quantize");
    return sites;
}

const SchemaBuilder<SiteSettings>& siteSchema() {
    static const SchemaBuilder<SiteSettings> s = [] {
        SchemaBuilder<SiteSettings> b("", "", "");
        b.choice("layers", &SiteSettings::layers,
                 {{"all", LayerSelection::All}, {"all_but_last", LayerSelection::AllButLast}}, LayerSelection::All,
                 "which layers are converted: all, or all but the last Linear (the classifier)");
        b.text("skip", &SiteSettings::skip, "", "layers kept in float, by path (\"layers.1, layers.5\")");
        return b;
    }();
    return s;
}

const SchemaBuilder<CalibrationSettings>& calibrationSchema() {
    static const SchemaBuilder<CalibrationSettings> s = [] {
        SchemaBuilder<CalibrationSettings> b("", "", "");
        b.choice("calibration", &CalibrationSettings::method, calibrationChoices(), CalibrationMethod::Percentile,
                 "how static activation scales clip |x|: minmax, moving_average, percentile, mse or entropy (KL)");
        b.number("percentile", &CalibrationSettings::percentile, 99.99,
                 {.min = 50, .max = 100, .help = "percentile of |x| kept by \"percentile\" calibration"});
        b.integer("calibration_samples", &CalibrationSettings::samples, 512,
                  {.min = 1, .max = 1e7, .unit = "samples", .help = "samples of the training split run to calibrate"});
        return b;
    }();
    return s;
}

std::string QuantChoice::describe() const {
    if (floatFormat != DType::F32) return std::string(dtypeName(floatFormat)) + " weights";
    const WeightFormat f = layer.weights.format;
    if (f == WeightFormat::Fp8 && layer.activations != ActivationQuant::None)
        return std::string("fp8 e4m3 GEMM, per-channel weights, dynamic per-tensor activations") +
               (layer.simulate ? " (simulate allowed)" : "");
    if (layer.activations != ActivationQuant::None) {
        std::string s = std::string("int8 W8A8 ") + (layer.perChannel ? "per-channel" : "per-tensor") + ", " +
                        activationQuantName(layer.activations) + " activations";
        if (needsCalibration()) {
            s += std::string(" (") + calibrationName(calibration.method);
            if (calibration.method == CalibrationMethod::Percentile) s += " " + fixed(calibration.percentile, 3);
            s += ")";
        }
        return s;
    }
    std::string s = std::string(weightFormatName(f)) + " weight-only, ";
    s += layer.weights.group > 0 ? "group " + std::to_string(layer.weights.group) : std::string("per channel");
    if (f == WeightFormat::Int4) s += layer.weights.symmetric ? ", symmetric" : ", asymmetric";
    if (f == WeightFormat::Nf4 && layer.weights.doubleQuant) s += ", double-quantized scales";
    return s;
}

std::unique_ptr<Layer> quantizedSite(StepContext& ctx, const LinearSite& site, const QuantChoice& choice,
                                     const ActivationRecord* record) {
    Backend& be = ctx.backend();
    Layer& layer = ModelEditor(ctx.model()).layer(site.path);
    Tensor* weight = named(layer, "weight");
    if (!weight || weight->dtype() != DType::F32)
        throw ConfigError(site.path + ": expected a float layer with an f32 weight");
    const std::vector<float> w = be.downloadF32(*weight);
    std::vector<float> b;
    if (site.bias) b = be.downloadF32(*named(layer, "bias"));
    if (choice.floatFormat != DType::F32) {
        nlohmann::json config = layer.config();
        config["dtype"] = dtypeName(choice.floatFormat);
        auto cast = makeLayer(config);
        for (Parameter* p : cast->parameters()) {
            const std::vector<float>& values = p->name == "weight" ? w : b;
            Tensor host = Tensor::host(p->value.shape(), p->value.dtype());
            traits(host.dtype()).fromFloat(values.data(), host.data(), values.size());
            p->value = be.upload(host);
        }
        return cast;
    }
    QuantizedLinearConfig c = choice.layer;
    c.in = site.in;
    c.out = site.out;
    c.bias = site.bias;
    // A ReLU / GELU fused into the Linear (fuse.activation) stays fused, in the quantized kernel's epilogue.
    const std::string fused = layer.config().value("activation", "none");
    c.epilogue = fused == "relu" ? Activation::Relu : fused == "gelu" ? Activation::Gelu : Activation::None;
    float inputScale = 0;
    if (choice.needsCalibration()) {
        if (!record) throw ConfigError(site.path + ": static activations need a calibration record");
        const double clip = clipFor(*record, choice.calibration);
        // A layer whose calibration input was all zeros still needs a positive scale; any will do.
        inputScale = clip > 0 ? static_cast<float>(clip / 127.0) : 1.0f / 127.0f;
    }
    if (site.conv) return makeQuantizedConv2d(be, c, site.convShape, w.data(), site.bias ? b.data() : nullptr, inputScale);
    return makeQuantizedLinear(be, c, w.data(), site.bias ? b.data() : nullptr, inputScale);
}

void recordSiteStats(StepContext& ctx, const LinearSite& site, Layer& floatLayer, Layer& quantized,
                     const ActivationRecord* record, const QuantChoice& choice) {
    Backend& be = ctx.backend();
    const std::string name = site.path + ".weight";
    const std::vector<float> w = be.downloadF32(*named(floatLayer, "weight"));
    const std::vector<float> wq = effectiveWeight(be, quantized);
    ctx.addLayerStat(name, "weight_sqnr_db", std::min(200.0, sqnrDb(w, wq)));
    ctx.addLayerStat(name, "weight_bits", storedWeightBytes(quantized) * 8.0 / double(site.in * site.out));
    if (record && choice.needsCalibration() && !record->absValues.empty()) {
        const double top = *std::max_element(record->absValues.begin(), record->absValues.end());
        const double clip = clipFor(*record, choice.calibration);
        ctx.addLayerStat(name, "input_clip", clip);
        if (top > 0) ctx.addLayerStat(name, "input_clip_fraction", clip / top);
    }
}

void reportSizes(StepContext& ctx) {
    const ModelEditor editor(ctx.model());
    double bits = 0, weights = 0;
    int quantized = 0, keptFloat = 0;
    for (const LayerInfo& info : editor.list()) {
        Layer& layer = editor.layer(info.path);
        if (info.type == "qlinear" || info.type == "qconv2d") {
            const QuantizedLinearConfig c = quantizedLinearConfig(layer);
            bits += storedWeightBytes(layer) * 8.0;
            weights += double(c.in * c.out);
            ++quantized;
        } else if (info.type == "linear" || info.type == "conv2d") {
            const Tensor* w = named(layer, "weight");
            if (!w) continue;
            bits += double(w->bytes()) * 8.0;
            weights += double(w->numel());
            // A 16-bit Linear counts as converted; f32 ones as kept in full precision.
            ++(w->dtype() == DType::F32 ? keptFloat : quantized);
        }
    }
    if (weights > 0) ctx.summary()["weight_bits_mean"] = bits / weights;
    ctx.summary()["layers_quantized"] = quantized;
    ctx.summary()["layers_kept_fp"] = keptFloat;
}

Fp8Mode fp8ModeFor(const Backend& be, const QuantChoice& choice, const std::string& step) {
    if (be.supports(fp8GemmDesc(Fp8Mode::Native))) return Fp8Mode::Native;
    if (choice.layer.simulate) return Fp8Mode::Emulated;
    const DeviceInfo info = be.info();
    const std::string reason =
        info.device.kind == DeviceKind::Cpu
            ? "a CPU has no FP8 matrix unit (FP8 GEMM needs a CUDA device of compute capability 8.9 or newer)"
            : "FP8 GEMM needs compute capability 8.9, " + info.name + " has " +
                  std::to_string(info.computeCapabilityMajor) + "." + std::to_string(info.computeCapabilityMinor);
    throw ConfigError(step + ": fp8 cannot run on " + be.name() + ": " + reason +
                      "; give \"simulate\": true to compute its numerics in f32 instead (the run is then marked "
                      "simulated)");
}

void requireKernels(StepContext& ctx, const QuantChoice& choice, const std::string& step, bool convs) {
    requireKernels(ctx.backend(), choice, step, convs);
}

void requireKernels(const Backend& be, const QuantChoice& choice, const std::string& step, bool convs) {
    std::vector<OpDesc> needed;
    if (choice.floatFormat != DType::F32) {
        needed.push_back(OpDesc::uniform(Op::Gemm, choice.floatFormat));
        needed.push_back(OpDesc::convert(DType::F32, choice.floatFormat));
        needed.push_back(OpDesc::convert(choice.floatFormat, DType::F32));
    } else if (choice.layer.weights.format == WeightFormat::Fp8 && choice.layer.activations != ActivationQuant::None) {
        const Fp8Mode mode = fp8ModeFor(be, choice, step);
        needed.push_back(fp8GemmDesc(mode));
        needed.push_back(weightOnlyGemmDesc(WeightFormat::Fp8)); // the emulation's kernel, and cuBLASLt's fallback
        if (mode == Fp8Mode::Native) needed.pop_back();
    } else if (choice.layer.activations != ActivationQuant::None) {
        needed.push_back(OpDesc::uniform(Op::QuantizeRows, DType::F32));
        needed.push_back(int8GemmDesc());
    } else {
        needed.push_back(weightOnlyGemmDesc(choice.layer.weights.format));
    }
    if (convs) {
        needed.push_back(OpDesc::uniform(Op::Im2colRows, DType::F32));
        needed.push_back(OpDesc::uniform(Op::RowsToChannels, DType::F32));
    }
    for (const OpDesc& d : needed)
        if (!be.supports(d))
            throw ConfigError(step + ": " + choice.describe() + " cannot run on " + be.name() + ", which has no " +
                              d.toString());
}

double evalAccuracy(StepContext& ctx, Model& model) {
    return evaluate(model, ctx.backend(), ctx.evalData(), 256, ctx.cancel).accuracy;
}

std::vector<float> layerOutput(Backend& be, Layer& layer, const Tensor& x) {
    return be.downloadF32(layer.forward(be, x, ForwardContext{}));
}

} // namespace lathe::quant

// What the quantize strategies share: which Linear layers a step quantizes, the format it converts them to
// (a qlinear, quantized_linear.h), the per-layer figures it stores, and the size keys of the summary.
#pragma once

#include "engine/measure/model_measure.h"
#include "engine/nn/quantized_linear.h"
#include "engine/strategies/quantize/calibration.h"
#include "engine/strategies/strategy.h"

#include <memory>
#include <string>
#include <vector>

namespace lathe::quant {

enum class LayerSelection { All, AllButLast };

// Which Linear layers a step converts: all, or all but the last; `skip` lists paths kept in float
// ("layers.4, layers.6"), the mixed precision a researcher chooses by hand.
struct SiteSettings {
    LayerSelection layers = LayerSelection::All;
    std::string skip;
};

// A layer a step converts: a float Linear, or a Conv2d with groups 1 (`conv`), seen as the GEMM it runs:
// in = C*KH*KW and out = K for a conv.
struct LinearSite {
    std::string path; // ModelEditor path, "layers.1"
    std::int64_t in = 0, out = 0;
    bool bias = true;
    bool conv = false;
    QuantizedConvShape convShape;
};

// The layers (blocks included, depth-first) a step converts: f32 Linear layers, and with `convs` Conv2d layers
// of groups 1 (grouped and depthwise ones stay float). `layers: all_but_last` leaves out the last Linear.
// ConfigError naming the step (and the skip field, `skipField`) when a skipped path names no such layer, or
// when none is left.
std::vector<LinearSite> selectSites(Model& model, const SiteSettings& s, const std::string& step, bool convs = true,
                                    const std::string& skipField = "skip");

// The fields every quantize step shares, declared once: `layers` and `skip` (SiteSettings), and `calibration`,
// `percentile`, `calibration_samples` (CalibrationSettings). A step includes them into its own schema.
const SchemaBuilder<SiteSettings>& siteSchema();
const SchemaBuilder<CalibrationSettings>& calibrationSchema();

// The format a step converts to, with what it needs to know.
struct QuantChoice {
    // F16 or BF16: the Linear keeps its type with a 16-bit weight (linear{dtype}); F32: a qlinear of `layer`.
    DType floatFormat = DType::F32;
    QuantizedLinearConfig layer; // in, out and bias are filled per site
    CalibrationSettings calibration;
    bool needsCalibration() const { return layer.activations == ActivationQuant::Static; }
    std::string describe() const; // "int8 W8A8 per-channel, static (percentile 99.99)", "int4 g128 asymmetric"
};

// The layer replacing the float Linear at `site` (a qlinear, or a Linear with a 16-bit weight) (its weights as they are now); `record` is the site's
// calibration record for static activations. The layer is not put in the model.
std::unique_ptr<Layer> quantizedSite(StepContext& ctx, const LinearSite& site, const QuantChoice& choice,
                                     const ActivationRecord* record);

// Per-layer figures of a converted site (weight SQNR, bits per weight, the calibrated clip) as layer stats
// under "<path>.weight".
void recordSiteStats(StepContext& ctx, const LinearSite& site, Layer& floatLayer, Layer& quantized,
                     const ActivationRecord* record, const QuantChoice& choice);

// Summary keys of the model as it is now: weight_bits_mean (stored bits per weight of every Linear and Conv2d
// weight, scales and zero points included), layers_quantized, layers_kept_fp (Linear and Conv2d layers left in
// float).
void reportSizes(StepContext& ctx);

// Refuses, before the step does anything, a format the run's backend has no kernel for: ConfigError naming
// the step, the format, the backend and the op it lacks (e.g. "cuda:0 has no gemm f32 x u8 -> f32 [nf4
// group-wise weights]"). `convs`: the sites include convolutions (im2col_rows, rows_to_channels).
void requireKernels(StepContext& ctx, const QuantChoice& choice, const std::string& step, bool convs);
void requireKernels(const Backend& be, const QuantChoice& choice, const std::string& step, bool convs);
// How the FP8 GEMM of an fp8 step runs on `be`: Native on FP8 units; Emulated where there are none and the step
// allows simulation; otherwise ConfigError naming the step, the format, the backend and the reason.
Fp8Mode fp8ModeFor(const Backend& be, const QuantChoice& choice, const std::string& step);

// Accuracy on the evaluated split.
double evalAccuracy(StepContext& ctx, Model& model);

// The output of `layer` for input x, downloaded.
std::vector<float> layerOutput(Backend& be, Layer& layer, const Tensor& x);

// quantize.sensitivity and quantize.auto_mixed (sensitivity.cpp).
void registerSensitivity(StrategyRegistry& registry);
// quantize.smoothquant (smoothquant.cpp).
void registerSmoothQuant(StrategyRegistry& registry);

} // namespace lathe::quant

// The quantized Linear (layer type "qlinear"): y = act(x W^T + b) with W stored for real in a low-precision
// format and run by that format's kernel — never a float tensor holding rounded values.
//   weight-only ("activations": "none"): W int8, int4, nf4 or fp8 group-wise (quant_matrix.h), Backend::gemmWeightOnly;
//   FP8 GEMM (W fp8 per output channel, "activations": "dynamic"): x quantized to E4M3 per tensor at run time,
//   Backend::gemmFp8 (cuBLASLt on compute capability >= 8.9; elsewhere emulated in f32 only with "simulate");
//   W8A8 ("activations": "dynamic" per row, or "static" with a calibrated per-tensor scale): W int8 per output
//   channel or per tensor, activations quantized by Backend::quantizeRows, Backend::gemmInt8 (i32 sums,
//   dequantized with the bias and activation in its epilogue).
// It is an inference layer: a training forward or a backward throws (quantization-aware training fine-tunes
// the float model with fake quantization, then converts).
//
// Saved tensors (safetensors names under the layer's prefix, after the compressed-tensors convention):
//   weight_packed      I8 (out, in), F8_E4M3 (out, in) for fp8, or U8 (out, ceil(in / 2)) for int4 and nf4
//   weight_scale       F32 (out, groups) weight-only and fp8; F32 (out) per channel or (1) per tensor for W8A8
//   weight_scale_packed, weight_scale_absmax, weight_scale_offset   instead of weight_scale for nf4 with
//                      "double_quant": U8 (out, groups) 8-bit codes of the absmax, F32 (ceil(out * groups / 256))
//                      per-block absmax, F32 (1) the offset (quant_matrix.h)
//   weight_zero_point  U8 (out, groups), asymmetric int4 only
//   input_scale        F32 (1), static W8A8 only
//   bias               F32 (out), when the layer has one
// with the layer's config (below) in the architecture JSON, so a reload gives bit-identical outputs.
#pragma once

#include "engine/nn/layer.h"
#include "engine/nn/model.h"

#include <memory>
#include <string>

namespace lathe {

enum class ActivationQuant : std::uint8_t { None, Dynamic, Static };
const char* activationQuantName(ActivationQuant a); // "none", "dynamic", "static"
const char* activationName(Activation a);           // "none", "relu", "gelu"

struct QuantizedLinearConfig {
    std::int64_t in = 0, out = 0;
    bool bias = true;
    // Weight-only: the format, its group along `in` and (int4) symmetry. W8A8 uses int8 with `perChannel`.
    QuantSpec weights{WeightFormat::Int8, 0, true}; // group 0: one group per row (per output channel)
    ActivationQuant activations = ActivationQuant::None;
    bool perChannel = true; // W8A8 weight scales: one per output channel, else one for the tensor
    Activation epilogue = Activation::None; // applied in the GEMM's epilogue (a fused following ReLU / GELU)
    // fp8 with "dynamic" activations (the FP8 GEMM) on a backend without FP8 units: run its numerics in f32
    // (Backend::gemmFp8, Fp8Mode::Emulated) instead of refusing.
    bool simulate = false;
    nlohmann::json toJson() const;
    // The effective group of a weight-only layer (group 0 or >= in: in).
    std::int64_t group() const { return weights.group <= 0 || weights.group > in ? in : weights.group; }
};

// The convolution a qconv2d runs (groups 1): its input channels, kernel, stride and padding. Its weight is the
// qlinear GEMM's, (K, C*KH*KW): the Conv2d weight (K, C, KH, KW) in its own memory order.
struct QuantizedConvShape {
    std::int64_t inChannels = 1, kernelH = 1, kernelW = 1, strideH = 1, strideW = 1, padH = 0, padW = 0;
};

// A qlinear from float weights w (out, in), bias (out) or null, and for static W8A8 the calibrated activation
// scale (max |x| the quantized range should cover / 127). Tensors land on `be`.
std::unique_ptr<Layer> makeQuantizedLinear(Backend& be, const QuantizedLinearConfig& config, const float* w,
                                           const float* bias, float inputScale = 0.0f);
// A qconv2d ("qconv2d": a Conv2d with groups 1 run as im2col rows through the quantized GEMM of `gemm`, whose in
// is C*KH*KW and out K) from float weights w (K, C, KH, KW), bias (K) or null, and a static input scale.
std::unique_ptr<Layer> makeQuantizedConv2d(Backend& be, const QuantizedLinearConfig& gemm,
                                           const QuantizedConvShape& shape, const float* w, const float* bias,
                                           float inputScale = 0.0f);
// The config of a qlinear layer, or of a qconv2d's GEMM (ConfigError when `layer` is neither).
QuantizedLinearConfig quantizedLinearConfig(const Layer& layer);
// The weight a qlinear (or qconv2d) multiplies by, dequantized to f32 (out, in): what the kernels compute with.
std::vector<float> dequantizedWeight(Backend& be, Layer& layer);
// Bytes the layer stores: codes, scales, zero points, input scale and bias.
std::uint64_t quantizedLinearBytes(Layer& layer);

} // namespace lathe

// FLOP counts from the layers' configs and the shapes ModelEditor::list() walks through.
#include "engine/measure/flops.h"

#include "engine/nn/model_edit.h"

namespace lathe {
namespace {

std::int64_t kernelArea(const nlohmann::json& kernel) {
    if (kernel.is_array()) return kernel.at(0).get<std::int64_t>() * kernel.at(1).get<std::int64_t>();
    const auto k = kernel.get<std::int64_t>();
    return k * k;
}

} // namespace

double layerFlopsPerSample(const nlohmann::json& config, const Shape& inputShape, const Shape& outputShape) {
    const std::string type = config.value("type", "");
    // Quantized and tied Linears do the same multiply-adds as the dense layer (dense-equivalent FLOPs).
    if (type == "linear" || type == "qlinear" || type == "tied_linear") {
        const auto in = config.at("in").get<double>(), out = config.at("out").get<double>();
        const double rows = static_cast<double>(numel(inputShape)) / in; // 1 for (1, in), T for (1, T, in)
        return 2.0 * rows * in * out;
    }
    if (type == "conv2d" || type == "qconv2d") {
        const auto in = config.at("in").get<double>();
        const double groups = config.contains("groups") ? config.at("groups").get<double>() : 1.0;
        const double macsPerOutput = in / groups * static_cast<double>(kernelArea(config.at("kernel")));
        return 2.0 * static_cast<double>(numel(outputShape)) * macsPerOutput;
    }
    if (type == "attention" && outputShape.size() >= 2) {
        // Scores Q K^T and the weighted sum of V: 2 x T x T x D multiply-adds per sequence (all heads together),
        // as if no position were masked.
        const double t = static_cast<double>(outputShape[outputShape.size() - 2]);
        const double d = static_cast<double>(outputShape.back());
        const double rows = static_cast<double>(numel(outputShape)) / (t * d); // sequences per sample (1)
        return 4.0 * rows * t * t * d;
    }
    return 0.0;
}

double forwardFlopsPerSample(Model& model) {
    double flops = 0;
    for (const LayerInfo& info : ModelEditor(model).list())
        flops += layerFlopsPerSample(ModelEditor(model).layer(info.path).config(), info.inputShape, info.outputShape);
    return flops;
}

} // namespace lathe

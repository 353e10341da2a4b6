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
    if (type == "linear") {
        const auto in = config.at("in").get<double>(), out = config.at("out").get<double>();
        const double rows = static_cast<double>(numel(inputShape)) / in; // 1 for (1, in), T for (1, T, in)
        return 2.0 * rows * in * out;
    }
    if (type == "conv2d") {
        const auto in = config.at("in").get<double>();
        const double groups = config.contains("groups") ? config.at("groups").get<double>() : 1.0;
        const double macsPerOutput = in / groups * static_cast<double>(kernelArea(config.at("kernel")));
        return 2.0 * static_cast<double>(numel(outputShape)) * macsPerOutput;
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

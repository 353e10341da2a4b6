#include "engine/measure/roofline.h"

#include "engine/measure/flops.h"

#include <algorithm>

namespace lathe {

ForwardWork forwardWork(Model& model, std::int64_t batch) {
    const double b = static_cast<double>(batch);
    ForwardWork w;
    w.flops = forwardFlopsPerSample(model) * b;
    const double inputBytes = static_cast<double>(numel(model.inputShape())) * 4.0;  // (B, input...) f32
    const double logitBytes = static_cast<double>(model.numClasses()) * 4.0;         // (B, classes) f32
    w.bytes = static_cast<double>(model.parameterBytes()) + b * (inputBytes + logitBytes);
    return w;
}

RooflinePoint rooflinePoint(const ForwardWork& work, double latencyMs) {
    RooflinePoint p;
    if (!(latencyMs > 0)) return p;
    const double seconds = latencyMs * 1e-3;
    p.intensity = work.bytes > 0 ? work.flops / work.bytes : 0.0;
    p.gflopsPerS = work.flops / seconds * 1e-9;
    p.gbPerS = work.bytes / seconds * 1e-9;
    return p;
}

double attainableGflops(const RoofPeaks& peaks, double intensity) {
    return std::min(peaks.gflopsPerS, intensity * peaks.gbPerS);
}

double rooflineFraction(const RoofPeaks& peaks, const RooflinePoint& point) {
    if (!(peaks.gflopsPerS > 0) || !(peaks.gbPerS > 0)) return 0.0;
    const double roof = attainableGflops(peaks, point.intensity);
    return roof > 0 ? point.gflopsPerS / roof : 0.0;
}

double ridgeIntensity(const RoofPeaks& peaks) {
    return peaks.gbPerS > 0 ? peaks.gflopsPerS / peaks.gbPerS : 0.0;
}

int addRooflineFractions(std::map<std::string, double>& summary, const RoofPeaks& peaks) {
    if (!(peaks.gflopsPerS > 0) || !(peaks.gbPerS > 0)) return 0;
    static const std::string kAchieved = "achieved_tflops";
    std::map<std::string, double> added;
    for (const auto& [key, value] : summary) {
        const std::size_t at = key.find(kAchieved);
        if (at == std::string::npos || (at > 0 && key[at - 1] != '.')) continue;
        const std::string prefix = key.substr(0, at), suffix = key.substr(at + kAchieved.size());
        if (!suffix.empty() && suffix.rfind("@b", 0) != 0) continue;
        auto intensity = summary.find(prefix + "arithmetic_intensity" + suffix);
        if (intensity == summary.end()) continue;
        const RooflinePoint p{intensity->second, value * 1e3, 0.0};
        added[prefix + "roofline_fraction" + suffix] = rooflineFraction(peaks, p);
    }
    for (auto& [k, v] : added) summary[k] = v;
    return static_cast<int>(added.size());
}

} // namespace lathe

// The roofline model of one timed forward: how much arithmetic it does, how many bytes it must at least
// move, the FLOP/s and bytes/s its measured latency implies, and how far that sits under the device's roof
// (the attainable FLOP/s at its arithmetic intensity: min(peak FLOP/s, intensity x peak bandwidth)).
//
// The work counted is the model's dense-equivalent FLOPs (flops.h: 2 x multiply-adds of Linear and Conv2d,
// as if every weight were there) and its compulsory traffic: every parameter and buffer once as stored (so
// an int8 or 4-bit model moves fewer bytes than its FP32 parent), plus the batch's f32 input and f32 logits.
// Intermediate activations are left out (they may stay in cache), so the intensity is an upper bound and the
// achieved bandwidth a lower bound of what the device really moved.
#pragma once

#include "engine/nn/model.h"

#include <cstdint>
#include <map>
#include <string>

namespace lathe {

struct ForwardWork {
    double flops = 0; // one forward of the whole batch
    double bytes = 0;
};

// Measured peaks of one device, as `lathe-cli bench peaks` measures them (device_peaks.h).
struct RoofPeaks {
    double gflopsPerS = 0; // f32 GEMM
    double gbPerS = 0;     // device memory, a large copy (read + write)
};

struct RooflinePoint {
    double intensity = 0;  // FLOP per byte
    double gflopsPerS = 0; // achieved
    double gbPerS = 0;     // achieved
};

ForwardWork forwardWork(Model& model, std::int64_t batch);
// latencyMs > 0; a work of zero bytes gives intensity 0.
RooflinePoint rooflinePoint(const ForwardWork& work, double latencyMs);
// min(peak FLOP/s, intensity x bandwidth), in GFLOP/s.
double attainableGflops(const RoofPeaks& peaks, double intensity);
// achieved / attainable, or 0 when the peaks are unknown (zero).
double rooflineFraction(const RoofPeaks& peaks, const RooflinePoint& point);
// The intensity where the two roofs meet (the ridge point), FLOP per byte; 0 when unknown.
double ridgeIntensity(const RoofPeaks& peaks);

// For every "achieved_tflops" key of a summary (with its label prefix and "@b<batch>" suffix) that has its
// "arithmetic_intensity" beside it, adds the matching "roofline_fraction" key. Returns how many it added;
// none when the peaks are unknown.
int addRooflineFractions(std::map<std::string, double>& summary, const RoofPeaks& peaks);

} // namespace lathe

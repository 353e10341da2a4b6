// Calibration of static activation scales: what a quantized layer's input looks like on samples of the
// training split (never the evaluated split), and the clipping range each method draws from it. Int8
// activations are symmetric (codes in [-127, 127]), so every method picks a clip `amax` for |x| and the
// layer's scale is amax / 127.
#pragma once

#include "engine/nn/model.h"
#include "engine/strategies/strategy.h"

#include <string>
#include <vector>

namespace lathe::quant {

enum class CalibrationMethod { MinMax, MovingAverage, Percentile, Mse, Entropy };
const char* calibrationName(CalibrationMethod m); // "minmax", "moving_average", "percentile", "mse", "entropy"
std::vector<std::pair<std::string, CalibrationMethod>> calibrationChoices();

struct CalibrationSettings {
    CalibrationMethod method = CalibrationMethod::Percentile;
    double percentile = 99.99;      // of |x|, for Percentile
    std::int64_t samples = 512;     // from the training split
    std::int64_t batch = 64;
    double averagingConstant = 0.01; // MovingAverage: PyTorch MovingAverageMinMaxObserver's default
};

// What one layer's input showed over the calibration batches.
struct ActivationRecord {
    std::vector<float> absValues;    // |x| of every calibration input value
    std::vector<float> batchMax;     // max |x| of each batch, in order
    Tensor firstBatch;               // the layer's input on the first calibration batch (on the backend)
};

// Runs the calibration samples through the model, recording the input of every layer at `paths` (ModelEditor
// paths of Linear layers; the model is left as it was). Clamps the sample count to the training split with a
// warning.
std::vector<ActivationRecord> recordInputs(StepContext& ctx, const std::vector<std::string>& paths,
                                           const CalibrationSettings& s, const std::string& step);

// The clip for |x| a method picks from a record. Entropy follows TensorRT's KL-divergence calibration
// (2048-bin histogram, 128 quantized bins); Mse minimises the expected squared error of clipping plus rounding
// over the same histogram.
double clipFor(const ActivationRecord& r, const CalibrationSettings& s);

// Signal-to-quantization-noise ratio in dB: 10 log10(sum ref^2 / sum (ref - q)^2); +inf when they agree.
double sqnrDb(const std::vector<float>& ref, const std::vector<float>& q);

} // namespace lathe::quant

// Calibration: a recording stand-in takes each observed layer's place for the calibration forward passes (same
// parameters, same names, same output), keeps what its input showed, and gives the layer back.
#include "engine/strategies/quantize/calibration.h"

#include "engine/measure/latency.h"
#include "engine/nn/model_edit.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace lathe::quant {
namespace {

// Wraps a layer for the calibration passes: forwards to it and records its input.
class Recorder final : public Layer {
public:
    Recorder(std::unique_ptr<Layer> inner, ActivationRecord& record) : m_inner(std::move(inner)), m_record(record) {}
    std::string type() const override { return m_inner->type(); }
    nlohmann::json config() const override { return m_inner->config(); }
    Shape outputShape(const Shape& input) const override { return m_inner->outputShape(input); }
    Tensor forward(Backend& be, const Tensor& x, const ForwardContext& ctx) override {
        const std::vector<float> values = be.downloadF32(x);
        float batchMax = 0;
        for (float v : values) {
            const float a = std::fabs(v);
            batchMax = std::max(batchMax, a);
            m_record.absValues.push_back(a);
        }
        m_record.batchMax.push_back(batchMax);
        if (!m_record.firstBatch.defined()) {
            m_record.firstBatch = be.empty(x.shape());
            be.copy(x, m_record.firstBatch);
        }
        return m_inner->forward(be, x, ctx);
    }
    Tensor backward(Backend& be, const Tensor& dy) override { return m_inner->backward(be, dy); }
    std::vector<Parameter*> parameters() override { return m_inner->parameters(); }
    std::vector<Buffer*> buffers() override { return m_inner->buffers(); }
    std::unique_ptr<Layer> release() { return std::move(m_inner); }
    std::unique_ptr<Layer> swapInner(std::unique_ptr<Layer> inner) {
        std::swap(inner, m_inner);
        return inner;
    }

private:
    std::unique_ptr<Layer> m_inner;
    ActivationRecord& m_record;
};

constexpr int kHistogramBins = 2048;
constexpr int kQuantizedBins = 128; // |x| onto the 128 magnitudes of symmetric int8 codes (0..127)

std::vector<double> histogram(const std::vector<float>& values, double top) {
    std::vector<double> h(kHistogramBins, 0.0);
    if (top <= 0) return h;
    for (float v : values) {
        const int b = std::min(kHistogramBins - 1, static_cast<int>(double(v) / top * kHistogramBins));
        h[static_cast<std::size_t>(b)] += 1.0;
    }
    return h;
}

// TensorRT's entropy calibration: for each candidate clip at bin i, the reference P is the histogram up to i
// with everything beyond folded into bin i - 1, the candidate Q is P merged into 128 bins and spread back over
// the nonzero bins it came from; the clip of the smallest KL(P || Q) wins.
double entropyClip(const std::vector<double>& h, double top) {
    double best = std::numeric_limits<double>::infinity();
    int bestI = kHistogramBins;
    for (int i = kQuantizedBins; i <= kHistogramBins; ++i) {
        std::vector<double> p(h.begin(), h.begin() + i);
        double outliers = 0;
        for (int j = i; j < kHistogramBins; ++j) outliers += h[static_cast<std::size_t>(j)];
        p.back() += outliers;
        std::vector<double> q(static_cast<std::size_t>(i), 0.0);
        const double perBin = double(i) / kQuantizedBins;
        for (int b = 0; b < kQuantizedBins; ++b) {
            const int start = static_cast<int>(std::floor(b * perBin));
            const int stop = b == kQuantizedBins - 1 ? i : static_cast<int>(std::floor((b + 1) * perBin));
            double sum = 0;
            int nonzero = 0;
            for (int j = start; j < stop; ++j) {
                sum += h[static_cast<std::size_t>(j)]; // the unfolded counts, as TensorRT merges them
                nonzero += h[static_cast<std::size_t>(j)] > 0 ? 1 : 0;
            }
            if (nonzero == 0) continue;
            for (int j = start; j < stop; ++j)
                if (h[static_cast<std::size_t>(j)] > 0) q[static_cast<std::size_t>(j)] = sum / nonzero;
        }
        double sp = 0, sq = 0;
        for (int j = 0; j < i; ++j) {
            sp += p[static_cast<std::size_t>(j)];
            sq += q[static_cast<std::size_t>(j)];
        }
        if (sp <= 0 || sq <= 0) continue;
        double kl = 0;
        for (int j = 0; j < i; ++j) {
            const double pj = p[static_cast<std::size_t>(j)] / sp;
            if (pj <= 0) continue;
            const double qj = q[static_cast<std::size_t>(j)] / sq;
            kl += qj > 0 ? pj * std::log(pj / qj) : pj * std::log(pj / 1e-12); // a mass Q cannot hold
        }
        if (kl < best) {
            best = kl;
            bestI = i;
        }
    }
    return (bestI + 0.5) * top / kHistogramBins;
}

// The clip minimising the expected squared error: values above it lose (v - clip)^2, values below it the
// rounding error of a step clip / 127, whose mean square is step^2 / 12.
double mseClip(const std::vector<double>& h, double top) {
    double best = std::numeric_limits<double>::infinity(), bestClip = top;
    for (int c = 16; c <= kHistogramBins; c += 8) {
        const double clip = double(c) / kHistogramBins * top;
        const double step = clip / 127.0;
        double err = 0;
        for (int j = 0; j < kHistogramBins; ++j) {
            const double n = h[static_cast<std::size_t>(j)];
            if (n == 0) continue;
            const double v = (j + 0.5) / kHistogramBins * top;
            err += n * (v > clip ? (v - clip) * (v - clip) : step * step / 12.0);
        }
        if (err < best) {
            best = err;
            bestClip = clip;
        }
    }
    return bestClip;
}

} // namespace

const char* calibrationName(CalibrationMethod m) {
    for (const auto& [name, value] : calibrationChoices())
        if (value == m) {
            static thread_local std::string s;
            s = name;
            return s.c_str();
        }
    return "?";
}

std::vector<std::pair<std::string, CalibrationMethod>> calibrationChoices() {
    return {{"minmax", CalibrationMethod::MinMax},
            {"moving_average", CalibrationMethod::MovingAverage},
            {"percentile", CalibrationMethod::Percentile},
            {"mse", CalibrationMethod::Mse},
            {"entropy", CalibrationMethod::Entropy}};
}

std::vector<ActivationRecord> recordInputs(StepContext& ctx, const std::vector<std::string>& paths,
                                           const CalibrationSettings& s, const std::string& step) {
    const Dataset& train = ctx.data().train;
    if (train.size() == 0) throw DataError(step + ": calibration needs samples of the training split, which is empty");
    std::int64_t samples = s.samples;
    if (samples > train.size()) {
        ctx.warn(step + ": calibration_samples " + std::to_string(samples) + " is more than the training split's " +
                 std::to_string(train.size()) + " samples; using all of them");
        samples = train.size();
    }
    Model& model = ctx.model();
    Backend& be = ctx.backend();
    std::vector<ActivationRecord> records(paths.size());
    ModelEditor editor(model);
    // Every observed layer gives way to a recorder, and comes back however the passes end.
    std::vector<Recorder*> recorders;
    auto restore = [&] {
        for (std::size_t i = 0; i < recorders.size(); ++i) {
            auto old = editor.replace(paths[i], recorders[i]->release());
            (void)old; // the recorder, now empty
        }
        recorders.clear();
    };
    try {
        for (std::size_t i = 0; i < paths.size(); ++i) {
            // The recorder enters the model around a stand-in of the same shape, then takes the layer itself.
            auto recorder = std::make_unique<Recorder>(editor.create(editor.layer(paths[i]).config(), 0), records[i]);
            Recorder* r = recorder.get();
            auto layer = editor.replace(paths[i], std::move(recorder));
            recorders.push_back(r);
            r->swapInner(std::move(layer));
        }
        const std::int64_t batch = std::min(s.batch, samples);
        const int batches = static_cast<int>((samples + batch - 1) / batch);
        const auto inputs = makeInputBatches(be, model, train.head(samples), batch, batches);
        for (const Tensor& x : inputs) {
            if (ctx.cancel && ctx.cancel->load(std::memory_order_relaxed)) throw CancelledError();
            model.forward(x, ForwardContext{});
        }
        be.synchronize();
    } catch (...) {
        restore();
        throw;
    }
    restore();
    return records;
}

double clipFor(const ActivationRecord& r, const CalibrationSettings& s) {
    if (r.absValues.empty()) return 0;
    const double top = *std::max_element(r.absValues.begin(), r.absValues.end());
    switch (s.method) {
    case CalibrationMethod::MinMax: return top;
    case CalibrationMethod::MovingAverage: {
        double avg = r.batchMax.front();
        for (std::size_t i = 1; i < r.batchMax.size(); ++i) avg += s.averagingConstant * (r.batchMax[i] - avg);
        return avg;
    }
    case CalibrationMethod::Percentile: {
        std::vector<float> v = r.absValues;
        const auto k = static_cast<std::size_t>(std::min<double>(double(v.size() - 1),
                                                                 std::ceil(s.percentile / 100.0 * double(v.size())) - 1));
        std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
        return v[k];
    }
    case CalibrationMethod::Mse: return mseClip(histogram(r.absValues, top), top);
    case CalibrationMethod::Entropy: return entropyClip(histogram(r.absValues, top), top);
    }
    return top;
}

double sqnrDb(const std::vector<float>& ref, const std::vector<float>& q) {
    double signal = 0, noise = 0;
    for (std::size_t i = 0; i < ref.size() && i < q.size(); ++i) {
        signal += double(ref[i]) * ref[i];
        noise += (double(ref[i]) - q[i]) * (double(ref[i]) - q[i]);
    }
    if (noise == 0) return std::numeric_limits<double>::infinity();
    return 10.0 * std::log10(signal / noise);
}

} // namespace lathe::quant

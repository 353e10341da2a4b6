// Quantization-aware fine-tuning (finetune's `qat` fields): during one training phase the float Linear
// weights are fake-quantized with a straight-through estimator, by exactly the host codec the conversion
// steps (quantize.int8 / int4 / nf4) use, so the fine-tuned weights are the ones a later conversion stores.
#pragma once

#include "engine/core/quant_matrix.h"
#include "engine/strategies/quantize/quantize_common.h"

#include <memory>
#include <string>
#include <vector>

namespace lathe::quant {

enum class QatFormat { None, Int8, Int4, Nf4 };

// finetune's `qat`, `qat_group`, `qat_symmetric`, `qat_skip`.
struct QatSettings {
    QatFormat format = QatFormat::None;
    std::int64_t group = 128; // int8: per channel where group >= in
    bool symmetric = true;    // int4 only
    std::string skip;         // paths kept in float, as quantize's `skip`
    bool enabled() const { return format != QatFormat::None; }
    QuantSpec spec() const;   // the codec's spec (format must not be None)
};

// The fields above, for a step's schema (finetune includes them).
const SchemaBuilder<QatSettings>& qatSchemaBuilder();
// The format, as the conversion step that keeps the fine-tuned weights describes it ("int4 weight-only,
// group 128, symmetric"), for notes and messages.
std::string describeQat(const QatSettings& s);

// Fake quantization of a model's selected Linear weights W with a float master copy M kept on the host:
//   start():              M = W, W = Q(M)
//   afterOptimizerStep(): M += W - Q(M_old) (the optimizer's update, taken at Q(M): the straight-through
//                         estimator), W = Q(M)
// where Q is quantizeMatrix then dequantizeMatrix. The forward and backward of every training step so run
// on Q(M), and the weights stay on the grid when the phase ends. A weight decay acts on Q(M) too, and
// reaches M as part of the update. The codec runs on the host: on a GPU each
// step waits for its weights' download (a device codec would lift that; the small models here do not need it).
class WeightFakeQuantizer {
public:
    struct Site {
        std::string path;           // "layers.1"
        Parameter* weight = nullptr;
        std::int64_t rows = 0, cols = 0;
        std::vector<float> master;  // M (rows, cols)
        std::vector<float> onGrid;  // Q(M), what the weight holds
    };

    WeightFakeQuantizer(Model& model, Backend& be, const std::vector<LinearSite>& sites, QuantSpec spec);
    void start();
    void afterOptimizerStep();
    const std::vector<Site>& sites() const { return m_sites; }
    QuantSpec spec() const { return m_spec; }

private:
    void snap(Site& s); // onGrid = Q(master), uploaded into the weight

    Backend& m_be;
    QuantSpec m_spec;
    std::vector<Site> m_sites;
    std::vector<float> m_current; // scratch: the weight after the optimizer step
};

// Q(w): w quantized and dequantized by the conversion's codec, (rows, cols).
std::vector<float> fakeQuantize(const std::vector<float>& w, std::int64_t rows, std::int64_t cols, QuantSpec spec);

// Starts fake quantization for a training phase of `step`: every float f32 Linear of the model but those
// skipped (ConfigError naming `step` otherwise) is snapped to the grid; the caller runs afterOptimizerStep
// after every optimizer step of that phase only.
std::unique_ptr<WeightFakeQuantizer> startQat(StepContext& ctx, const QatSettings& s, const std::string& step);
// Validation: qat_skip names float Linear layers of the model (when its architecture is known).
void checkQat(const QatSettings& s, ModelCheck& check, const std::string& step);

// After the phase: per layer "<path>.weight" qat_weight_sqnr_db (M against Q(M), the quantization noise
// the fine-tuning left), summary qat_weight_sqnr_db_mean and qat_layers, note "qat" naming the format.
void reportQat(StepContext& ctx, const WeightFakeQuantizer& fq, const QatSettings& s);

} // namespace lathe::quant

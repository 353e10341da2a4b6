// The distillation objective (Hinton, Vinyals and Dean, 2015) as a trainer Loss: the student's logits
// against a teacher's soft targets at temperature T, mixed with cross-entropy on the labels by alpha.
// The teacher's logits come from a cache filled once before training (the teacher runs in inference
// mode, with no dropout or augmentation, so its logits for a sample never change) or from a teacher
// forward per batch; both give the same logits up to float rounding (the teacher's GEMMs round a batch of
// 256 cache rows differently from a training batch).
// Feature matching (optional, FitNets-style) adds beta * MSE(P s, t) per sample, where s is the output of
// a student layer, t that of a teacher layer (both flattened per sample) and P a linear projection the
// loss learns alongside with Adam; its gradient flows back into the student through that layer.
#pragma once

#include "engine/data/dataset.h"
#include "engine/nn/loss.h"
#include "engine/nn/model.h"
#include "engine/nn/optim.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace lathe {

enum class TeacherTargets {
    Cached,   // teacher logits of every training sample computed once (samples x classes floats on the host)
    OnTheFly, // a teacher forward per batch, on the batch the student sees
};

// Feature matching between one layer of each model (top-level layer indices, >= 0).
struct FeatureMatch {
    int studentLayer = 0;
    int teacherLayer = 0;
    float beta = 1.0f;       // weight of the per-sample feature MSE in the loss
    float lr = 1e-3f;        // the projection's Adam learning rate (0: the projection stays as initialised)
    std::uint64_t seed = 1;  // the projection's initial weights
};

struct DistillationSettings {
    float temperature = 2.0f;
    float alpha = 0.5f;      // weight of the soft part; 1 - alpha weighs the cross-entropy on the labels
    TeacherTargets targets = TeacherTargets::Cached;
    std::optional<FeatureMatch> features; // needs OnTheFly: the teacher's features come from its forward
};

class DistillationLoss final : public Loss {
public:
    // The teacher stays on `be` and is only read (inference forwards, in an inference scope that lasts as long as
    // the loss: destroy the loss before the teacher). For Cached, fills the cache from
    // the first `samples` samples of `train` with the teacher's own input preprocessing. For OnTheFly the
    // teacher sees the batch as preprocessed for the student, so both must preprocess alike (ConfigError).
    // `rowsPerInterval`: the most rows between two takeIntervalParts() calls (logInterval x batch size).
    DistillationLoss(Model& teacher, const Model& student, Backend& be, const Dataset& train, std::int64_t samples,
                     const DistillationSettings& settings, std::int64_t rowsPerInterval,
                     const std::atomic<bool>* cancel = nullptr);

    std::string name() const override { return m_settings.features ? "feature_distillation" : "distillation"; }
    void compute(Backend& be, const Tensor& logits, const LossBatch& batch, Tensor& losses, Tensor& dlogits,
                 float gradScale) override;
    int featureLayer() const override { return m_settings.features ? m_settings.features->studentLayer : -1; }

    struct Parts {
        double soft = 0, hard = 0, feature = 0; // means per sample (feature: 0 without feature matching)
        std::int64_t rows = 0;
    };
    // The mean soft and hard parts over the rows since the last call (one read-back: call it once per
    // logging interval, as the trainer reads its losses).
    Parts takeIntervalParts(Backend& be);
    const DistillationSettings& settings() const { return m_settings; }

private:
    // Adds beta * MSE(P s, t) to losses and its gradient for the student's feature to batch.dfeature.
    void matchFeatures(Backend& be, const LossBatch& batch, const Tensor& teacherFeature, Tensor& losses,
                       float gradScale);

    Model& m_teacher;
    // The teacher is frozen for the whole distillation: its weights laid out once for inference
    // (Model::InferenceScope); the loss must go before the teacher does.
    std::optional<Model::InferenceScope> m_teacherScope;
    DistillationSettings m_settings;
    int m_classes = 0;
    std::vector<float> m_cache;   // (samples, classes) teacher logits, Cached
    std::vector<float> m_rowHost; // (batch, classes) gathered from the cache
    Tensor m_teacherRows;         // (batch, classes) on the device
    Tensor m_parts;               // (rowsPerInterval, 2): soft, hard of every row since the last take
    Tensor m_featureParts;        // (rowsPerInterval): feature MSE of the same rows
    std::unique_ptr<Layer> m_projection; // student feature -> teacher feature, made on the first batch
    std::vector<NamedParameter> m_projectionParams;
    std::unique_ptr<Optimizer> m_projectionOptimizer;
    OptimizerState m_projectionState;
    Tensor m_ones;                // (teacher feature size, 1): row sums through a GEMM
    std::int64_t m_rows = 0;
    Parts m_spill;                // rows read back early when an interval outgrew m_parts
};

} // namespace lathe

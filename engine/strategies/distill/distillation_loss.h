// The distillation objective (Hinton, Vinyals and Dean, 2015) as a trainer Loss: the student's logits
// against a teacher's soft targets at temperature T, mixed with cross-entropy on the labels by alpha.
// The teacher's logits come from a cache filled once before training (the teacher runs in inference
// mode, with no dropout or augmentation, so its logits for a sample never change) or from a teacher
// forward per batch; both give the same logits up to float rounding (the teacher's GEMMs round a batch of
// 256 cache rows differently from a training batch).
#pragma once

#include "engine/data/dataset.h"
#include "engine/nn/loss.h"
#include "engine/nn/model.h"

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace lathe {

enum class TeacherTargets {
    Cached,   // teacher logits of every training sample computed once (samples x classes floats on the host)
    OnTheFly, // a teacher forward per batch, on the batch the student sees
};

struct DistillationSettings {
    float temperature = 4.0f;
    float alpha = 0.9f;      // weight of the soft part; 1 - alpha weighs the cross-entropy on the labels
    TeacherTargets targets = TeacherTargets::Cached;
};

class DistillationLoss final : public Loss {
public:
    // The teacher stays on `be` and is only read (inference forwards). For Cached, fills the cache from
    // the first `samples` samples of `train` with the teacher's own input preprocessing. For OnTheFly the
    // teacher sees the batch as preprocessed for the student, so both must preprocess alike (ConfigError).
    // `rowsPerInterval`: the most rows between two takeIntervalParts() calls (logInterval x batch size).
    DistillationLoss(Model& teacher, const Model& student, Backend& be, const Dataset& train, std::int64_t samples,
                     const DistillationSettings& settings, std::int64_t rowsPerInterval,
                     const std::atomic<bool>* cancel = nullptr);

    std::string name() const override { return "distillation"; }
    void compute(Backend& be, const Tensor& logits, const LossBatch& batch, Tensor& losses, Tensor& dlogits,
                 float gradScale) override;

    struct Parts {
        double soft = 0, hard = 0; // means per sample
        std::int64_t rows = 0;
    };
    // The mean soft and hard parts over the rows since the last call (one read-back: call it once per
    // logging interval, as the trainer reads its losses).
    Parts takeIntervalParts(Backend& be);
    const DistillationSettings& settings() const { return m_settings; }

private:
    Model& m_teacher;
    DistillationSettings m_settings;
    int m_classes = 0;
    std::vector<float> m_cache;   // (samples, classes) teacher logits, Cached
    std::vector<float> m_rowHost; // (batch, classes) gathered from the cache
    Tensor m_teacherRows;         // (batch, classes) on the device
    Tensor m_parts;               // (rowsPerInterval, 2): soft, hard of every row since the last take
    std::int64_t m_rows = 0;
    Parts m_spill;                // rows read back early when an interval outgrew m_parts
};

} // namespace lathe

// The training objective handed to the trainer: logits of a batch in, per-sample losses and dlogits out,
// all on the device. Cross-entropy is the default; distillation, masked and QAT losses implement the same.
#pragma once

#include "engine/backends/backend.h"

#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace lathe {

// The batch a loss sees, all on the training backend.
struct LossBatch {
    const Tensor& x;      // (N, inputShape...) preprocessed model input, e.g. for a teacher's forward
    const Tensor& labels; // I32 (N)
    std::int64_t step = 0; // global optimizer step, from 1
    std::span<const std::int64_t> indices = {}; // the rows' sample indices in the dataset (e.g. cached targets)
    // For a loss with a featureLayer(): that layer's output for the batch (N, ...), and where compute()
    // writes the gradient for it (same shape; left undefined: none).
    const Tensor* feature = nullptr;
    Tensor* dfeature = nullptr;
};

// How a new loss plugs in (one subclass, passed to train()):
// - Knowledge distillation: hold the teacher Model and the temperature T. In compute(), run
//   teacher.forward(batch.x, {}) (inference, no caches) to get teacher logits (N, C), then write per-sample
//   losses alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, labels) and their
//   gradient; dlogits must already carry the 1/N of the batch mean (gradScale below).
// - A masked loss (e.g. padding tokens, ignored classes): compute cross-entropy, then zero the rows of
//   losses and dlogits that do not count and scale dlogits by 1/(rows that count) instead of 1/N.
// The trainer sums `losses` on the host once per logging interval (no per-step synchronisation), so a
// loss must write every row it is given and must not read its results back itself.
class Loss {
public:
    virtual ~Loss() = default;
    virtual std::string name() const = 0;
    // logits (N, C) -> losses (N): the per-sample loss, and dlogits (N, C): d(gradScale * sum(losses))
    // / d logits. The trainer passes gradScale = 1/N (the batch mean) and reports mean(losses).
    virtual void compute(Backend& be, const Tensor& logits, const LossBatch& batch, Tensor& losses,
                         Tensor& dlogits, float gradScale) = 0;
    // A loss that also reads an intermediate output of the model (feature distillation): the index of the
    // top-level layer whose output it needs (LossBatch::feature), or -1 for none. The trainer adds the
    // gradient compute() writes to LossBatch::dfeature during backward.
    virtual int featureLayer() const { return -1; }
};

// Softmax cross-entropy against the labels: the trainer's default.
class CrossEntropyLoss final : public Loss {
public:
    std::string name() const override { return "cross_entropy"; }
    void compute(Backend& be, const Tensor& logits, const LossBatch& batch, Tensor& losses, Tensor& dlogits,
                 float gradScale) override;
};

} // namespace lathe

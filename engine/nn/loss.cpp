// Cross-entropy as a Loss: the backend's fused softmax cross-entropy, exactly what the trainer computed
// before losses became pluggable.
#include "engine/nn/loss.h"

namespace lathe {

void CrossEntropyLoss::compute(Backend& be, const Tensor& logits, const LossBatch& batch, Tensor& losses,
                               Tensor& dlogits, float gradScale) {
    be.softmaxCrossEntropy(logits, batch.labels, losses, dlogits, gradScale);
}

} // namespace lathe

// How much each attention head matters, measured on calibration samples: the entropy of its attention
// distribution, and the gradient of the loss with respect to a gate on its output (Michel, Levy and Neubig 2019,
// "Are Sixteen Heads Really Better than One?"). prune.heads ranks heads by either; the gate also serves the tests
// (a pruned model equals the original with the pruned heads' gates at 0).
#pragma once

#include "engine/data/dataset.h"
#include "engine/nn/model.h"

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace lathe::prune {

// An attention layer whose heads can be removed: linear D -> 3D (fused QKV), attention{heads}, linear D -> out.
struct AttentionSite {
    std::string path; // the attention layer's ModelEditor path
    std::int64_t heads = 0, headDim = 0;
    bool causal = false;
};

// Every attention layer of the model, depth-first. A layer not standing between two f32 linears of the right
// shapes is listed in `problems` ("layers.2.layers.0.layers.2: ...") instead.
std::vector<AttentionSite> attentionSites(Model& model, std::vector<std::string>* problems = nullptr);

// Calibration samples and batching; cancel is checked between batches.
struct Calibration {
    const Dataset& data;
    std::int64_t batch = 8;
    const std::atomic<bool>* cancel = nullptr;
};

// Mean entropy (nats) of each head's attention distribution, over every valid query of every sample (queries at
// padded positions left out), per site: [site][head]. The entropy comes from the attention op itself:
// H = lse - sum_j p_j s_j, and sum_j p_j s_j = scale q . (sum_j p_j k_j), the attention output with V := K.
std::vector<std::vector<double>> headEntropy(Model& model, Backend& be, const std::vector<AttentionSite>& sites,
                                             const Calibration& c);

// The gradient of the loss with respect to a gate xi_h on each head's output (y_h = xi_h * head_h, all gates 1),
// from backward passes of the mean per-token (per-sample) cross-entropy of each calibration batch.
struct HeadGradients {
    std::vector<std::vector<double>> grad;       // [site][head]: dL/dxi of the mean loss over all samples
    std::vector<std::vector<double>> importance; // [site][head]: sum over batches of |dL_batch/dxi| (Michel et al.)
    double loss = 0;                             // the mean loss over the calibration samples
};
HeadGradients headGateGradients(Model& model, Backend& be, const std::vector<AttentionSite>& sites,
                                const Calibration& c);

// The mean per-token cross-entropy of the model on the calibration samples (inference; accumulated in double).
double calibrationLoss(Model& model, Backend& be, const Calibration& c);

// While alive, a gate layer stands after every site's attention, its per-head weight xi (heads) all 1; the gates
// are removed (and the model restored) when it goes. Sites must not change in the meantime.
class HeadGates {
public:
    HeadGates(Model& model, const std::vector<AttentionSite>& sites);
    ~HeadGates();
    HeadGates(const HeadGates&) = delete;
    HeadGates& operator=(const HeadGates&) = delete;
    // The gate parameter of site i (heads values on the model's backend; set them to mask heads).
    Parameter& gate(std::size_t i);

private:
    Model& m_model;
    std::vector<std::string> m_paths; // where each gate stands
    std::vector<Parameter*> m_gates;
};

} // namespace lathe::prune

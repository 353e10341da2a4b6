// Quality without labels: a model's outputs on the evaluated split compared with reference outputs of the
// same inputs (the run's model before its steps: the FP32 encoder of a quantized one). For embedding models
// (one L2-normalised vector per sample), the cosine of each sample's two embeddings and how many of its 10
// nearest neighbours the reference and the model agree on.
#pragma once

#include "engine/backends/backend.h"
#include "engine/data/dataset.h"
#include "engine/nn/model.h"

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lathe {

// One output row per sample (N, D), on the host.
struct OutputSet {
    std::int64_t rows = 0;
    std::int64_t dim = 0;
    std::vector<float> values; // (N, D)
};

// The model's outputs on every sample of `data`, in order, batchSize at a time (inference mode).
OutputSet modelOutputs(Model& model, Backend& be, const Dataset& data, int batchSize = 64,
                       const std::atomic<bool>* cancel = nullptr);

// embedding_cosine_mean / embedding_cosine_min: cosine of each row of `outputs` with the same row of
// `reference`; retrieval_recall_at_10: the mean over samples of |kNN_ref(i) ∩ kNN_out(i)| / k with k = min(10,
// N - 1), neighbours by cosine, the sample itself left out, ties broken by the lower index. Throws ConfigError
// when the shapes differ.
std::map<std::string, double> outputFidelity(const OutputSet& reference, const OutputSet& outputs);

// The k nearest rows of each row by cosine (itself excluded), (N, k) indices, nearest first.
std::vector<std::int64_t> nearestNeighbours(const OutputSet& set, int k);

} // namespace lathe

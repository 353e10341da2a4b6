// Output fidelity against a reference model (fidelity.h): cosines and nearest-neighbour agreement.
#include "engine/measure/fidelity.h"

#include "engine/core/errors.h"
#include "engine/measure/latency.h"

#include <algorithm>
#include <cblas.h>
#include <cmath>
#include <numeric>

namespace lathe {

namespace {

// Rows scaled to unit length (a zero row stays zero).
std::vector<float> unitRows(const OutputSet& s) {
    std::vector<float> u = s.values;
    for (std::int64_t r = 0; r < s.rows; ++r) {
        float* row = u.data() + r * s.dim;
        double n = 0;
        for (std::int64_t k = 0; k < s.dim; ++k) n += double(row[k]) * row[k];
        const float inv = n > 0 ? static_cast<float>(1.0 / std::sqrt(n)) : 0.0f;
        for (std::int64_t k = 0; k < s.dim; ++k) row[k] *= inv;
    }
    return u;
}

} // namespace

OutputSet modelOutputs(Model& model, Backend& be, const Dataset& data, int batchSize, const std::atomic<bool>* cancel) {
    if (data.size() == 0) throw DataError(data.name + ": no samples to compute outputs of");
    if (batchSize < 1) throw ConfigError("batch size must be at least 1, got " + std::to_string(batchSize));
    if (model.backend() != &be) model.to(be);
    OutputSet out;
    out.rows = data.size();
    std::vector<std::int64_t> idx;
    ForwardContext ctx; // inference
    const Model::InferenceScope scope(model);
    for (std::int64_t start = 0; start < data.size(); start += batchSize) {
        if (cancel && cancel->load()) throw CancelledError();
        const std::int64_t n = std::min<std::int64_t>(batchSize, data.size() - start);
        idx.resize(static_cast<std::size_t>(n));
        std::iota(idx.begin(), idx.end(), start);
        const Tensor y = model.forward(uploadInputs(be, model, data, idx), ctx);
        const std::vector<float> host = be.downloadF32(y);
        if (out.dim == 0) {
            out.dim = y.numel() / n;
            out.values.reserve(static_cast<std::size_t>(out.rows * out.dim));
        }
        out.values.insert(out.values.end(), host.begin(), host.end());
    }
    return out;
}

std::vector<std::int64_t> nearestNeighbours(const OutputSet& set, int k) {
    const std::int64_t n = set.rows;
    const std::vector<float> u = unitRows(set);
    std::vector<std::int64_t> out(static_cast<std::size_t>(n * k));
    // Similarities a block of rows at a time: (B, N) = U_block U^T.
    const std::int64_t block = 256;
    std::vector<float> sim(static_cast<std::size_t>(block * n));
    std::vector<std::int64_t> order(static_cast<std::size_t>(n));
    for (std::int64_t r0 = 0; r0 < n; r0 += block) {
        const std::int64_t b = std::min(block, n - r0);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(b), static_cast<int>(n),
                    static_cast<int>(set.dim), 1.0f, u.data() + r0 * set.dim, static_cast<int>(set.dim), u.data(),
                    static_cast<int>(set.dim), 0.0f, sim.data(), static_cast<int>(n));
        for (std::int64_t i = 0; i < b; ++i) {
            const float* s = sim.data() + i * n;
            std::iota(order.begin(), order.end(), 0);
            order.erase(order.begin() + (r0 + i)); // not itself
            std::partial_sort(order.begin(), order.begin() + k, order.end(), [s](std::int64_t a, std::int64_t c) {
                return s[a] != s[c] ? s[a] > s[c] : a < c;
            });
            std::copy_n(order.begin(), k, out.begin() + (r0 + i) * k);
            order.resize(static_cast<std::size_t>(n));
        }
    }
    return out;
}

std::map<std::string, double> outputFidelity(const OutputSet& reference, const OutputSet& outputs) {
    if (reference.rows != outputs.rows || reference.dim != outputs.dim)
        throw ConfigError("outputs of shape (" + std::to_string(outputs.rows) + ", " + std::to_string(outputs.dim) +
                          ") cannot be compared with reference outputs of shape (" + std::to_string(reference.rows) +
                          ", " + std::to_string(reference.dim) + ")");
    if (reference.rows == 0) throw ConfigError("no outputs to compare");
    const std::vector<float> a = unitRows(reference), b = unitRows(outputs);
    double sum = 0, min = 1;
    for (std::int64_t r = 0; r < reference.rows; ++r) {
        double c = 0;
        for (std::int64_t k = 0; k < reference.dim; ++k) c += double(a[r * reference.dim + k]) * b[r * reference.dim + k];
        sum += c;
        min = std::min(min, c);
    }
    std::map<std::string, double> m{{"embedding_cosine_mean", sum / double(reference.rows)},
                                    {"embedding_cosine_min", min}};
    const int k = static_cast<int>(std::min<std::int64_t>(10, reference.rows - 1));
    if (k > 0) {
        const auto ra = nearestNeighbours(reference, k), rb = nearestNeighbours(outputs, k);
        double hits = 0;
        for (std::int64_t r = 0; r < reference.rows; ++r) {
            auto x = std::vector<std::int64_t>(ra.begin() + r * k, ra.begin() + (r + 1) * k);
            auto y = std::vector<std::int64_t>(rb.begin() + r * k, rb.begin() + (r + 1) * k);
            std::sort(x.begin(), x.end());
            std::sort(y.begin(), y.end());
            std::vector<std::int64_t> both;
            std::set_intersection(x.begin(), x.end(), y.begin(), y.end(), std::back_inserter(both));
            hits += double(both.size()) / k;
        }
        m["retrieval_recall_at_10"] = hits / double(reference.rows);
    }
    return m;
}

} // namespace lathe

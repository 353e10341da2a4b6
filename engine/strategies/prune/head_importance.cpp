// Head importance: the sites (attention between its two projections), the per-head gate layer put after each
// attention for the gradient score, a probe put before it for the entropy score, and the calibration passes.
#include "engine/strategies/prune/head_importance.h"

#include "engine/core/errors.h"
#include "engine/measure/latency.h"
#include "engine/nn/loss.h"
#include "engine/nn/model_edit.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <span>

namespace lathe::prune {
namespace {

// The layer at index i of the sequence holding `path` ("" when there is none).
std::string sibling(const std::string& path, std::int64_t delta) {
    const std::size_t dot = path.rfind('.');
    const std::int64_t i = std::stoll(path.substr(dot + 1)) + delta;
    return i < 0 ? std::string() : path.substr(0, dot + 1) + std::to_string(i);
}

// Why the layer at `path` (if any) cannot be the projection `what` of an attention of width d ("" when it can).
std::string projectionProblem(const ModelEditor& editor, const std::string& path, const char* what,
                              const std::string& shape) {
    Layer* l = nullptr;
    try {
        if (!path.empty()) l = &editor.layer(path);
    } catch (const ConfigError&) { // past the end of its sequence
    }
    if (!l) return std::string("no ") + what + " linear " + shape + " next to it";
    if (l->type() != "linear") return std::string("the ") + what + " next to it is a " + l->type() + ", not an f32 linear";
    for (Parameter* p : l->parameters())
        if (p->value.dtype() != DType::F32) return std::string("the ") + what + " linear's " + p->name + " is not f32";
    return {};
}

// y (N, T, D) = x with head h's Dh columns multiplied by xi_h. Backend ops only: the per-head factors are spread
// over the columns with biasAdd, applied with mul; dxi_h sums x * dy over head h's columns with biasGrad.
class HeadGate final : public Layer {
public:
    explicit HeadGate(std::int64_t heads) : m_heads(heads) {
        m_xi.name = "weight";
        m_xi.value = Tensor::host({heads}, DType::F32);
        std::fill_n(m_xi.value.ptr<float>(), heads, 1.0f);
    }
    std::string type() const override { return "head_gate"; }
    nlohmann::json config() const override { return {{"type", type()}, {"heads", m_heads}}; }
    Shape outputShape(const Shape& input) const override {
        if (input.size() != 3 || input[2] % m_heads != 0)
            throw ConfigError("head_gate: expected (N, T, D) with D divisible by " + std::to_string(m_heads) + ", got " +
                              shapeToString(input));
        return input;
    }
    Tensor forward(Backend& be, const Tensor& x, const ForwardContext& ctx) override {
        outputShape(x.shape());
        const std::int64_t rows = x.dim(0) * x.dim(1), dh = x.dim(2) / m_heads;
        Tensor factors = be.zeros({rows, m_heads, dh}); // xi_h at every column of head h
        be.biasAdd(factors, m_xi.value);
        Tensor y = be.empty(x.shape());
        be.mul(x, factors.view(x.shape()), y);
        if (ctx.training) {
            m_x = x;
            m_factors = factors.view(x.shape());
        }
        return y;
    }
    Tensor backward(Backend& be, const Tensor& dy) override {
        if (!m_x.defined()) throw ConfigError("head_gate: backward without a training forward");
        Tensor dx = be.empty(m_x.shape()), xdy = be.empty(m_x.shape());
        be.mul(dy.view(m_x.shape()), m_factors, dx);
        be.mul(m_x, dy.view(m_x.shape()), xdy);
        be.biasGrad(xdy.view({m_x.dim(0) * m_x.dim(1), m_heads, m_x.dim(2) / m_heads}), m_xi.grad, true);
        return dx;
    }
    std::vector<Parameter*> parameters() override { return {&m_xi}; }
    void releaseCache() override { m_x = m_factors = Tensor(); }

private:
    std::int64_t m_heads;
    Parameter m_xi;
    Tensor m_x, m_factors;
};

// Passes the attention's input (N, T, 3D) through unchanged and hands it, with the batch's sequence, to `see`.
class AttentionProbe final : public Layer {
public:
    using Observer = std::function<void(Backend&, const Tensor&, const ForwardContext&)>;
    explicit AttentionProbe(Observer see) : m_see(std::move(see)) {}
    std::string type() const override { return "attention_probe"; }
    nlohmann::json config() const override { return {{"type", type()}}; }
    Shape outputShape(const Shape& input) const override { return input; }
    Tensor forward(Backend& be, const Tensor& x, const ForwardContext& ctx) override {
        m_see(be, x, ctx);
        return x;
    }
    Tensor backward(Backend&, const Tensor& dy) override { return dy; }

private:
    Observer m_see;
};

// The calibration batches: sample indices [b * batch, min((b + 1) * batch, n)).
template <class Fn>
void forEachBatch(const Calibration& c, Fn&& fn) {
    const std::int64_t n = c.data.size();
    if (n == 0) throw DataError(c.data.name + ": no calibration samples");
    const std::int64_t batch = std::max<std::int64_t>(1, c.batch);
    std::vector<std::int64_t> idx;
    for (std::int64_t start = 0; start < n; start += batch) {
        if (c.cancel && c.cancel->load(std::memory_order_relaxed)) throw CancelledError();
        idx.resize(static_cast<std::size_t>(std::min(batch, n - start)));
        std::iota(idx.begin(), idx.end(), start);
        fn(std::span<const std::int64_t>(idx));
    }
}

// Labels of the batch (N * rowsPerSample) on the backend, checked against the model's output rows.
Tensor uploadLabels(Backend& be, const Model& model, const Dataset& data, std::span<const std::int64_t> idx) {
    if (!data.labelled)
        throw ConfigError(data.name + " has no labels: the loss (and its gradient) needs them");
    if (data.labelsPerSample != model.outputRowsPerSample())
        throw ConfigError("model " + model.name() + " predicts " + std::to_string(model.outputRowsPerSample()) +
                          " label(s) per sample but " + data.name + " has " + std::to_string(data.labelsPerSample));
    std::vector<std::int32_t> y;
    y.reserve(idx.size() * static_cast<std::size_t>(data.labelsPerSample));
    for (std::int64_t i : idx)
        for (std::int64_t r = 0; r < data.labelsPerSample; ++r)
            y.push_back(data.labels[static_cast<std::size_t>(i * data.labelsPerSample + r)]);
    return be.uploadI32(y, {static_cast<std::int64_t>(y.size())});
}

} // namespace

std::vector<AttentionSite> attentionSites(Model& model, std::vector<std::string>* problems) {
    const ModelEditor editor(model);
    std::vector<AttentionSite> sites;
    for (const LayerInfo& info : editor.list()) {
        if (info.type != "attention") continue;
        const nlohmann::json c = editor.layer(info.path).config();
        AttentionSite s{info.path, c.at("heads").get<std::int64_t>(), 0, c.value("causal", false)};
        const std::int64_t d = info.outputShape.back();
        s.headDim = d / s.heads;
        const std::string dd = std::to_string(d);
        std::string why = projectionProblem(editor, sibling(info.path, -1), "QKV projection", "(" + dd + "->" + std::to_string(3 * d) + ")");
        if (why.empty()) why = projectionProblem(editor, sibling(info.path, +1), "output projection", "(" + dd + "->...)");
        if (why.empty()) {
            sites.push_back(s);
        } else if (problems) {
            problems->push_back(info.path + ": " + why);
        }
    }
    return sites;
}

// Gates go in from the last site to the first and come out from the first to the last: an insertion shifts only
// the layers after it in its sequence, so every path stays right whatever the sites share a sequence.
HeadGates::HeadGates(Model& model, const std::vector<AttentionSite>& sites)
    : m_model(model), m_paths(sites.size()), m_gates(sites.size(), nullptr) {
    ModelEditor editor(model);
    std::size_t inserted = 0;
    try {
        for (std::size_t i = sites.size(); i-- > 0;) {
            auto gate = std::make_unique<HeadGate>(sites[i].heads);
            m_gates[i] = gate->parameters()[0];
            editor.insertAfter(sites[i].path, std::move(gate));
            m_paths[i] = sibling(sites[i].path, +1);
            ++inserted;
        }
    } catch (...) {
        for (std::size_t i = sites.size() - inserted; i < sites.size(); ++i) editor.remove(m_paths[i]);
        throw;
    }
}

HeadGates::~HeadGates() {
    ModelEditor editor(m_model);
    for (const std::string& path : m_paths) {
        try {
            editor.remove(path);
        } catch (const std::exception&) { // a destructor only drops what it cannot undo
        }
    }
}

Parameter& HeadGates::gate(std::size_t i) { return *m_gates.at(i); }

std::vector<std::vector<double>> headEntropy(Model& model, Backend& be, const std::vector<AttentionSite>& sites,
                                             const Calibration& c) {
    std::vector<std::vector<double>> sum(sites.size()), count(sites.size());
    ModelEditor editor(model);
    // Probes go in before the last site first and come out from the first (as HeadGates does): each takes its
    // attention's path, which no later insertion shifts.
    std::size_t inserted = 0;
    auto removeProbes = [&] {
        for (std::size_t i = sites.size() - inserted; i < sites.size(); ++i) editor.remove(sites[i].path);
        inserted = 0;
    };
    try {
        for (std::size_t i = sites.size(); i-- > 0;) {
            const AttentionSite s = sites[i];
            sum[i].assign(static_cast<std::size_t>(s.heads), 0.0);
            count[i].assign(static_cast<std::size_t>(s.heads), 0.0);
            auto see = [s, &sumI = sum[i], &countI = count[i]](Backend& b, const Tensor& x, const ForwardContext& ctx) {
                const std::int64_t n = x.dim(0), t = x.dim(1), d = s.heads * s.headDim;
                AttentionParams p;
                p.heads = s.heads;
                p.headDim = s.headDim;
                p.qOffset = 0;
                p.kOffset = d;
                p.vOffset = d; // V := K: the output is sum_j p_j k_j
                p.causal = s.causal;
                Tensor expectedK = b.empty({n, t, d}); // (N, T, D)
                Tensor lse = b.empty({n, s.heads, t}); // (N, H, T)
                const Tensor* lengths = ctx.sequence ? ctx.sequence->deviceLengths() : nullptr;
                b.attentionForward(x, x, x, lengths, expectedK, lse, p);
                const std::vector<float> xs = b.downloadF32(x), ek = b.downloadF32(expectedK), l = b.downloadF32(lse);
                const double scale = p.effectiveScale();
                for (std::int64_t r = 0; r < n; ++r) {
                    std::int64_t valid = t;
                    if (ctx.sequence && !ctx.sequence->lengths.empty())
                        valid = std::min<std::int64_t>(t, ctx.sequence->lengths[static_cast<std::size_t>(r)]);
                    for (std::int64_t h = 0; h < s.heads; ++h)
                        for (std::int64_t q = 0; q < valid; ++q) {
                            const double lseV = l[static_cast<std::size_t>((r * s.heads + h) * t + q)];
                            if (!std::isfinite(lseV)) continue; // a query that sees no key
                            const float* qv = xs.data() + (r * t + q) * 3 * d + h * s.headDim;
                            const float* kv = ek.data() + (r * t + q) * d + h * s.headDim;
                            double dot = 0;
                            for (std::int64_t e = 0; e < s.headDim; ++e) dot += double(qv[e]) * double(kv[e]);
                            sumI[static_cast<std::size_t>(h)] += std::max(0.0, lseV - scale * dot);
                            countI[static_cast<std::size_t>(h)] += 1;
                        }
                }
            };
            editor.insertBefore(s.path, std::make_unique<AttentionProbe>(see));
            ++inserted;
        }
        forEachBatch(c, [&](std::span<const std::int64_t> idx) {
            model.forward(uploadInputs(be, model, c.data, idx), ForwardContext{});
        });
    } catch (...) {
        removeProbes();
        throw;
    }
    removeProbes();
    for (std::size_t i = 0; i < sum.size(); ++i)
        for (std::size_t h = 0; h < sum[i].size(); ++h) sum[i][h] = count[i][h] > 0 ? sum[i][h] / count[i][h] : 0.0;
    return sum;
}

HeadGradients headGateGradients(Model& model, Backend& be, const std::vector<AttentionSite>& sites,
                                const Calibration& c) {
    HeadGradients out;
    for (const AttentionSite& s : sites) {
        out.grad.emplace_back(static_cast<std::size_t>(s.heads), 0.0);
        out.importance.emplace_back(static_cast<std::size_t>(s.heads), 0.0);
    }
    const double totalRows = double(c.data.size()) * double(model.outputRowsPerSample());
    double lossSum = 0;
    {
        HeadGates gates(model, sites);
        model.zeroGrad();
        CrossEntropyLoss loss;
        ForwardContext ctx;
        ctx.training = true;
        try {
            forEachBatch(c, [&](std::span<const std::int64_t> idx) {
                const Tensor x = uploadInputs(be, model, c.data, idx);
                const Tensor labels = uploadLabels(be, model, c.data, idx);
                const Tensor logits = model.forward(x, ctx);
                const std::int64_t rows = labels.numel();
                const Tensor logits2 = logits.view({rows, model.numClasses()});
                Tensor losses = be.empty({rows}), dlogits = be.empty({rows, model.numClasses()});
                loss.compute(be, logits2, LossBatch{x, labels}, losses, dlogits, 1.0f / static_cast<float>(rows));
                model.backward(dlogits);
                for (const float v : be.downloadF32(losses)) lossSum += v;
                for (std::size_t i = 0; i < sites.size(); ++i) {
                    Parameter& g = gates.gate(i);
                    const std::vector<float> dxi = be.downloadF32(g.grad); // of this batch's mean loss
                    for (std::size_t h = 0; h < dxi.size(); ++h) {
                        out.grad[i][h] += double(dxi[h]) * double(rows) / totalRows;
                        out.importance[i][h] += std::fabs(double(dxi[h]));
                    }
                    be.fill(g.grad, 0.0f);
                }
                model.releaseCache();
            });
        } catch (...) {
            model.releaseCache();
            model.zeroGrad();
            throw;
        }
        model.releaseCache();
    }
    model.zeroGrad(); // the calibration's gradients are not a training step's
    out.loss = lossSum / totalRows;
    return out;
}

double calibrationLoss(Model& model, Backend& be, const Calibration& c) {
    CrossEntropyLoss loss;
    double lossSum = 0, rowsSum = 0;
    forEachBatch(c, [&](std::span<const std::int64_t> idx) {
        const Tensor x = uploadInputs(be, model, c.data, idx);
        const Tensor labels = uploadLabels(be, model, c.data, idx);
        const Tensor logits = model.forward(x, ForwardContext{});
        const std::int64_t rows = labels.numel();
        Tensor losses = be.empty({rows}), dlogits = be.empty({rows, model.numClasses()});
        loss.compute(be, logits.view({rows, model.numClasses()}), LossBatch{x, labels}, losses, dlogits, 1.0f);
        for (const float v : be.downloadF32(losses)) lossSum += v;
        rowsSum += double(rows);
    });
    return lossSum / rowsSum;
}

} // namespace lathe::prune

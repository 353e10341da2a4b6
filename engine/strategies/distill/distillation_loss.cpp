// DistillationLoss: teacher targets from the cache or a forward per batch, the fused distillation op
// of the backend, and the soft/hard parts kept on the device until the interval's read-back.
#include "engine/strategies/distill/distillation_loss.h"

#include "engine/core/errors.h"
#include "engine/core/rng.h"
#include "engine/nn/layer.h"

#include <algorithm>

namespace lathe {
namespace {

bool samePreprocess(const InputPreprocess& a, const InputPreprocess& b) {
    return a.scale == b.scale && a.mean == b.mean && a.std == b.std;
}

} // namespace

DistillationLoss::DistillationLoss(Model& teacher, const Model& student, Backend& be, const Dataset& train,
                                   std::int64_t samples, const DistillationSettings& settings,
                                   std::int64_t rowsPerInterval, const std::atomic<bool>* cancel)
    : m_teacher(teacher), m_settings(settings), m_classes(teacher.numClasses()) {
    if (teacher.numClasses() != student.numClasses())
        throw ConfigError("the teacher " + teacher.name() + " has " + std::to_string(teacher.numClasses()) +
                          " classes, the student " + student.name() + " " + std::to_string(student.numClasses()));
    if (m_teacher.backend() != &be) m_teacher.to(be);
    m_teacherScope.emplace(m_teacher);
    m_parts = be.empty({std::max<std::int64_t>(1, rowsPerInterval), 2});
    if (settings.features) {
        if (settings.targets != TeacherTargets::OnTheFly)
            throw ConfigError("feature matching needs the teacher's forward per batch (teacher_logits \"on_the_fly\")");
        for (const auto& [model, layer] : {std::pair<const Model*, int>{&teacher, settings.features->teacherLayer},
                                           std::pair<const Model*, int>{&student, settings.features->studentLayer}})
            if (layer < 0 || layer + 1 >= static_cast<int>(model->layers().size()))
                throw ConfigError("feature matching: " + model->name() + " has no layer " + std::to_string(layer) +
                                  " before its last (it has " + std::to_string(model->layers().size()) + " layers)");
        m_featureParts = be.zeros({std::max<std::int64_t>(1, rowsPerInterval)});
    }
    if (settings.targets == TeacherTargets::OnTheFly) {
        if (!samePreprocess(teacher.preprocess(), student.preprocess()))
            throw ConfigError("teacher_logits \"on_the_fly\" feeds the teacher the student's input, but the teacher " +
                              teacher.name() + " and the student " + student.name() +
                              " preprocess their input differently: use \"cache\"");
        return;
    }
    // The cache: one inference pass of the teacher over the training samples the student will see.
    samples = std::min(samples, train.size());
    constexpr std::int64_t kBatch = 256;
    m_cache.resize(static_cast<std::size_t>(samples * m_classes));
    Shape xs = {kBatch};
    xs.insert(xs.end(), teacher.inputShape().begin(), teacher.inputShape().end());
    std::vector<float> xHost(static_cast<std::size_t>(numel(xs)));
    std::vector<std::int32_t> yHost(kBatch);
    std::vector<std::int64_t> idx;
    Tensor x = be.empty(xs);
    for (std::int64_t start = 0; start < samples; start += kBatch) {
        if (cancel && cancel->load()) throw CancelledError();
        const std::int64_t n = std::min(kBatch, samples - start);
        idx.resize(static_cast<std::size_t>(n));
        for (std::int64_t i = 0; i < n; ++i) idx[static_cast<std::size_t>(i)] = start + i;
        makeBatch(train, idx, teacher.preprocess(), xHost.data(), yHost.data());
        Tensor xb = x.slice0(0, n);
        be.copyFromHost(xb, xHost.data());
        const Tensor logits = teacher.forward(xb, ForwardContext{}); // (n, classes)
        be.copyToHost(logits, m_cache.data() + start * m_classes);
    }
}

void DistillationLoss::compute(Backend& be, const Tensor& logits, const LossBatch& batch, Tensor& losses,
                               Tensor& dlogits, float gradScale) {
    const std::int64_t n = logits.dim(0);
    Tensor teacherLogits, teacherFeature;
    if (m_cache.empty()) {
        ForwardContext inference; // no caches, no dropout
        if (m_settings.features) {
            inference.tapLayer = m_settings.features->teacherLayer;
            inference.tap = &teacherFeature;
        }
        teacherLogits = m_teacher.forward(batch.x, inference); // (n, classes)
    } else {
        if (static_cast<std::int64_t>(batch.indices.size()) != n)
            throw ConfigError("distillation: the cached teacher logits need the batch's sample indices");
        const auto cached = static_cast<std::int64_t>(m_cache.size()) / m_classes;
        m_rowHost.resize(static_cast<std::size_t>(n * m_classes));
        for (std::int64_t r = 0; r < n; ++r) {
            const std::int64_t s = batch.indices[static_cast<std::size_t>(r)];
            if (s < 0 || s >= cached)
                throw ConfigError("distillation: sample " + std::to_string(s) + " is outside the " +
                                  std::to_string(cached) + " cached teacher logits");
            std::copy_n(m_cache.data() + s * m_classes, m_classes, m_rowHost.data() + r * m_classes);
        }
        if (!m_teacherRows.defined() || m_teacherRows.dim(0) < n) m_teacherRows = be.empty({n, m_classes});
        teacherLogits = m_teacherRows.slice0(0, n);
        be.copyFromHost(teacherLogits, m_rowHost.data());
    }
    if (m_rows + n > m_parts.dim(0)) { // more rows than one interval holds: read back what is there
        const Parts early = takeIntervalParts(be);
        m_spill.soft += early.soft * static_cast<double>(early.rows);
        m_spill.hard += early.hard * static_cast<double>(early.rows);
        m_spill.feature += early.feature * static_cast<double>(early.rows);
        m_spill.rows += early.rows;
    }
    Tensor parts = m_parts.slice0(m_rows, m_rows + n);
    be.distillationLoss(logits, teacherLogits, batch.labels, m_settings.temperature, m_settings.alpha, losses, parts,
                        dlogits, gradScale);
    if (m_settings.features) matchFeatures(be, batch, teacherFeature, losses, gradScale);
    m_rows += n;
}

void DistillationLoss::matchFeatures(Backend& be, const LossBatch& batch, const Tensor& teacherFeature, Tensor& losses,
                                     float gradScale) {
    if (!batch.feature || !batch.dfeature || !batch.feature->defined())
        throw ConfigError("feature matching: the trainer passed no student feature");
    const FeatureMatch& f = *m_settings.features;
    const Tensor& sf = *batch.feature;
    const std::int64_t n = sf.dim(0), ds = sf.numel() / n, dt = teacherFeature.numel() / n;
    if (!m_projection) {
        m_projection = makeLayer({{"type", "linear"}, {"in", ds}, {"out", dt}});
        Rng rng(f.seed);
        m_projection->initialize(be, rng);
        m_projection->namedParameters("projection.", m_projectionParams);
        for (const auto& np : m_projectionParams) np.param->grad = be.zeros(np.param->value.shape());
        if (f.lr > 0) {
            AdamParams adam;
            adam.lr = f.lr;
            m_projectionOptimizer = makeAdam(adam);
        }
        m_ones = be.empty({dt, 1});
        be.fill(m_ones, 1.0f);
    }
    const Tensor s = sf.view({n, ds}), t = teacherFeature.view({n, dt}); // per sample, flattened
    for (const auto& np : m_projectionParams) be.fill(np.param->grad, 0.0f);
    ForwardContext training;
    training.training = true;
    const Tensor p = m_projection->forward(be, s, training); // (n, dt)
    Tensor diff = be.empty({n, dt});
    be.copy(p, diff);
    be.axpy(-1.0f, t, diff); // P s - t
    Tensor squares = be.empty({n, dt});
    be.mul(diff, diff, squares);
    Tensor mse = m_featureParts.slice0(m_rows, m_rows + n).view({n, 1});
    be.gemm(squares, Trans::No, m_ones, Trans::No, mse, 1.0f / static_cast<float>(dt)); // mean over the feature
    be.axpy(f.beta, mse.view({n}), losses);
    // d(gradScale * beta * mean(diff^2)) / d(P s) = gradScale * beta * 2 / dt * diff
    be.scale(diff, gradScale * f.beta * 2.0f / static_cast<float>(dt));
    const Tensor ds_ = m_projection->backward(be, diff); // (n, ds); the projection's grads accumulated
    if (m_projectionOptimizer) m_projectionOptimizer->step(be, m_projectionParams, m_projectionState);
    m_projection->releaseCache();
    *batch.dfeature = ds_.view(sf.shape());
}

DistillationLoss::Parts DistillationLoss::takeIntervalParts(Backend& be) {
    Parts out;
    if (m_rows > 0) {
        const std::vector<float> p = be.downloadF32(m_parts.slice0(0, m_rows));
        for (std::int64_t r = 0; r < m_rows; ++r) {
            out.soft += p[static_cast<std::size_t>(2 * r)];
            out.hard += p[static_cast<std::size_t>(2 * r + 1)];
        }
        if (m_settings.features)
            for (const float v : be.downloadF32(m_featureParts.slice0(0, m_rows))) out.feature += v;
        out.rows = m_rows;
        m_rows = 0;
    }
    // rows an earlier compute() read back because the interval outgrew the buffer
    out.soft += m_spill.soft;
    out.hard += m_spill.hard;
    out.feature += m_spill.feature;
    out.rows += m_spill.rows;
    m_spill = Parts{};
    if (out.rows > 0) {
        out.soft /= static_cast<double>(out.rows);
        out.hard /= static_cast<double>(out.rows);
        out.feature /= static_cast<double>(out.rows);
    }
    return out;
}

} // namespace lathe

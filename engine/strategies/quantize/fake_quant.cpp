// Fake quantization with a straight-through estimator for finetune's `qat` (fake_quant.h).
#include "engine/strategies/quantize/fake_quant.h"

#include "engine/nn/model_edit.h"

#include <algorithm>

namespace lathe::quant {

QuantSpec QatSettings::spec() const {
    switch (format) {
    case QatFormat::Int8: return {WeightFormat::Int8, group, true};
    case QatFormat::Int4: return {WeightFormat::Int4, group, symmetric};
    case QatFormat::Nf4: return {WeightFormat::Nf4, group, true};
    case QatFormat::None: break;
    }
    throw ConfigError("qat: no format to fake-quantize to");
}

const SchemaBuilder<QatSettings>& qatSchemaBuilder() {
    static const auto b = [] {
        SchemaBuilder<QatSettings> s("", "", "");
        s.choice("qat", &QatSettings::format,
                 {{"none", QatFormat::None}, {"int8", QatFormat::Int8}, {"int4", QatFormat::Int4}, {"nf4", QatFormat::Nf4}},
                 QatFormat::None,
                 "quantization-aware training: the Linear weights are trained through the weight-only codec of "
                 "quantize.int8 / int4 / nf4 (straight-through estimator) and left on its grid, so that step "
                 "with the same group converts them without loss; none (default): plain float training");
        s.integer("qat_group", &QatSettings::group, 128,
                  {.min = 1, .max = 1e9, .unit = "weights", .help = "weights per group along the input, as the conversion's group "
                                                 "(int8: per channel, as quantize.int8, where it is >= the input)"});
        s.boolean("qat_symmetric", &QatSettings::symmetric, true,
                  "int4: symmetric codes (scale only) or asymmetric (scale and zero point), as quantize.int4's "
                  "symmetric");
        s.text("qat_skip", &QatSettings::skip, "", "Linear layers trained in float, by path (\"layers.1, layers.5\")");
        return s;
    }();
    return b;
}

std::string describeQat(const QatSettings& s) {
    QuantChoice c;
    c.layer.weights = s.spec();
    c.layer.activations = ActivationQuant::None;
    return c.describe();
}

// Why the conversion after a qat phase stores exactly the fine-tuned weights: requantizing W = Q(M) gives
// Q(M) back for the absmax-scaled formats (int8, symmetric int4, nf4). In each group the value a of largest
// magnitude gets the extreme code +-n (n = 127, 7; nf4's code book ends on +-1), as a * fl(1 / fl(a / n)) is
// n to a few ulps; it dequantizes to fl(n * s) with s = fl(a / n), and no other code dequantizes to more.
// Requantized, the group's absmax is fl(n * s) and the scale fl(fl(n * s) / n), which is s again for every
// s that is itself a rounded quotient fl(a / n) (fl(n * s) need not be a; test_qat checks the round trip
// of the scale exhaustively over a binade of a for n = 7 and 127). Nf4's scale is the absmax itself and
// comes back exactly. With the same scale, every fl(c * s) * fl(1 / s) is c to a few ulps, so rounding
// gives c: the same codes and scales, the same weights. Asymmetric int4 has no such guarantee: its scale is
// the group's range / 15, and the range of the snapped values can round to a neighbouring float, so a
// conversion may move weights by a rounding of the scale.
std::vector<float> fakeQuantize(const std::vector<float>& w, std::int64_t rows, std::int64_t cols, QuantSpec spec) {
    std::vector<float> out(w.size());
    dequantizeMatrix(quantizeMatrix(w.data(), rows, cols, spec), out.data());
    return out;
}

WeightFakeQuantizer::WeightFakeQuantizer(Model& model, Backend& be, const std::vector<LinearSite>& sites,
                                         QuantSpec spec)
    : m_be(be), m_spec(spec) {
    ModelEditor editor(model);
    for (const LinearSite& site : sites) {
        Site s;
        s.path = site.path;
        s.rows = site.out;
        s.cols = site.in;
        for (Parameter* p : editor.layer(site.path).parameters())
            if (p->name == "weight") s.weight = p;
        if (!s.weight || s.weight->value.dtype() != DType::F32)
            throw ConfigError(site.path + ": expected a float Linear with an f32 weight");
        m_sites.push_back(std::move(s));
    }
}

void WeightFakeQuantizer::snap(Site& s) {
    s.onGrid = fakeQuantize(s.master, s.rows, s.cols, m_spec);
    m_be.copyFromHost(s.weight->value, s.onGrid.data());
}

void WeightFakeQuantizer::start() {
    for (Site& s : m_sites) {
        s.master = m_be.downloadF32(s.weight->value);
        snap(s);
    }
}

void WeightFakeQuantizer::afterOptimizerStep() {
    for (Site& s : m_sites) {
        m_current.resize(s.master.size());
        m_be.copyToHost(s.weight->value, m_current.data());
        // The optimizer stepped from Q(M) with the gradient taken at Q(M); the same step moves the master.
        for (std::size_t i = 0; i < s.master.size(); ++i) s.master[i] += m_current[i] - s.onGrid[i];
        snap(s);
    }
}

std::unique_ptr<WeightFakeQuantizer> startQat(StepContext& ctx, const QatSettings& s, const std::string& step) {
    SiteSettings selection;
    selection.skip = s.skip;
    const std::vector<LinearSite> sites = selectSites(ctx.model(), selection, step + " (qat)", false, "qat_skip");
    const QuantSpec spec = s.spec();
    if (spec.format == WeightFormat::Int8) {
        const bool grouped = std::any_of(sites.begin(), sites.end(), [&](const LinearSite& x) { return spec.group < x.in; });
        if (grouped)
            ctx.warn(step + ": qat int8 with qat_group " + std::to_string(spec.group) +
                     " is group-wise on some layers, but quantize.int8 converts per channel: set qat_group to at "
                     "least the widest input for the conversion to keep these weights");
    }
    auto fq = std::make_unique<WeightFakeQuantizer>(ctx.model(), ctx.backend(), sites, spec);
    fq->start();
    ctx.info(step + ": quantization-aware training of " + std::to_string(sites.size()) + " Linear layers, " +
             describeQat(s) + " (straight-through estimator, float master weights)");
    return fq;
}

void checkQat(const QatSettings& s, ModelCheck& check, const std::string& step) {
    if (!s.enabled() || !check.model || check.model->architecture.is_null()) return;
    const auto model = Model::fromArchitecture(check.model->architecture);
    SiteSettings selection;
    selection.skip = s.skip;
    try {
        selectSites(*model, selection, step + " (qat)", false, "qat_skip");
    } catch (const ConfigError& e) {
        check.issue("qat_skip", e.what());
    }
}

void reportQat(StepContext& ctx, const WeightFakeQuantizer& fq, const QatSettings& s) {
    double sum = 0;
    for (const auto& site : fq.sites()) {
        const double db = std::min(200.0, sqnrDb(site.master, site.onGrid));
        ctx.addLayerStat(site.path + ".weight", "qat_weight_sqnr_db", db);
        sum += db;
    }
    const auto n = static_cast<double>(fq.sites().size());
    ctx.summary()["qat_weight_sqnr_db_mean"] = n > 0 ? sum / n : 0.0;
    ctx.summary()["qat_layers"] = n;
    ctx.notes()["qat"] = describeQat(s) + ": the Linear weights were fine-tuned through this codec and left on "
                         "its grid (the float master weights are dropped)";
}

} // namespace lathe::quant

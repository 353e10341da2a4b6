// The `fuse` family. `fuse.bn`: every Conv2d directly followed by a BatchNorm2d in the same sequence is folded
// into one Conv2d with a bias, as inference toolkits do before quantizing: with s = gamma / sqrt(running_var +
// eps), W' = W * s (per output channel) and b' = (b - running_mean) * s + beta; the batch norm is removed. The
// folded model computes what the unfused one computes in evaluation mode (the batch norm's running
// statistics), up to float rounding: the step checks that on a batch of the evaluated split and stores the
// largest difference of the logits. It times the model before and after, side by side ("unfused." and
// "fused." keys and series). `fuse.activation` (fuse_activation.cpp) registers from here.
#include "engine/nn/model_edit.h"
#include "engine/strategies/fuse/fuse_activation.h"
#include "engine/strategies/fuse/fuse_common.h"

#include <algorithm>
#include <cmath>

namespace lathe {
namespace {

const char* kStep = "fuse.bn";

// The folded logits may differ from the unfused ones by float rounding only: at most this fraction of the
// largest |logit| (the step fails beyond it: the fold would have changed what the model computes).
constexpr double kFoldTolerance = 1e-4;

struct FuseParams {
    std::int64_t checkSamples = 256;
    MeasureSettings measure;
};

struct Pair {
    std::string conv, bn;
};

// Conv2d -> BatchNorm2d pairs, adjacent in the same sequence.
std::vector<Pair> findPairs(Model& model) {
    const ModelEditor editor(model);
    const auto layers = editor.list();
    std::vector<Pair> pairs;
    for (std::size_t i = 0; i + 1 < layers.size(); ++i) {
        if (layers[i].type != "conv2d") continue;
        for (std::size_t j = i + 1; j < layers.size(); ++j) {
            const auto [parentA, indexA] = splitLayerPath(layers[i].path);
            const auto [parentB, indexB] = splitLayerPath(layers[j].path);
            if (parentA != parentB || indexB != indexA + 1) continue;
            if (layers[j].type == "batchnorm2d") pairs.push_back({layers[i].path, layers[j].path});
            break;
        }
    }
    return pairs;
}

std::string noPairMessage() {
    return std::string(kStep) + ": the model has no Conv2d directly followed by a BatchNorm2d to fold";
}

void checkPairs(const FuseParams&, ModelCheck& check) {
    if (!check.model || check.model->architecture.is_null()) return;
    const auto model = Model::fromArchitecture(check.model->architecture);
    if (findPairs(*model).empty()) check.issue("", noPairMessage());
    check.model->name += " (batch norms folded)";
    check.model->architecture = nullptr;
    check.model->layers = 0;
}

Tensor* named(Layer& layer, const char* name) {
    for (Parameter* p : layer.parameters())
        if (p->name == name) return &p->value;
    for (Buffer* b : layer.buffers())
        if (b->name == name) return &b->value;
    return nullptr;
}

class FuseBn final : public Strategy {
  public:
    explicit FuseBn(FuseParams p) : m_params(std::move(p)) {}

    void apply(StepContext& ctx) override {
        const auto pairs = findPairs(ctx.model());
        if (pairs.empty()) throw ConfigError(noPairMessage());
        std::string folded;
        const FuseOutcome outcome = runCheckedFuse(
            ctx, {kStep, "fold", "folded", kFoldTolerance, m_params.checkSamples, m_params.measure}, [&] {
                // Last pair first: removing a batch norm renumbers the layers after it, never those before.
                for (auto it = pairs.rbegin(); it != pairs.rend(); ++it) {
                    fold(ctx, *it);
                    folded = it->conv + " + " + it->bn + (folded.empty() ? "" : "; ") + folded;
                }
                ctx.summary()["layers_folded"] = static_cast<double>(pairs.size());
                ctx.notes()["bn_folded"] = folded;
            });
        ctx.info(std::string(kStep) + ": folded " + std::to_string(pairs.size()) + " batch norms (" + folded +
                 "); logits within " + fixed(outcome.relativeDiff, 8) + " of the largest" +
                 (outcome.realizedSpeedup > 0 ? ", realized speedup " + fixed(outcome.realizedSpeedup, 3) : ""));
    }

  private:
    void fold(StepContext& ctx, const Pair& pair) const {
        Backend& be = ctx.backend();
        ModelEditor editor(ctx.model());
        Layer& conv = editor.layer(pair.conv);
        Layer& bn = editor.layer(pair.bn);
        const nlohmann::json convConfig = conv.config();
        const double eps = bn.config().value("eps", 1e-5);
        Tensor* weight = named(conv, "weight");
        Tensor* bias = named(conv, "bias");
        const std::vector<float> w = be.downloadF32(*weight);
        const std::int64_t out = convConfig.at("out").get<std::int64_t>();
        const std::vector<float> b = bias ? be.downloadF32(*bias) : std::vector<float>(std::size_t(out), 0.0f);
        const std::vector<float> gamma = be.downloadF32(*named(bn, "weight")),
                                 beta = be.downloadF32(*named(bn, "bias"));
        const std::vector<float> mean = be.downloadF32(*named(bn, "running_mean"));
        const std::vector<float> var = be.downloadF32(*named(bn, "running_var"));

        nlohmann::json config = convConfig;
        config["bias"] = true;
        auto fused = editor.create(config, 0);
        const std::size_t perFilter = w.size() / std::size_t(out);
        std::vector<float> w2(w.size()), b2(static_cast<std::size_t>(out));
        for (std::size_t k = 0; k < std::size_t(out); ++k) {
            const double s = double(gamma[k]) / std::sqrt(double(var[k]) + eps);
            for (std::size_t i = 0; i < perFilter; ++i)
                w2[k * perFilter + i] = float(double(w[k * perFilter + i]) * s);
            b2[k] = float((double(b[k]) - double(mean[k])) * s + double(beta[k]));
        }
        be.copyFromHost(*named(*fused, "weight"), w2.data());
        be.copyFromHost(*named(*fused, "bias"), b2.data());
        editor.replace(pair.conv, std::move(fused));
        editor.remove(pair.bn);
        ctx.addLayerStat(pair.conv + ".weight", "bn_folded", 1.0);
    }

    FuseParams m_params;
};

} // namespace
} // namespace lathe

LATHE_STRATEGY_FAMILY(fuse) {
    using namespace lathe;
    SchemaBuilder<FuseParams> b("fuse.bn", "fuse",
                                "fold each BatchNorm2d into the Conv2d before it (evaluation statistics), as inference "
                                "toolkits do before quantizing; timed before and after");
    b.integer(
        "check_samples", &FuseParams::checkSamples, 256,
        {.min = 1, .max = 100000, .help = "samples of the evaluated split whose logits must match after folding"});
    b.include(measureSettingsSchema(), &FuseParams::measure, "/measure");
    b.checkModel([](const FuseParams& p, ModelCheck& c) { checkPairs(p, c); });
    registry.add(b, [](const FuseParams& p) { return std::make_unique<FuseBn>(p); });
    registerFuseActivation(registry);
}

// `fuse.activation`: every Linear (f32, 16-bit or sparse-executed) and every qlinear directly followed by a ReLU
// or GELU in the same sequence absorbs it (the layer's "activation"), so inference writes act(x W^T + b) in the
// GEMM's epilogue (Backend::gemmBiasAct, gemmWeightOnly, gemmInt8) instead of three passes over the output; the
// activation layer is removed. The fused model computes what the unfused one does: the step checks the logits
// on a batch of the evaluated split and times the model before and after, side by side ("unfused." and
// "fused." keys and series).
#include "engine/strategies/fuse/fuse_activation.h"

#include "engine/nn/model_edit.h"
#include "engine/nn/quantized_linear.h"
#include "engine/nn/sparse_execution.h"
#include "engine/strategies/fuse/fuse_common.h"

namespace lathe {
namespace {

const char* kStep = "fuse.activation";

// The fused logits may differ from the unfused ones by the GEMM's summation order only: on the CPU both run the
// same OpenBLAS calls and the same bias and activation arithmetic (bit-identical), on CUDA cuBLASLt's fused
// kernel may sum in another order than cublasSgemm, a few f32 ulps per layer (~1e-6 of the largest logit for
// K = 784). 1e-5 of the largest logit leaves a margin of ten; beyond it the fusion changed what the model computes.
constexpr double kFuseTolerance = 1e-5;

struct FuseActivationParams {
    std::int64_t checkSamples = 256;
    MeasureSettings measure;
};

std::string nothingToFuseMessage() {
    return std::string(kStep) + ": the model has no Linear or qlinear directly followed by a ReLU or GELU to fuse";
}

void checkFusions(const FuseActivationParams&, ModelCheck& check) {
    if (!check.model || check.model->architecture.is_null()) return;
    const auto model = Model::fromArchitecture(check.model->architecture);
    if (findActivationFusions(*model).empty()) check.issue("", nothingToFuseMessage());
    check.model->name += " (activations fused)";
    check.model->architecture = nullptr;
    check.model->layers = 0;
}

class FuseActivation final : public Strategy {
  public:
    explicit FuseActivation(FuseActivationParams p) : m_params(std::move(p)) {}

    void apply(StepContext& ctx) override {
        if (findActivationFusions(ctx.model()).empty()) throw ConfigError(nothingToFuseMessage());
        std::vector<ActivationFusion> fused;
        std::string list;
        const FuseOutcome outcome = runCheckedFuse(
            ctx, {kStep, "fuse", "fused", kFuseTolerance, m_params.checkSamples, m_params.measure}, [&] {
                fused = fuseActivations(ctx.model());
                for (const ActivationFusion& f : fused) {
                    list += (list.empty() ? "" : "; ") + f.layer + " + " + f.activation + " (" +
                            activationName(f.act) + ")";
                    ctx.addLayerStat(f.layer + ".weight", "activation_fused", 1.0);
                }
                ctx.summary()["layers_fused"] = static_cast<double>(fused.size());
                ctx.notes()["activations_fused"] = list;
            });
        ctx.info(std::string(kStep) + ": fused " + std::to_string(fused.size()) + " activations (" + list +
                 "); logits within " + fixed(outcome.relativeDiff, 8) + " of the largest" +
                 (outcome.realizedSpeedup > 0 ? ", realized speedup " + fixed(outcome.realizedSpeedup, 3) : ""));
    }

  private:
    FuseActivationParams m_params;
};

} // namespace

std::vector<ActivationFusion> findActivationFusions(Model& model) {
    const ModelEditor editor(model);
    const auto layers = editor.list();
    std::vector<ActivationFusion> out;
    for (std::size_t i = 0; i < layers.size(); ++i) {
        if (layers[i].type != "linear" && layers[i].type != "qlinear") continue;
        if (editor.layer(layers[i].path).config().value("activation", "none") != "none") continue;
        const auto [parent, index] = splitLayerPath(layers[i].path);
        // The next layer of the same sequence: the first later entry of the list with the same parent.
        for (std::size_t j = i + 1; j < layers.size(); ++j) {
            const auto [parentB, indexB] = splitLayerPath(layers[j].path);
            if (parentB != parent || indexB != index + 1) continue;
            if (layers[j].type == "relu") out.push_back({layers[i].path, layers[j].path, Activation::Relu});
            if (layers[j].type == "gelu") out.push_back({layers[i].path, layers[j].path, Activation::Gelu});
            break;
        }
    }
    return out;
}

std::vector<ActivationFusion> fuseActivations(Model& model) {
    const std::vector<ActivationFusion> fusions = findActivationFusions(model);
    ModelEditor editor(model);
    // Last first: removing an activation renumbers the layers after it, never those before.
    for (auto it = fusions.rbegin(); it != fusions.rend(); ++it) {
        Layer& old = editor.layer(it->layer);
        nlohmann::json config = old.config();
        config["activation"] = activationName(it->act);
        auto fused = editor.create(config, 0);
        auto takeOver = [](auto from, auto to) {
            for (auto* src : from)
                for (auto* dst : to)
                    if (dst->name == src->name) dst->value = src->value;
        };
        takeOver(old.parameters(), fused->parameters());
        takeOver(old.buffers(), fused->buffers());
        const SparseFormat sparse = old.type() == "linear" ? sparseExecution(model, it->layer) : SparseFormat::Dense;
        editor.replace(it->layer, std::move(fused));
        if (sparse != SparseFormat::Dense) setSparseExecution(model, it->layer, sparse);
        editor.remove(it->activation);
    }
    return fusions;
}

void registerFuseActivation(StrategyRegistry& registry) {
    SchemaBuilder<FuseActivationParams> b(
        kStep, "fuse",
        "fold each ReLU or GELU into the Linear or qlinear before it, applied in the GEMM's epilogue (one pass over "
        "the output instead of three); timed before and after");
    b.integer("check_samples", &FuseActivationParams::checkSamples, 256,
              {.min = 1,
               .max = 100000,
               .unit = "samples",
               .help = "samples of the evaluated split whose logits must match after fusing"});
    b.include(measureSettingsSchema(), &FuseActivationParams::measure, "/measure");
    b.checkModel([](const FuseActivationParams& p, ModelCheck& c) { checkFusions(p, c); });
    registry.add(b, [](const FuseActivationParams& p) { return std::make_unique<FuseActivation>(p); });
}

} // namespace lathe

// Measuring dense against CSR execution of pruned Linear layers and switching where CSR wins.
// Budget: per layer and batch size 2 warm-up + kRepeats timed forwards per path, and per batch size
// 2 + kModelRepeats whole-model forwards before and after the switch (about 135 layer and 68 model
// forwards for a three-layer MLP at two batch sizes).
#include "engine/strategies/prune/sparse_paths.h"

#include "engine/core/clock.h"
#include "engine/core/rng.h"
#include "engine/measure/flops.h"
#include "engine/nn/model_edit.h"
#include "engine/nn/sparse_execution.h"

#include <algorithm>
#include <cstdio>

namespace lathe::prune {
namespace {

constexpr int kWarmup = 2;
constexpr int kRepeats = 9;
constexpr int kModelRepeats = 15;

// Median wall time of fn() in ms, the backend synchronised around each call.
template <class F>
double medianMs(Backend& be, int repeats, F&& fn) {
    for (int i = 0; i < kWarmup; ++i) fn();
    be.synchronize();
    std::vector<double> ms;
    for (int i = 0; i < repeats; ++i) {
        const double t0 = steadyClockMs();
        fn();
        be.synchronize();
        ms.push_back(steadyClockMs() - t0);
    }
    std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
    return ms[ms.size() / 2];
}

Tensor randomInput(Backend& be, const Shape& shape, std::uint64_t seed) {
    Rng rng(seed);
    std::vector<float> v(static_cast<std::size_t>(numel(shape)));
    for (float& x : v) x = rng.uniform(-1.0f, 1.0f);
    return be.upload(v, shape);
}

void checkCancel(const StepContext& ctx) {
    if (ctx.cancel && ctx.cancel->load(std::memory_order_relaxed)) throw CancelledError();
}

struct Site {
    std::string path, weight;
    std::int64_t in = 0, out = 0, nnz = 0;
};

} // namespace

const SchemaBuilder<ExecutionParams>& executionSchema() {
    static const SchemaBuilder<ExecutionParams> b = [] {
        SchemaBuilder<ExecutionParams> s("execution", "prune", "how pruned Linear layers run for inference");
        s.choice("execution", &ExecutionParams::execution, {{"auto", Execution::Auto}, {"dense", Execution::Dense}},
                 Execution::Auto,
                 "auto: time each pruned Linear dense and sparse (CSR) and run it sparse where that is faster; "
                 "dense: keep the dense kernels");
        return s;
    }();
    return b;
}

const SchemaBuilder<ExecutionParams>& executionBatchSchema() {
    static const SchemaBuilder<ExecutionParams> b = [] {
        SchemaBuilder<ExecutionParams> s("execution batch sizes", "prune", "where dense and CSR are timed");
        s.integers("batch_sizes", &ExecutionParams::batchSizes, ExecutionParams{}.batchSizes,
                   {.min = 1, .max = 65536, .unit = "samples",
                    .help = "with execution auto: batch sizes at which each layer is timed dense and CSR; the "
                            "first decides"});
        return s;
    }();
    return b;
}

std::vector<SparsePath> chooseSparsePaths(StepContext& ctx, const ExecutionParams& p, const std::string& owner) {
    Model& model = ctx.model();
    Backend& be = ctx.backend();
    ModelEditor editor(model);
    std::vector<Site> sites;
    for (const LayerInfo& info : editor.list()) {
        if (info.type != "linear") continue;
        for (const Parameter* prm : editor.layer(info.path).parameters()) {
            if (prm->name != "weight") continue;
            const std::vector<float> host = be.downloadF32(prm->value);
            Site s{info.path, info.path + ".weight", prm->value.dim(1), prm->value.dim(0), 0};
            for (float v : host) s.nnz += v != 0.0f ? 1 : 0;
            sites.push_back(s);
        }
    }
    // speedup_theoretical: the model's dense FLOPs over those left when the Linear layers multiply
    // only their nonzeros (convolutions counted dense).
    const double flopsDense = forwardFlopsPerSample(model);
    double flopsSparse = flopsDense;
    for (const Site& s : sites) flopsSparse -= 2.0 * double(s.in * s.out - s.nnz);
    auto& sum = ctx.summary();
    sum["speedup_theoretical"] = flopsSparse > 0 ? flopsDense / flopsSparse : 1.0;
    if (p.execution == Execution::Dense || sites.empty()) {
        ctx.notes()["sparse_paths"] = "dense (execution = dense)";
        return {};
    }
    if (p.batchSizes.empty()) throw ConfigError(owner + ": batch_sizes is empty");
    const bool supported = be.supports(OpDesc::uniform(Op::SpmmCsr, DType::F32));
    if (!supported) {
        ctx.notes()["sparse_paths"] = "dense (" + be.name() + " has no spmm_csr)";
        ctx.warn(owner + ": " + be.name() + " does not run spmm_csr; every layer stays dense");
        return {};
    }

    const std::int64_t firstBatch = p.batchSizes.front();
    const ForwardContext eval{};
    std::vector<Tensor> xModel; // (batch, inputShape...) per batch size
    for (std::int64_t batch : p.batchSizes) {
        Shape shape{batch};
        for (std::int64_t d : model.inputShape()) shape.push_back(d);
        xModel.push_back(randomInput(be, shape, ctx.seed ^ 0x5a17ull));
    }
    auto modelMs = [&] {
        std::vector<double> ms;
        for (const Tensor& x : xModel) ms.push_back(medianMs(be, kModelRepeats, [&] { model.forward(x, eval); }));
        return ms;
    };
    const std::vector<double> modelBeforeMs = modelMs();

    std::vector<SparsePath> paths;
    std::string note;
    for (std::size_t i = 0; i < sites.size(); ++i) {
        checkCancel(ctx);
        const Site& s = sites[i];
        if (ctx.progress) ctx.progress(double(i) / double(sites.size()), "timing dense vs csr: " + s.path);
        Layer& layer = editor.layer(s.path);
        SparsePath sp{s.weight, {}, {}, false};
        for (std::size_t bi = 0; bi < p.batchSizes.size(); ++bi) {
            const Tensor x = randomInput(be, {p.batchSizes[bi], s.in}, ctx.seed + bi);
            setSparseExecution(model, s.path, false);
            sp.denseMs.push_back(medianMs(be, kRepeats, [&] { layer.forward(be, x, eval); }));
            setSparseExecution(model, s.path, true);
            sp.csrMs.push_back(medianMs(be, kRepeats, [&] { layer.forward(be, x, eval); }));
            ctx.addLayerStat(s.weight, "csr_speedup@b" + std::to_string(p.batchSizes[bi]),
                             sp.csrMs.back() > 0 ? sp.denseMs.back() / sp.csrMs.back() : 0.0);
        }
        sp.csr = sp.denseMs.front() >= kCsrMinSpeedup * sp.csrMs.front();
        setSparseExecution(model, s.path, sp.csr);
        const double ratio = sp.csrMs.front() > 0 ? sp.denseMs.front() / sp.csrMs.front() : 0.0;
        note += (note.empty() ? "" : "; ") + s.weight + ": " +
                (sp.csr ? "csr " + fixed(ratio, 2) + "x faster at b" + std::to_string(firstBatch)
                        : "dense (csr " + fixed(ratio, 2) + "x at b" + std::to_string(firstBatch) + ")");
        paths.push_back(std::move(sp));
    }
    checkCancel(ctx);
    const std::vector<double> modelAfterMs = modelMs();
    for (std::size_t bi = 0; bi < p.batchSizes.size(); ++bi) {
        const double speedup = modelAfterMs[bi] > 0 ? modelBeforeMs[bi] / modelAfterMs[bi] : 1.0;
        sum["speedup_realized@b" + std::to_string(p.batchSizes[bi])] = speedup;
        if (bi == 0) sum["speedup_realized"] = speedup;
    }
    ctx.notes()["sparse_paths"] = note;
    ctx.notes()["sparse_kernels"] = "Linear layers marked csr in sparse_paths run their nonzeros only (spmm_csr) "
                                    "for inference; the others multiply their zeros densely";
    ctx.info(owner + ": " + note + "; model at b" + std::to_string(firstBatch) + " " + fixed(modelBeforeMs[0], 3) +
             " ms -> " + fixed(modelAfterMs[0], 3) + " ms");
    return paths;
}

} // namespace lathe::prune

// Measuring dense against CSR and 2:4 execution of pruned Linear layers and switching where a sparse
// format wins. Budget: per layer and batch size 2 warm-up + kRepeats timed forwards per path (2 or 3
// paths), and per batch size 2 + kModelRepeats whole-model forwards before and after the switch (about
// 135-200 layer and 68 model forwards for a three-layer MLP at two batch sizes).
#include "engine/strategies/prune/sparse_paths.h"

#include "engine/backends/sparse24.h"
#include "engine/core/clock.h"
#include "engine/core/rng.h"
#include "engine/measure/flops.h"
#include "engine/nn/model_edit.h"

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
    bool is24 = false; // at most 2 nonzeros in every group of 4 inputs
};

// Bytes of a Linear weight (out, in) with nnz nonzeros in a format: f32 values, i32 CSR indices.
double formatBytes(const Site& s, SparseFormat f) {
    switch (f) {
    case SparseFormat::Dense: return 4.0 * double(s.in * s.out);
    case SparseFormat::Csr: return 8.0 * double(s.nnz) + 4.0 * double(s.out + 1);
    case SparseFormat::Nm24: return double(sparse24Bytes(s.out, s.in));
    }
    return 0.0;
}

// The stat key of a format's speedup: "csr_speedup", "nm24_speedup".
std::string speedupKey(SparseFormat f) { return f == SparseFormat::Csr ? "csr_speedup" : "nm24_speedup"; }

} // namespace

const SchemaBuilder<ExecutionParams>& executionSchema() {
    static const SchemaBuilder<ExecutionParams> b = [] {
        SchemaBuilder<ExecutionParams> s("execution", "prune", "how pruned Linear layers run for inference");
        s.choice("execution", &ExecutionParams::execution, {{"auto", Execution::Auto}, {"dense", Execution::Dense}},
                 Execution::Auto,
                 "auto: time each pruned Linear dense and sparse (CSR, and 2:4 where the weight is 2:4) and run it "
                 "in the fastest sparse format where that beats dense; "
                 "dense: keep the dense kernels");
        return s;
    }();
    return b;
}

const SchemaBuilder<ExecutionParams>& executionBatchSchema() {
    static const SchemaBuilder<ExecutionParams> b = [] {
        SchemaBuilder<ExecutionParams> s("execution batch sizes", "prune", "where dense and sparse are timed");
        s.integers("batch_sizes", &ExecutionParams::batchSizes, ExecutionParams{}.batchSizes,
                   {.min = 1, .max = 65536, .unit = "samples",
                    .help = "with execution auto: batch sizes at which each layer is timed dense and sparse; the "
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
            Site s{info.path, info.path + ".weight", prm->value.dim(1), prm->value.dim(0), 0, false};
            for (float v : host) s.nnz += v != 0.0f ? 1 : 0;
            s.is24 = isSparse24(host.data(), s.out, s.in);
            ctx.addLayerStat(s.weight, "csr_bytes", formatBytes(s, SparseFormat::Csr));
            if (s.is24) ctx.addLayerStat(s.weight, "nm24_bytes", formatBytes(s, SparseFormat::Nm24));
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
    const bool csrSupported = be.supports(sparseFormatOp(SparseFormat::Csr, DType::F32));
    const bool nm24Supported = be.supports(sparseFormatOp(SparseFormat::Nm24, DType::F32));
    if (!csrSupported && !nm24Supported) {
        ctx.notes()["sparse_paths"] = "dense (" + be.name() + " has neither spmm_csr nor spmm_24)";
        ctx.warn(owner + ": " + be.name() + " runs neither spmm_csr nor spmm_24; every layer stays dense");
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
    double bytesSaved = 0;
    const std::string at = " at b" + std::to_string(firstBatch);
    for (std::size_t i = 0; i < sites.size(); ++i) {
        checkCancel(ctx);
        const Site& s = sites[i];
        if (ctx.progress) ctx.progress(double(i) / double(sites.size()), "timing dense vs sparse: " + s.path);
        Layer& layer = editor.layer(s.path);
        std::vector<SparseFormat> formats;
        if (csrSupported) formats.push_back(SparseFormat::Csr);
        if (nm24Supported && s.is24) formats.push_back(SparseFormat::Nm24);
        SparsePath sp{s.weight, {}, {}, {}, SparseFormat::Dense};
        auto timesOf = [&](SparseFormat f) -> std::vector<double>& {
            return f == SparseFormat::Csr ? sp.csrMs : sp.nm24Ms;
        };
        for (std::size_t bi = 0; bi < p.batchSizes.size(); ++bi) {
            const Tensor x = randomInput(be, {p.batchSizes[bi], s.in}, ctx.seed + bi);
            setSparseExecution(model, s.path, SparseFormat::Dense);
            sp.denseMs.push_back(medianMs(be, kRepeats, [&] { layer.forward(be, x, eval); }));
            for (SparseFormat f : formats) {
                setSparseExecution(model, s.path, f);
                auto& ms = timesOf(f);
                ms.push_back(medianMs(be, kRepeats, [&] { layer.forward(be, x, eval); }));
                ctx.addLayerStat(s.weight, speedupKey(f) + "@b" + std::to_string(p.batchSizes[bi]),
                                 ms.back() > 0 ? sp.denseMs.back() / ms.back() : 0.0);
            }
        }
        // The fastest format at the first batch size, if it beats dense by the margin.
        std::string figures;
        double bestRatio = 0.0;
        SparseFormat best = SparseFormat::Dense;
        for (SparseFormat f : formats) {
            const double ms = timesOf(f).front(), ratio = ms > 0 ? sp.denseMs.front() / ms : 0.0;
            figures += std::string(figures.empty() ? "" : ", ") + sparseFormatName(f) + " " + fixed(ratio, 2) + "x";
            if (ratio > bestRatio) {
                bestRatio = ratio;
                best = f;
            }
        }
        sp.format = bestRatio >= kSparseMinSpeedup ? best : SparseFormat::Dense;
        setSparseExecution(model, s.path, sp.format);
        if (sp.format != SparseFormat::Dense)
            bytesSaved += formatBytes(s, SparseFormat::Dense) - formatBytes(s, sp.format);
        note += (note.empty() ? "" : "; ") + s.weight + ": " +
                (sp.format != SparseFormat::Dense
                     ? std::string(sparseFormatName(sp.format)) + " " + fixed(bestRatio, 2) + "x faster" + at +
                           (formats.size() > 1 ? " (" + figures + ")" : "")
                     : "dense (" + (figures.empty() ? "no sparse format applies" : figures + at) + ")");
        paths.push_back(std::move(sp));
    }
    checkCancel(ctx);
    const std::vector<double> modelAfterMs = modelMs();
    for (std::size_t bi = 0; bi < p.batchSizes.size(); ++bi) {
        const double speedup = modelAfterMs[bi] > 0 ? modelBeforeMs[bi] / modelAfterMs[bi] : 1.0;
        sum["speedup_realized@b" + std::to_string(p.batchSizes[bi])] = speedup;
        if (bi == 0) sum["speedup_realized"] = speedup;
    }
    sum["model_bytes_sparse"] = static_cast<double>(model.parameterBytes()) - bytesSaved;
    ctx.notes()["sparse_paths"] = note;
    ctx.notes()["sparse_kernels"] = "Linear layers marked csr or 2:4 in sparse_paths run their stored weights only "
                                    "(spmm_csr, spmm_24) for inference; the others multiply their zeros densely";
    ctx.info(owner + ": " + note + "; model at b" + std::to_string(firstBatch) + " " + fixed(modelBeforeMs[0], 3) +
             " ms -> " + fixed(modelAfterMs[0], 3) + " ms");
    return paths;
}

} // namespace lathe::prune

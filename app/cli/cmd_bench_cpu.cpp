// lathe-cli bench gemm / bench mlp / bench sparse / bench weight-only: median latency, throughput and GFLOP/s per backend and
// size, after a warm-up, over repeats that rotate through several input buffers (so caches do not
// flatter the result). Every available backend is measured unless --device names one.
#include "app/cli/bench_support.h"
#include "app/cli/cli.h"

#include "engine/backends/cpu/cpu_backend.h"
#include "engine/backends/csr.h"
#include "engine/backends/quantized_weights.h"
#include "engine/backends/sparse24.h"
#include "engine/backends/registry.h"
#include "engine/core/errors.h"
#include "engine/core/rng.h"
#include "engine/measure/flops.h"
#include "engine/measure/latency.h"
#include "engine/measure/stats.h"
#include "engine/io/model_io.h"
#include "engine/nn/model.h"
#include "engine/nn/model_edit.h"
#include "engine/nn/quantized_linear.h"
#include "engine/strategies/fuse/fuse_activation.h"
#include "engine/io/zoo.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iostream>
#include <sstream>
#include <utility>

namespace lathe::cli {
namespace {

// The median of `op` over the repeats, cycling through the inputs xs.
double medianMs(Backend& be, const BenchOptions& o, const std::vector<Tensor>& xs,
                const std::function<void(const Tensor&)>& op) {
    return summarize(timeRepeats(be, o.warmup, o.repeats, [&](int i) { op(xs[i % xs.size()]); })).p50;
}

// ---------------------------------------------------------------- gemm

struct GemmSize {
    std::int64_t m, n, k;
};

std::vector<GemmSize> parseSizes(const std::string& text) {
    // "256" (square) or "MxNxK", comma separated.
    std::vector<GemmSize> out;
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ',')) {
        std::int64_t m = 0, n = 0, k = 0;
        char x1 = 0, x2 = 0;
        std::stringstream is(item);
        if ((is >> m) && is.eof()) {
            n = k = m;
        } else {
            std::stringstream is2(item);
            if (!(is2 >> m >> x1 >> n >> x2 >> k) || x1 != 'x' || x2 != 'x' || !is2.eof())
                throw ConfigError("bench gemm: --sizes: \"" + item + "\" is not N or MxNxK");
        }
        if (m < 1 || n < 1 || k < 1 || m > 65536 || n > 65536 || k > 65536)
            throw ConfigError("bench gemm: --sizes: \"" + item + "\" must have extents in [1, 65536]");
        out.push_back({m, n, k});
    }
    if (out.empty()) throw ConfigError("bench gemm: --sizes is empty");
    return out;
}

int runGemm(const std::vector<std::string>& argv) {
    Args args(argv, {"--device", "--warmup", "--repeats", "--rotate", "--threads", "--sizes", "--dtype"}, {"--json"});
    BenchOptions o = parseCommon(args);
    // Square sizes plus the MLP's own layer shapes (batch x out x in, weights transposed).
    const auto sizes = parseSizes(args.value("--sizes", "64,128,256,512,1024,1x256x784,256x256x784"));
    const DType dtype = dtypeFromName(args.value("--dtype", "f32"));
    nlohmann::json results = nlohmann::json::array();
    if (!o.json) {
        std::printf("gemm  C = A B^T, %s, warm-up %d, %d repeats over %d input buffers\n", dtypeName(dtype), o.warmup,
                    o.repeats, o.rotate);
        for (const auto& u : o.unavailable) std::printf("  (skipped %s)\n", u.c_str());
        std::printf("%-8s %-22s %12s %12s %10s\n", "backend", "M x N x K", "median ms", "p95 ms", "GFLOP/s");
    }
    for (auto& bePtr : o.backends) {
        Backend& be = *bePtr;
        const OpDesc gemmDesc = OpDesc::uniform(Op::Gemm, dtype);
        if (!be.supports(gemmDesc)) {
            if (!o.json) std::printf("%-8s %s: not supported\n", be.name().c_str(), gemmDesc.toString().c_str());
            results.push_back({{"backend", be.name()}, {"dtype", dtypeName(dtype)}, {"supported", false}});
            continue;
        }
        for (const auto& s : sizes) {
            const int buffers = static_cast<int>(std::min<std::int64_t>(
                o.rotate, std::max<std::int64_t>(1, (std::int64_t{256} << 20) / ((s.m * s.k + s.n * s.k) * 4))));
            std::vector<Tensor> as, bs;
            for (int i = 0; i < buffers; ++i) {
                auto toDtype = [&](const Shape& shape, std::uint64_t seed) {
                    Tensor f = be.upload(randomValues(static_cast<std::size_t>(numel(shape)), seed), shape);
                    if (dtype == DType::F32) return f;
                    Tensor t = be.empty(shape, dtype);
                    be.convert(f, t);
                    return t;
                };
                as.push_back(toDtype({s.m, s.k}, 100 + i));
                bs.push_back(toDtype({s.n, s.k}, 200 + i));
            }
            Tensor c = be.empty({s.m, s.n}, dtype);
            const auto ms = timeRepeats(be, o.warmup, o.repeats, [&](int i) {
                be.gemm(as[i % buffers], Trans::No, bs[i % buffers], Trans::Yes, c, 1.0f, 0.0f);
            });
            const LatencySummary t = summarize(ms);
            const double flops = 2.0 * static_cast<double>(s.m) * static_cast<double>(s.n) * static_cast<double>(s.k);
            const double gflops = flops / (t.p50 * 1e-3) / 1e9;
            const std::string label =
                std::to_string(s.m) + " x " + std::to_string(s.n) + " x " + std::to_string(s.k);
            if (!o.json)
                std::printf("%-8s %-22s %12.4f %12.4f %10.1f\n", be.name().c_str(), label.c_str(), t.p50, t.p95, gflops);
            nlohmann::json r = backendJson(be);
            r.update({{"dtype", dtypeName(dtype)}, {"m", s.m}, {"n", s.n}, {"k", s.k}, {"latency_p50_ms", t.p50},
                      {"latency_p95_ms", t.p95}, {"latency_mean_ms", t.mean}, {"latency_min_ms", t.min},
                      {"latency_cv", t.cv}, {"latency_p50_ci95_ms", {t.medianCiLow, t.medianCiHigh}},
                      {"noisy", t.noisy}, {"achieved_gflops", gflops}, {"input_buffers", buffers}});
            results.push_back(r);
        }
    }
    if (o.json)
        std::cout << benchDocument("gemm", o, std::move(results)).dump(2) << "\n";
    return kExitOk;
}

// ---------------------------------------------------------------- mlp

// --quantize: every Linear of the model becomes a qlinear of this format (no calibration: W8A8 runs with
// dynamic per-row activation scales, as onnxruntime's quantize_dynamic does).
QuantizedLinearConfig benchQuantization(const std::string& name, std::int64_t group) {
    QuantizedLinearConfig c;
    if (name == "int8_dynamic") c.activations = ActivationQuant::Dynamic;
    else if (name == "int8_weight_only") c.weights = {WeightFormat::Int8, 0, true};
    else if (name == "int4") c.weights = {WeightFormat::Int4, group, true};
    else if (name == "int4_asym") c.weights = {WeightFormat::Int4, group, false};
    else if (name == "nf4") c.weights = {WeightFormat::Nf4, group, true};
    else
        throw ConfigError("bench mlp: --quantize \"" + name +
                          "\" is not one of none, int8_dynamic, int8_weight_only, int4, int4_asym, nf4");
    return c;
}

void quantizeLinears(Model& model, Backend& be, const QuantizedLinearConfig& proto) {
    ModelEditor editor(model);
    for (const LayerInfo& info : editor.list()) {
        if (info.type != "linear") continue;
        Layer& layer = editor.layer(info.path);
        std::vector<float> w, b;
        for (Parameter* p : layer.parameters()) (p->name == "weight" ? w : b) = be.downloadF32(p->value);
        QuantizedLinearConfig c = proto;
        const nlohmann::json lc = layer.config();
        c.in = lc.at("in").get<std::int64_t>();
        c.out = lc.at("out").get<std::int64_t>();
        c.bias = !b.empty();
        editor.replace(info.path, makeQuantizedLinear(be, c, w.data(), b.empty() ? nullptr : b.data()));
    }
}

int runMlp(const std::vector<std::string>& argv) {
    Args args(argv,
              {"--device", "--warmup", "--repeats", "--rotate", "--threads", "--batch-sizes", "--model", "--seed",
               "--quantize", "--group", "--save"},
              {"--json", "--fuse", "--cuda-graph"});
    BenchOptions o = parseCommon(args);
    const std::string modelName = args.value("--model", "mlp-784-256-128-10");
    const bool graph = args.flag("--cuda-graph");
    const auto batchSizes = parseBatchSizes(args.value("--batch-sizes", "1,64,256"));
    const auto seed = static_cast<std::uint64_t>(args.integer("--seed", 42));
    const std::string quantize = args.value("--quantize", "none");
    const std::int64_t group = args.integer("--group", 128);
    const std::string savePath = args.value("--save", "");
    const bool fuse = args.flag("--fuse");
    const nlohmann::json arch = zooArchitecture(modelName);
    const double flopsPerSample = forwardFlopsPerSample(*Model::fromArchitecture(arch));
    nlohmann::json results = nlohmann::json::array();
    if (!o.json) {
        std::printf("mlp  %s%s%s%s forward (inference), warm-up %d, %d repeats over %d input batches\n",
                    modelName.c_str(), quantize == "none" ? "" : (" (" + quantize + ")").c_str(),
                    fuse ? " (activations fused)" : "", graph ? " (replayed from a CUDA graph)" : "", o.warmup,
                    o.repeats, o.rotate);
        for (const auto& u : o.unavailable) std::printf("  (skipped %s)\n", u.c_str());
        std::printf("%-8s %6s %12s %12s %14s %10s\n", "backend", "batch", "median ms", "p95 ms", "samples/s", "GFLOP/s");
    }
    for (auto& bePtr : o.backends) {
        Backend& be = *bePtr;
        auto model = Model::fromArchitecture(arch);
        model->initialize(be, seed);
        // The float weights as drawn from the seed, for a reference engine to run the same model.
        if (!savePath.empty() && &bePtr == &o.backends.front()) saveModel(*model, savePath);
        if (quantize != "none") quantizeLinears(*model, be, benchQuantization(quantize, group));
        // As fuse.activation does, after any quantization: each ReLU into the epilogue of the GEMM before it.
        if (fuse) fuseActivations(*model);
        Shape sample = model->inputShape();
        for (int batch : batchSizes) {
            Shape shape{batch};
            shape.insert(shape.end(), sample.begin(), sample.end());
            std::vector<Tensor> inputs;
            for (int i = 0; i < o.rotate; ++i)
                inputs.push_back(be.upload(randomValues(static_cast<std::size_t>(numel(shape)), 1000 + i), shape));
            std::vector<double> ms;
            if (graph) {
                // One launch per forward: the forward recorded once on a fixed input buffer, each repeat copying
                // its batch into that buffer and replaying (as torch.cuda.CUDAGraph is used).
                Tensor staticInput = be.empty(shape);
                be.copy(inputs[0], staticInput);
                for (int i = 0; i < 2; ++i) (void)model->forward(staticInput, ForwardContext{}); // plans, workspaces
                auto work = be.capture([&] { return std::vector<Tensor>{model->forward(staticInput, ForwardContext{})}; });
                if (!work) {
                    if (!o.json) std::printf("%-8s %6d  no CUDA graph on this backend\n", be.name().c_str(), batch);
                    continue;
                }
                ms = timeRepeats(be, o.warmup, o.repeats, [&](int i) {
                    be.copy(inputs[static_cast<std::size_t>(i) % inputs.size()], staticInput);
                    work->replay();
                });
            } else {
                // The same harness as experiment runs: backend timer, warm-up, inputs cycled per repeat.
                ms = measureLatency(be, *model, inputs, o.warmup, o.repeats);
            }
            const LatencySummary t = summarize(ms);
            const double throughput = batch / (t.p50 * 1e-3);
            const double gflops = flopsPerSample * throughput / 1e9;
            if (!o.json)
                std::printf("%-8s %6d %12.4f %12.4f %14.0f %10.2f\n", be.name().c_str(), batch, t.p50, t.p95,
                            throughput, gflops);
            nlohmann::json r = backendJson(be);
            r.update({{"model", modelName}, {"quantize", quantize}, {"fused", fuse}, {"cuda_graph", graph},
                      {"model_bytes", model->parameterBytes()}, {"batch_size", batch}, {"latency_p50_ms", t.p50},
                      {"latency_p95_ms", t.p95},
                      {"latency_mean_ms", t.mean}, {"latency_min_ms", t.min}, {"latency_cv", t.cv},
                      {"latency_p50_ci95_ms", {t.medianCiLow, t.medianCiHigh}}, {"noisy", t.noisy},
                      {"throughput_per_s", throughput}, {"achieved_gflops", gflops},
                      {"peak_device_bytes", be.peakAllocatedBytes()}});
            results.push_back(r);
        }
    }
    if (o.json) {
        nlohmann::json doc = benchDocument("mlp", o, std::move(results));
        doc["model"] = modelName;
        doc["flops_per_sample"] = flopsPerSample;
        std::cout << doc.dump(2) << "\n";
    }
    return kExitOk;
}

// ---------------------------------------------------------------- sparse

// A 2:4 weight (out, in) as prune.nm leaves it: exactly 2 nonzeros at drawn positions of every group of 4
// (min(2, width) in a partial last group).
std::vector<float> weight24(std::int64_t out, std::int64_t in, std::uint64_t seed) {
    Rng rng(seed);
    std::vector<float> w(static_cast<std::size_t>(out * in), 0.0f);
    for (std::int64_t o = 0; o < out; ++o)
        for (std::int64_t g = 0; g < in; g += 4) {
            const auto width = static_cast<std::uint64_t>(std::min<std::int64_t>(4, in - g));
            for (int kept = 0; kept < std::min<int>(2, static_cast<int>(width));) {
                float& v = w[static_cast<std::size_t>(o * in + g + static_cast<std::int64_t>(rng.below(width)))];
                if (v != 0.0f) continue;
                v = rng.uniform(0.05f, 1.0f);
                ++kept;
            }
        }
    return w;
}

// Each Linear layer (in x out) with a 2:4 weight, at each batch size: dense GEMM (as Linear runs it),
// spmm_csr and spmm_24 on the same weight and inputs.
int runSparse(const std::vector<std::string>& argv) {
    Args args(argv, {"--device", "--warmup", "--repeats", "--rotate", "--threads", "--batch-sizes", "--layers"},
              {"--json"});
    BenchOptions o = parseCommon(args);
    const auto batchSizes = parseBatchSizes(args.value("--batch-sizes", "1,256"));
    const auto layers = parseLayers("bench sparse", args.value("--layers", "784x256,256x128"));
    nlohmann::json results = nlohmann::json::array();
    if (!o.json) {
        std::printf("sparse  y = x W^T, W 2:4 (50%% zeros), f32, warm-up %d, %d repeats over %d input batches\n",
                    o.warmup, o.repeats, o.rotate);
        for (const auto& u : o.unavailable) std::printf("  (skipped %s)\n", u.c_str());
        std::printf("%-8s %-12s %6s %12s %12s %12s %10s %10s\n", "backend", "in -> out", "batch", "dense ms",
                    "csr ms", "2:4 ms", "dense/csr", "dense/2:4");
    }
    for (auto& bePtr : o.backends) {
        Backend& be = *bePtr;
        const bool csrOk = be.supports(OpDesc::uniform(Op::SpmmCsr, DType::F32));
        const bool nm24Ok = be.supports(OpDesc::uniform(Op::Spmm24, DType::F32));
        for (const auto& [in, out] : layers) {
            const auto w = weight24(out, in, 300);
            const HostCsr c = csrFromDense(w.data(), out, in);
            const HostSparse24 s = sparse24FromDense(w.data(), out, in);
            const Tensor wDense = be.upload(w, {out, in});
            const Tensor rowPtr = be.uploadI32(c.rowPtr, {out + 1}), colIdx = be.uploadI32(c.colIdx, {c.nnz()});
            const Tensor csrValues = be.upload(c.values, {c.nnz()});
            const Tensor values24 = be.upload(s.values, {out, 2 * sparse24Groups(in)});
            const Tensor meta24 = be.uploadU8(s.meta, {out, sparse24MetaBytesPerRow(in)});
            for (int batch : batchSizes) {
                std::vector<Tensor> xs;
                for (int i = 0; i < o.rotate; ++i)
                    xs.push_back(be.upload(randomValues(static_cast<std::size_t>(batch * in), 400 + i), {batch, in}));
                Tensor y = be.empty({batch, out});
                auto median = [&](const std::function<void(const Tensor&)>& op) { return medianMs(be, o, xs, op); };
                const double denseMs = median([&](const Tensor& x) { be.gemm(x, Trans::No, wDense, Trans::Yes, y); });
                const double nan = std::nan("");
                const double csrMs = csrOk ? median([&](const Tensor& x) { be.spmmCsr(x, rowPtr, colIdx, csrValues, y); }) : nan;
                const double nm24Ms = nm24Ok ? median([&](const Tensor& x) { be.spmm24(x, values24, meta24, y); }) : nan;
                const std::string label = std::to_string(in) + " -> " + std::to_string(out);
                if (!o.json)
                    std::printf("%-8s %-12s %6d %12.4f %12.4f %12.4f %10.2f %10.2f\n", be.name().c_str(), label.c_str(),
                                batch, denseMs, csrMs, nm24Ms, denseMs / csrMs, denseMs / nm24Ms);
                nlohmann::json r = backendJson(be);
                r.update({{"in", in}, {"out", out}, {"batch_size", batch}, {"dense_p50_ms", denseMs},
                          {"csr_p50_ms", csrOk ? nlohmann::json(csrMs) : nlohmann::json()},
                          {"nm24_p50_ms", nm24Ok ? nlohmann::json(nm24Ms) : nlohmann::json()},
                          {"csr_bytes", 8 * c.nnz() + 4 * (out + 1)}, {"nm24_bytes", s.bytes()},
                          {"dense_bytes", 4 * in * out}});
                results.push_back(r);
            }
        }
    }
    if (o.json)
        std::cout << benchDocument("sparse", o, std::move(results)).dump(2) << "\n";
    return kExitOk;
}

// ---------------------------------------------------------------- weight-only

// Each layer (in x out) at each batch size: the f32 GEMM + bias (as Linear runs it) against gemm_weight_only
// with the bias fused, on the same weight quantized four ways. At batch 1 both are bound by the bytes they
// read (codes + scales + zero points + x, or the f32 weight + x): those over the median time give GB/s.
int runWeightOnly(const std::vector<std::string>& argv) {
    Args args(argv, {"--device", "--warmup", "--repeats", "--rotate", "--threads", "--batch-sizes", "--layers"},
              {"--json"});
    BenchOptions o = parseCommon(args);
    const auto batchSizes = parseBatchSizes(args.value("--batch-sizes", "1,256"));
    const auto layers = parseLayers("bench weight-only", args.value("--layers", "784x256,256x128,4096x4096"));
    const std::pair<const char*, QuantSpec> variants[] = {{"int8 g128", {WeightFormat::Int8, 128, true}},
                                                          {"int4 g128 sym", {WeightFormat::Int4, 128, true}},
                                                          {"int4 g128 asym", {WeightFormat::Int4, 128, false}},
                                                          {"nf4 g64", {WeightFormat::Nf4, 64, true}},
                                                          {"nf4 g64 dq", {WeightFormat::Nf4, 64, true, true}},
                                                          {"fp8 per channel", {WeightFormat::Fp8, 1 << 30, true}}};
    nlohmann::json results = nlohmann::json::array();
    if (!o.json) {
        std::printf("weight-only  y = x W^T + bias, f32 activations, warm-up %d, %d repeats over %d input batches\n",
                    o.warmup, o.repeats, o.rotate);
        for (const auto& u : o.unavailable) std::printf("  (skipped %s)\n", u.c_str());
        std::printf("%-8s %-12s %6s %-15s %10s %10s %8s %10s %10s\n", "backend", "in -> out", "batch", "weights",
                    "f32 ms", "ms", "speed-up", "f32 GB/s", "GB/s");
    }
    for (auto& bePtr : o.backends) {
        Backend& be = *bePtr;
        for (const auto& [in, out] : layers) {
            const auto w = randomValues(static_cast<std::size_t>(in * out), 500); // (out, in)
            const Tensor wDense = be.upload(w, {out, in});
            const Tensor bias = be.upload(randomValues(static_cast<std::size_t>(out), 501), {out});
            std::vector<HostQuantMatrix> hosts;
            std::vector<QuantizedWeights> quantized;
            for (const auto& v : variants) {
                hosts.push_back(quantizeMatrix(w.data(), out, in, v.second));
                quantized.push_back(uploadQuantizedWeights(be, hosts.back()));
            }
            for (int batch : batchSizes) {
                std::vector<Tensor> xs;
                for (int i = 0; i < o.rotate; ++i)
                    xs.push_back(be.upload(randomValues(static_cast<std::size_t>(batch * in), 600 + i), {batch, in}));
                Tensor y = be.empty({batch, out});
                auto median = [&](const std::function<void(const Tensor&)>& op) { return medianMs(be, o, xs, op); };
                const double f32Ms = median([&](const Tensor& x) {
                    be.gemm(x, Trans::No, wDense, Trans::Yes, y);
                    be.biasAdd(y, bias);
                });
                const double xBytes = 4.0 * static_cast<double>(batch * in);
                const double f32Gbps = (4.0 * static_cast<double>(in * out) + xBytes) / (f32Ms * 1e-3) / 1e9;
                for (std::size_t v = 0; v < quantized.size(); ++v) {
                    const bool ok = be.supports(weightOnlyGemmDesc(quantized[v].spec.format));
                    const double ms = ok ? median([&](const Tensor& x) {
                        be.gemmWeightOnly(x, quantized[v], &bias, Activation::None, y);
                    }) : std::nan("");
                    const double bytes = static_cast<double>(hosts[v].bytes()) + xBytes;
                    const double gbps = bytes / (ms * 1e-3) / 1e9;
                    const std::string label = std::to_string(in) + " -> " + std::to_string(out);
                    if (!o.json) {
                        std::printf("%-8s %-12s %6d %-15s %10.4f %10.4f %8.2f", be.name().c_str(), label.c_str(), batch,
                                    variants[v].first, f32Ms, ms, f32Ms / ms);
                        if (batch == 1) std::printf(" %10.1f %10.1f\n", f32Gbps, gbps);
                        else std::printf(" %10s %10s\n", "", "");
                    }
                    nlohmann::json r = backendJson(be);
                    r.update({{"in", in}, {"out", out}, {"batch_size", batch}, {"weights", variants[v].first},
                              {"supported", ok}, {"f32_p50_ms", f32Ms},
                              {"weight_only_p50_ms", ok ? nlohmann::json(ms) : nlohmann::json()},
                              {"speedup", ok ? nlohmann::json(f32Ms / ms) : nlohmann::json()},
                              {"weight_bytes", hosts[v].bytes()}, {"f32_weight_bytes", 4 * in * out}});
                    if (batch == 1 && ok) r.update({{"achieved_gbps", gbps}, {"f32_achieved_gbps", f32Gbps}});
                    results.push_back(r);
                }
            }
        }
    }
    if (o.json)
        std::cout << benchDocument("weight-only", o, std::move(results)).dump(2) << "\n";
    return kExitOk;
}

const BenchRegistrar kGemm({"gemm",
                            "bench gemm [--device cpu|cuda|cuda:N|auto|all] [--sizes N,MxNxK,...] [--dtype f32|f16|bf16] "
                            "[--threads N] [--warmup N] [--repeats N] [--rotate N] [--json]",
                            "GEMM median latency and GFLOP/s per backend and size", runGemm});
const BenchRegistrar kMlp({"mlp",
                           "bench mlp [--device cpu|cuda|cuda:N|auto|all] [--batch-sizes 1,64,256] [--model NAME] "
                           "[--quantize int8_dynamic|int8_weight_only|int4|int4_asym|nf4] [--group N] [--fuse] [--cuda-graph] "
                           "[--save FILE] [--threads N] [--warmup N] [--repeats N] [--rotate N] [--json]",
                           "MLP forward latency, throughput and GFLOP/s per backend and batch size", runMlp});
const BenchRegistrar kSparse({"sparse",
                              "bench sparse [--device cpu|cuda|cuda:N|auto|all] [--layers INxOUT,...] "
                              "[--batch-sizes 1,256] [--threads N] [--warmup N] [--repeats N] [--rotate N] [--json]",
                              "a 2:4 Linear weight: dense GEMM against spmm_csr and spmm_24 per backend, layer and batch",
                              runSparse});
const BenchRegistrar kWeightOnly({"weight-only",
                                  "bench weight-only [--device cpu|cuda|cuda:N|auto|all] [--layers INxOUT,...] "
                                  "[--batch-sizes 1,256] [--threads N] [--warmup N] [--repeats N] [--rotate N] [--json]",
                                  "f32 GEMM + bias against the weight-only GEMM over int8 / int4 / nf4 group-wise "
                                  "weights per backend, layer and batch",
                                  runWeightOnly});

} // namespace
} // namespace lathe::cli

// lathe-cli bench int8: a Linear layer run as the f32 path runs it (gemm, bias_add, relu) against the W8A8
// path (quantize_rows with per-row dynamic scales, then gemm_int8 with per-channel weight scales and the
// bias + ReLU fused), per backend, layer and batch size, on the same inputs. Reports both medians, their
// ratio and how far the int8 output is from the f32 one.
#include "app/cli/bench_support.h"
#include "app/cli/cli.h"

#include "engine/backends/cpu/cpu_backend.h"
#include "engine/core/errors.h"
#include "engine/core/quant_matrix.h"
#include "engine/measure/stats.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <utility>

namespace lathe::cli {
namespace {

// ||a - b|| / ||b||.
double relativeError(const std::vector<float>& a, const std::vector<float>& b) {
    double num = 0.0, den = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
        den += double(b[i]) * b[i];
    }
    return den > 0.0 ? std::sqrt(num / den) : std::sqrt(num);
}

CpuInt8Path int8PathFromName(const std::string& name) {
    for (CpuInt8Path p : {CpuInt8Path::Scalar, CpuInt8Path::Avx2, CpuInt8Path::Avx512Vnni})
        if (name == cpuInt8PathName(p)) return p;
    throw ConfigError("bench int8: --int8-path: \"" + name + "\" is not one of scalar, avx2, avx512vnni");
}

int runInt8(const std::vector<std::string>& argv) {
    Args args(argv, {"--device", "--warmup", "--repeats", "--rotate", "--threads", "--batch-sizes", "--layers",
                     "--int8-path"},
              {"--json"});
    BenchOptions o = parseCommon(args);
    const auto batchSizes = parseBatchSizes(args.value("--batch-sizes", "1,256"));
    const auto layers = parseLayers("bench int8", args.value("--layers", "784x256,256x128,128x10"));
    std::optional<CpuInt8Path> forcedPath; // the CPU backend's kernels; ignored by the others
    if (const auto name = args.value("--int8-path")) forcedPath = int8PathFromName(*name);
    nlohmann::json results = nlohmann::json::array();
    if (!o.json) {
        std::printf("int8  y = relu(x W^T + b): f32 gemm + bias_add + relu against quantize_rows (per row) + "
                    "gemm_int8 (per-channel W, bias and relu fused); warm-up %d, %d repeats over %d input batches\n",
                    o.warmup, o.repeats, o.rotate);
        for (const auto& u : o.unavailable) std::printf("  (skipped %s)\n", u.c_str());
        std::printf("%-8s %-11s %-12s %6s %10s %10s %10s %10s %10s\n", "backend", "int8 path", "in -> out", "batch",
                    "f32 ms", "int8 ms", "gemm ms", "int8/f32", "rel err");
    }
    for (auto& bePtr : o.backends) {
        Backend& be = *bePtr;
        if (!be.supports(int8GemmDesc()) || !be.supports(OpDesc::uniform(Op::QuantizeRows, DType::F32))) {
            if (!o.json) std::printf("%-8s %s: not supported\n", be.name().c_str(), int8GemmDesc().toString().c_str());
            results.push_back({{"backend", be.name()}, {"supported", false}});
            continue;
        }
        std::string path = "-";
        if (be.device().kind == DeviceKind::Cpu) {
            if (forcedPath) setCpuInt8Path(be, *forcedPath);
            path = cpuInt8PathName(cpuInt8Path(be));
        }
        std::map<int, std::pair<double, double>> totals; // batch -> (f32 ms, int8 ms) over the layers
        for (const auto& [in, out] : layers) {
            const auto wf = randomValues(static_cast<std::size_t>(out * in), 500);
            const auto bf = randomValues(static_cast<std::size_t>(out), 501);
            // Per-channel symmetric int8, as quantize.int8 stores a Linear weight.
            const HostQuantMatrix q = quantizeMatrix(wf.data(), out, in, QuantSpec{WeightFormat::Int8, in, true});
            Tensor wq = be.empty({out, in}, DType::I8);
            be.copyFromHost(wq, q.packed.data());
            const Tensor packed = be.prepackInt8(wq);
            const Tensor wScale = be.upload(q.scales, {out});
            const Tensor w = be.upload(wf, {out, in}), bias = be.upload(bf, {out});
            for (int batch : batchSizes) {
                // Several input batches (so caches do not flatter), at most 256 MiB of them for the large layers.
                const int buffers = static_cast<int>(std::min<std::int64_t>(
                    o.rotate, std::max<std::int64_t>(1, (std::int64_t{256} << 20) / (std::int64_t{4} * batch * in))));
                std::vector<Tensor> xs;
                for (int i = 0; i < buffers; ++i)
                    xs.push_back(be.upload(randomValues(static_cast<std::size_t>(batch * in), 600 + i), {batch, in}));
                Tensor y = be.empty({batch, out}), yq = be.empty({batch, out});
                Tensor xq = be.empty({batch, in}, DType::I8), xScale = be.empty({batch});
                auto median = [&](const std::function<void(const Tensor&)>& op) {
                    return summarize(timeRepeats(be, o.warmup, o.repeats, [&](int i) { op(xs[i % buffers]); })).p50;
                };
                auto f32 = [&](const Tensor& x) {
                    be.gemm(x, Trans::No, w, Trans::Yes, y);
                    be.biasAdd(y, bias);
                    be.relu(y, y);
                };
                auto int8 = [&](const Tensor& x) {
                    be.quantizeRows(x, xq, xScale, true);
                    be.gemmInt8(xq, xScale, packed, wScale, &bias, Activation::Relu, yq);
                };
                const double f32Ms = median(f32);
                const double int8Ms = median(int8);
                // The GEMM alone, on the last quantized batch (the quantization's share is the difference).
                const double gemmMs = median([&](const Tensor&) {
                    be.gemmInt8(xq, xScale, packed, wScale, &bias, Activation::Relu, yq);
                });
                f32(xs[0]);
                int8(xs[0]);
                const double err = relativeError(be.downloadF32(yq), be.downloadF32(y));
                totals[batch].first += f32Ms;
                totals[batch].second += int8Ms;
                const std::string label = std::to_string(in) + " -> " + std::to_string(out);
                if (!o.json)
                    std::printf("%-8s %-11s %-12s %6d %10.4f %10.4f %10.4f %10.2f %10.4f\n", be.name().c_str(),
                                path.c_str(), label.c_str(), batch, f32Ms, int8Ms, gemmMs, int8Ms / f32Ms, err);
                nlohmann::json r = backendJson(be);
                r.update({{"int8_path", path}, {"in", in}, {"out", out}, {"batch_size", batch},
                          {"f32_p50_ms", f32Ms}, {"int8_p50_ms", int8Ms}, {"int8_gemm_p50_ms", gemmMs},
                          {"int8_over_f32", int8Ms / f32Ms}, {"int8_rel_error", err},
                          {"f32_weight_bytes", 4 * in * out}, {"int8_weight_bytes", packed.bytes()}});
                results.push_back(r);
            }
        }
        for (const auto& [batch, t] : totals) {
            if (!o.json)
                std::printf("%-8s %-11s %-12s %6d %10.4f %10.4f %10s %10.2f\n", be.name().c_str(), path.c_str(),
                            "all layers", batch, t.first, t.second, "", t.second / t.first);
            nlohmann::json r = backendJson(be);
            r.update({{"int8_path", path}, {"layers", "all"}, {"batch_size", batch}, {"f32_p50_ms", t.first},
                      {"int8_p50_ms", t.second}, {"int8_over_f32", t.second / t.first}});
            results.push_back(r);
        }
    }
    if (o.json)
        std::cout << benchDocument("int8", o, std::move(results)).dump(2) << "\n";
    return kExitOk;
}

const BenchRegistrar kInt8({"int8",
                            "bench int8 [--device cpu|cuda|cuda:N|auto|all] [--layers INxOUT,...] [--batch-sizes 1,256] "
                            "[--threads N] [--int8-path scalar|avx2|avx512vnni] [--warmup N] [--repeats N] [--rotate N] "
                            "[--json]",
                            "a Linear + ReLU: the f32 path against quantize_rows + gemm_int8 per backend, layer and batch",
                            runInt8});

} // namespace
} // namespace lathe::cli

// A measurement point: accuracy, then latency per batch size through the latency harness, then sizes.
#include "engine/measure/model_measure.h"

#include "engine/core/errors.h"
#include "engine/measure/flops.h"
#include "engine/measure/latency.h"
#include "engine/measure/memory.h"
#include "engine/measure/roofline.h"
#include "engine/measure/stats.h"

#include <chrono>
#include <cmath>
#include <cstdio>

namespace lathe {

namespace {
// Parameters that are not exactly zero (either sign): what a sparse format would store of a pruned
// model. Elements of a block-quantized tensor all count.
std::int64_t nonzeroParameters(Model& model, Backend& be) {
    std::int64_t n = 0;
    for (const NamedParameter& np : model.namedParameters()) {
        const Tensor& v = np.param->value;
        if (!traits(v.dtype()).isFloat) {
            n += v.numel();
            continue;
        }
        for (float x : be.downloadF32(v)) n += x != 0.0f ? 1 : 0;
    }
    return n;
}
} // namespace

MeasureOutcome measureModel(const MeasureTarget& t, const MeasureRequest& req) {
    MeasureOutcome out;
    const std::string keyPrefix = req.label.empty() ? "" : req.label + ".";
    const std::string seriesPrefix = req.label.empty() ? "" : req.label + "/";
    auto put = [&](const std::string& key, double v) { out.summary[keyPrefix + key] = v; };
    auto report = [&](double f, const std::string& what) {
        if (t.progress) t.progress(f, what);
    };

    t.backend.synchronize();
    t.backend.resetPeakAllocated();
    resetPeakHostRss();

    // Accuracy counts as one share of the work, each batch size as another.
    const double shares = static_cast<double>(req.batchSizes.size()) + (req.accuracy ? 1.0 : 0.0);
    double done = 0;
    if (req.accuracy && !t.data.labelled) {
        if (t.reference) {
            report(0.0, "fidelity to the reference outputs");
            for (const auto& [k, v] : outputFidelity(*t.reference, modelOutputs(t.model, t.backend, t.data, 64, t.cancel)))
                put(k, v);
        }
        done += 1;
    } else if (req.accuracy) {
        report(0.0, "accuracy");
        out.eval = evaluate(t.model, t.backend, t.data, 256, t.cancel);
        put("accuracy", out.eval.accuracy);
        put("loss", out.eval.loss);
        // A language model's loss is the mean per-token cross-entropy (nats): perplexity = e^loss.
        if (t.model.outputRowsPerSample() > 1) put("perplexity", std::exp(out.eval.loss));
        done += 1;
    }

    for (std::size_t bi = 0; bi < req.batchSizes.size(); ++bi) {
        const std::int64_t b = req.batchSizes[bi];
        const std::string tag = "@b" + std::to_string(b);
        report(done / shares, "latency b=" + std::to_string(b));
        const auto batches = makeInputBatches(t.backend, t.model, t.data, b, std::max(1, req.rotateBatches));
        std::vector<double> startedMs;
        const auto samples = measureLatency(
            t.backend, t.model, batches, req.warmup, req.repeats, t.cancel,
            [&](int k, int n) { report((done + double(k) / n) / shares, "latency b=" + std::to_string(b)); },
            &startedMs);
        const std::string series = seriesPrefix + "latency_ms/b" + std::to_string(b);
        for (std::size_t i = 0; i < samples.size(); ++i)
            t.sink.push(makeSample(t.runId, series, static_cast<std::int64_t>(i), startedMs[i] - t.runStartMs,
                                   samples[i]));

        const LatencySummary s = summarize(samples, req.noisyCi, req.seed + static_cast<std::uint64_t>(b));
        const double throughput = s.p50 > 0 ? static_cast<double>(b) * 1000.0 / s.p50 : 0.0;
        std::map<std::string, double> keys{{"latency_p50_ms", s.p50},
                                           {"latency_p95_ms", s.p95},
                                           {"latency_p99_ms", s.p99},
                                           {"latency_mean_ms", s.mean},
                                           {"latency_min_ms", s.min},
                                           {"latency_max_ms", s.max},
                                           {"latency_cv", s.cv},
                                           {"latency_p50_ci_low_ms", s.medianCiLow},
                                           {"latency_p50_ci_high_ms", s.medianCiHigh},
                                           {"latency_p50_ci_rel", s.medianCiRel},
                                           {"throughput_per_s", throughput}};
        // Where this batch size sits on the roofline (roofline.h): the device's peaks are applied later, by
        // whoever knows them (the runner from the store, the compare view).
        const RooflinePoint roof = rooflinePoint(forwardWork(t.model, b), s.p50);
        keys.insert({{"arithmetic_intensity", roof.intensity},
                     {"achieved_tflops", roof.gflopsPerS * 1e-3},
                     {"achieved_gbps", roof.gbPerS}});
        // Throughput against batch size, streamed as it is known (step = batch size).
        t.sink.push(makeSample(t.runId, seriesPrefix + "throughput_per_s", b, steadyClockMs() - t.runStartMs, throughput));
        for (const auto& [k, v] : keys) {
            put(k + tag, v);
            if (bi == 0) put(k, v);
        }
        if (bi == 0) put("batch_size", static_cast<double>(b));
        out.noisy = out.noisy || s.noisy;
        if (bi == 0 || s.medianCiRel > out.worstCiRel) {
            out.worstCiRel = s.medianCiRel;
            out.worstBatch = b;
        }
        done += 1;
    }

    t.backend.synchronize();
    put("model_bytes", static_cast<double>(t.model.parameterBytes()));
    put("flops", forwardFlopsPerSample(t.model));
    put("params", static_cast<double>(t.model.parameterCount()));
    put("params_nonzero", static_cast<double>(nonzeroParameters(t.model, t.backend)));
    put("peak_device_bytes", static_cast<double>(t.backend.peakAllocatedBytes()));
    put("peak_host_bytes", static_cast<double>(peakHostRssBytes()));
    put("latency_noisy", out.noisy ? 1.0 : 0.0);
    report(1.0, "measured");
    return out;
}

std::string noiseWarning(const MeasureOutcome& outcome, const MeasureRequest& request) {
    auto percent = [](double f) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * f);
        return std::string(buf);
    };
    return "latency at batch " + std::to_string(outcome.worstBatch) + ": the median's 95% confidence interval is " +
           percent(outcome.worstCiRel) + " of the median, above noisy_ci " + percent(request.noisyCi) +
           ": the latency figures are noisy (more repeats or a quieter machine help)";
}

} // namespace lathe

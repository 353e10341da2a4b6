// The shared summary metric keys (ARCHITECTURE.md §4), defined once for the CLI, the store, the UI and
// reports: the order tables show them in, and which direction is better for each.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace lathe {

// Which way a metric improves; Neutral for settings and counts such as batch_size.
enum class MetricDirection { HigherIsBetter, LowerIsBetter, Neutral };

struct MetricKeyInfo {
    std::string_view key;
    MetricDirection direction;
};

// In the order tables list them; keys not in this list follow in alphabetical order.
inline constexpr MetricKeyInfo kMetricKeys[] = {
    // quality
    {"accuracy", MetricDirection::HigherIsBetter},
    {"accuracy_delta", MetricDirection::HigherIsBetter},
    {"most_sensitive_layer_drop", MetricDirection::LowerIsBetter},
    {"loss", MetricDirection::LowerIsBetter},
    {"perplexity", MetricDirection::LowerIsBetter},
    {"embedding_cosine_mean", MetricDirection::HigherIsBetter},
    {"embedding_cosine_min", MetricDirection::HigherIsBetter},
    {"retrieval_recall_at_10", MetricDirection::HigherIsBetter},
    {"accuracy_scratch", MetricDirection::HigherIsBetter},
    {"distill_gain", MetricDirection::HigherIsBetter},
    {"teacher_accuracy", MetricDirection::HigherIsBetter},
    // speed
    {"latency_p50_ms", MetricDirection::LowerIsBetter},
    {"latency_p95_ms", MetricDirection::LowerIsBetter},
    {"latency_p99_ms", MetricDirection::LowerIsBetter},
    {"latency_mean_ms", MetricDirection::LowerIsBetter},
    {"latency_cv", MetricDirection::LowerIsBetter},
    {"latency_p50_ci_rel", MetricDirection::LowerIsBetter}, // width of the median's 95% CI / the median
    {"throughput_per_s", MetricDirection::HigherIsBetter},
    {"batch_size", MetricDirection::Neutral},
    {"speedup_realized", MetricDirection::HigherIsBetter},
    {"speedup_theoretical", MetricDirection::HigherIsBetter},
    {"flops", MetricDirection::LowerIsBetter},
    // size
    {"model_bytes", MetricDirection::LowerIsBetter},
    {"compression_ratio", MetricDirection::HigherIsBetter},
    {"sparsity", MetricDirection::Neutral},
    {"params", MetricDirection::LowerIsBetter},
    {"params_nonzero", MetricDirection::LowerIsBetter},
    {"model_bytes_sparse", MetricDirection::LowerIsBetter},
    {"weight_bits_mean", MetricDirection::LowerIsBetter},
    {"qat_weight_sqnr_db_mean", MetricDirection::HigherIsBetter}, // finetune "qat": master against the grid
    {"peak_device_bytes", MetricDirection::LowerIsBetter},
    {"peak_host_bytes", MetricDirection::LowerIsBetter},
    // hardware
    {"achieved_gbps", MetricDirection::HigherIsBetter},
    {"achieved_tflops", MetricDirection::HigherIsBetter},
    {"roofline_fraction", MetricDirection::HigherIsBetter},
    {"arithmetic_intensity", MetricDirection::Neutral}, // FLOP per byte of compulsory traffic (roofline.h)
    {"energy_j_per_inference", MetricDirection::LowerIsBetter},
    // serving
    {"serve_p50_ms", MetricDirection::LowerIsBetter},
    {"serve_p95_ms", MetricDirection::LowerIsBetter},
    {"serve_p99_ms", MetricDirection::LowerIsBetter},
    {"goodput_per_s", MetricDirection::HigherIsBetter},
    {"slo_attainment", MetricDirection::HigherIsBetter},
    // serving (serve.*): the tail, the first request alone, answers per second; throughput_per_s is the
    // final measurement's, so a serving step's own is serve_throughput_per_s
    {"serve_max_ms", MetricDirection::LowerIsBetter},
    {"serve_mean_ms", MetricDirection::LowerIsBetter},
    {"serve_first_ms", MetricDirection::LowerIsBetter},
    {"serve_queue_p50_ms", MetricDirection::LowerIsBetter},
    {"serve_queue_p99_ms", MetricDirection::LowerIsBetter},
    {"serve_compute_p50_ms", MetricDirection::LowerIsBetter},
    {"serve_compute_p99_ms", MetricDirection::LowerIsBetter},
    {"serve_throughput_per_s", MetricDirection::HigherIsBetter},
    {"serve_accuracy", MetricDirection::HigherIsBetter},
    {"serve_batch_mean", MetricDirection::Neutral},
    {"offered_rate_per_s", MetricDirection::Neutral},
    {"served", MetricDirection::Neutral},
    {"knee_rate_per_s", MetricDirection::HigherIsBetter},
    {"dropped", MetricDirection::LowerIsBetter},
    {"ttft_ms_p50", MetricDirection::LowerIsBetter},
    {"ttft_ms_p99", MetricDirection::LowerIsBetter},
    {"tpot_ms_p50", MetricDirection::LowerIsBetter},
    {"tpot_ms_p99", MetricDirection::LowerIsBetter},
    {"tokens_per_s", MetricDirection::HigherIsBetter},
    {"kv_bytes_peak", MetricDirection::LowerIsBetter},
    {"kv_fragmentation", MetricDirection::LowerIsBetter},
    {"prefix_hit_rate", MetricDirection::HigherIsBetter},
    {"max_concurrent_seqs", MetricDirection::HigherIsBetter},
    // LLM serving (serve.generate): inter-token latency, the KV pool, preemptions, perplexity through the KV blocks
    {"itl_ms_p50", MetricDirection::LowerIsBetter},
    {"itl_ms_p95", MetricDirection::LowerIsBetter},
    {"itl_ms_p99", MetricDirection::LowerIsBetter},
    {"kv_bytes_budget", MetricDirection::Neutral},
    {"kv_blocks_peak", MetricDirection::LowerIsBetter},
    {"preemptions", MetricDirection::LowerIsBetter},
    {"kv_perplexity", MetricDirection::LowerIsBetter},
    {"kv_perplexity_f32", MetricDirection::Neutral},
    {"kv_perplexity_delta", MetricDirection::LowerIsBetter},
    // flags
    {"simulated", MetricDirection::Neutral},
};

// The base key of a stored key: "before.latency_p50_ms@b64" -> "latency_p50_ms" (a measure step's label
// before the first '.', a batch size after '@').
constexpr std::string_view metricBaseKey(std::string_view key) {
    if (const auto at = key.find('@'); at != std::string_view::npos) key = key.substr(0, at);
    if (const auto dot = key.rfind('.'); dot != std::string_view::npos) key = key.substr(dot + 1);
    return key;
}

// The direction of a stored key, judged by its base key; Neutral for keys not in the list.
constexpr MetricDirection metricDirection(std::string_view key) {
    const auto base = metricBaseKey(key);
    for (const auto& info : kMetricKeys)
        if (info.key == base) return info.direction;
    return MetricDirection::Neutral;
}

// `keys` in the order tables show them: the keys of kMetricKeys in its order, then the others
// alphabetically.
inline std::vector<std::string> orderMetricKeys(std::set<std::string> keys) {
    std::vector<std::string> out;
    for (const auto& info : kMetricKeys)
        if (keys.erase(std::string(info.key))) out.emplace_back(info.key);
    out.insert(out.end(), keys.begin(), keys.end());
    return out;
}

} // namespace lathe

// Metric samples as they leave the engine: small plain structs, pushed into sinks (the run store's
// batched writer, the GUI's sample ring). The engine never emits one Qt signal per sample.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace lathe {

struct MetricSample {
    std::int64_t runId = 0;
    char series[40] = {};   // "loss", "latency_ms/b64", "accuracy" (truncated to 39 chars)
    std::int64_t step = 0;  // optimizer step, repeat index, epoch...
    double tMs = 0;         // since the run started
    double value = 0;

    void setSeries(std::string_view s) {
        const std::size_t n = s.size() < sizeof(series) - 1 ? s.size() : sizeof(series) - 1;
        std::memcpy(series, s.data(), n);
        series[n] = '\0';
    }
    std::string_view seriesName() const { return series; }
};

inline MetricSample makeSample(std::int64_t runId, std::string_view series, std::int64_t step, double tMs,
                               double value) {
    MetricSample s;
    s.runId = runId;
    s.setSeries(series);
    s.step = step;
    s.tMs = tMs;
    s.value = value;
    return s;
}

class MetricSink {
public:
    virtual ~MetricSink() = default;
    virtual void push(const MetricSample& sample) = 0;
    virtual void flush() {}
};

} // namespace lathe

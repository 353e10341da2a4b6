// The shared metric keys: every key once, and the base key and direction of stored keys that carry a
// measure step's label or a batch size.
#include "engine/core/metric_keys.h"
#include "tests/support/mini_test.h"

#include <set>
#include <string>

using namespace lathe;

TEST_CASE(everyKeyOnce) {
    std::set<std::string_view> seen;
    for (const auto& k : kMetricKeys) CHECK_MSG(seen.insert(k.key).second, std::string(k.key) + " is listed twice");
}

TEST_CASE(baseKeyStripsLabelAndBatch) {
    CHECK_EQ(metricBaseKey("latency_p99_ms"), std::string_view("latency_p99_ms"));
    CHECK_EQ(metricBaseKey("latency_p99_ms@b64"), std::string_view("latency_p99_ms"));
    CHECK_EQ(metricBaseKey("before.latency_p99_ms@b64"), std::string_view("latency_p99_ms"));
    CHECK_EQ(metricBaseKey("before.accuracy"), std::string_view("accuracy"));
}

TEST_CASE(directionOfStoredKeys) {
    CHECK(metricDirection("before.latency_p99_ms@b64") == MetricDirection::LowerIsBetter);
    CHECK(metricDirection("accuracy") == MetricDirection::HigherIsBetter);
    CHECK(metricDirection("after.throughput_per_s@b256") == MetricDirection::HigherIsBetter);
    CHECK(metricDirection("batch_size") == MetricDirection::Neutral);
    CHECK(metricDirection("a_key_nobody_defined") == MetricDirection::Neutral);
    // Checked at compile time too: the table is constexpr.
    static_assert(metricDirection("model_bytes") == MetricDirection::LowerIsBetter);
}

MINI_TEST_MAIN()

// The roofline model: intensity, achieved rates and fractions on hand-computed numbers, the keys a summary
// gains from a device's peaks, a zoo model's work, the peaks measured on the CPU backend, and their storage.
#include "engine/backends/registry.h"
#include "engine/core/errors.h"
#include "engine/measure/device_peaks.h"
#include "engine/measure/flops.h"
#include "engine/measure/roofline.h"
#include "engine/nn/model.h"
#include "engine/io/zoo.h"
#include "engine/store/run_store.h"
#include "tests/support/mini_test.h"
#include "tests/support/test_common.h"

#include <cmath>
#include <filesystem>

using namespace lathe;

namespace {
bool near(double a, double b, double rel = 1e-12) { return std::abs(a - b) <= rel * std::max(std::abs(a), std::abs(b)); }
} // namespace

TEST_CASE(pointAndFractionByHand) {
    // 2 GFLOP over 1 GB in 10 ms: intensity 2 FLOP/B, 200 GFLOP/s, 100 GB/s.
    const RooflinePoint p = rooflinePoint({2e9, 1e9}, 10.0);
    CHECK(near(p.intensity, 2.0));
    CHECK(near(p.gflopsPerS, 200.0));
    CHECK(near(p.gbPerS, 100.0));
    // Roofs 1000 GFLOP/s and 200 GB/s: the ridge at 5 FLOP/B; at intensity 2 the roof is 400 GFLOP/s.
    const RoofPeaks peaks{1000.0, 200.0};
    CHECK(near(ridgeIntensity(peaks), 5.0));
    CHECK(near(attainableGflops(peaks, 2.0), 400.0));
    CHECK(near(attainableGflops(peaks, 50.0), 1000.0));
    CHECK(near(rooflineFraction(peaks, p), 0.5));
    // Unknown peaks or latency: nothing is made up.
    CHECK_EQ(rooflineFraction(RoofPeaks{}, p), 0.0);
    CHECK_EQ(rooflinePoint({2e9, 1e9}, 0.0).gflopsPerS, 0.0);
}

TEST_CASE(summaryGainsFractionsForEveryLabelAndBatch) {
    std::map<std::string, double> summary{
        {"achieved_tflops@b64", 0.2},       {"arithmetic_intensity@b64", 2.0},
        {"before.achieved_tflops", 0.1},    {"before.arithmetic_intensity", 20.0},
        {"achieved_tflops@b1", 0.01}, // no intensity beside it: left alone
        {"notachieved_tflops", 1.0},        {"arithmetic_intensity", 1.0}};
    const RoofPeaks peaks{1000.0, 200.0};
    CHECK_EQ(addRooflineFractions(summary, peaks), 2);
    CHECK(near(summary.at("roofline_fraction@b64"), 0.5));     // 200 of 400
    CHECK(near(summary.at("before.roofline_fraction"), 0.1));  // 100 of 1000 (compute-bound)
    CHECK(!summary.count("roofline_fraction@b1"));
    CHECK(!summary.count("notroofline_fraction"));
    std::map<std::string, double> untouched{{"achieved_tflops", 0.1}, {"arithmetic_intensity", 2.0}};
    CHECK_EQ(addRooflineFractions(untouched, RoofPeaks{1000.0, 0.0}), 0);
    CHECK_EQ(untouched.size(), std::size_t(2));
}

TEST_CASE(forwardWorkOfTheMlp) {
    auto model = Model::fromArchitecture(zooArchitecture("mlp-784-256-128-10"));
    auto be = cpuBackend();
    model->initialize(*be, 1);
    const ForwardWork w = forwardWork(*model, 16);
    // 2 x (784*256 + 256*128 + 128*10) per sample; every f32 parameter once plus 16 x (784 + 10) floats.
    CHECK_EQ(w.flops, 16.0 * 469504.0);
    const double params = 784.0 * 256 + 256 + 256.0 * 128 + 128 + 128.0 * 10 + 10;
    CHECK_EQ(w.bytes, params * 4 + 16.0 * (784 + 10) * 4);
}

TEST_CASE(quantizedLayersAndAttentionCountTheirDenseWork) {
    // A quantized or tied Linear does the multiply-adds of the dense one; attention over T = 16 positions of
    // width D = 64 does 2 x T x T x D of them (scores and the weighted sum), mask or not.
    const double dense = layerFlopsPerSample({{"type", "linear"}, {"in", 784}, {"out", 256}}, {1, 784}, {1, 256});
    CHECK_EQ(dense, 2.0 * 784 * 256);
    CHECK_EQ(layerFlopsPerSample({{"type", "qlinear"}, {"in", 784}, {"out", 256}}, {1, 784}, {1, 256}), dense);
    CHECK_EQ(layerFlopsPerSample({{"type", "tied_linear"}, {"in", 784}, {"out", 256}}, {1, 784}, {1, 256}), dense);
    CHECK_EQ(layerFlopsPerSample({{"type", "attention"}, {"heads", 4}}, {1, 16, 192}, {1, 16, 64}), 4.0 * 16 * 16 * 64);
    CHECK_EQ(layerFlopsPerSample({{"type", "relu"}}, {1, 10}, {1, 10}), 0.0);
}

TEST_CASE(peaksMeasuredOnTheCpu) {
    auto be = cpuBackend();
    PeakOptions o;
    o.gemmSizes = {64, 128};
    o.copyBytes = 4u << 20;
    o.cacheCopyBytes = 64u << 10;
    o.warmup = 1;
    o.repeats = 3;
    const PeakResult r = measureDevicePeaks(*be, o);
    CHECK(r.gemmGflopsPerS > 0);
    CHECK(r.gemmSize == 64 || r.gemmSize == 128);
    CHECK_EQ(r.copyBytes, std::uint64_t(4u << 20));
    CHECK(r.copyGbPerS > 0 && r.cacheCopyGbPerS > 0);
    CHECK_EQ(r.detail["gemm"].size(), std::size_t(2));
    CHECK_EQ(r.detail["copy"]["counted"].get<std::string>(), std::string("read + write"));
    PeakOptions bad = o;
    bad.repeats = 0;
    CHECK_THROWS_AS(measureDevicePeaks(*be, bad), ConfigError);
    bad = o;
    bad.gemmSizes = {0};
    CHECK_THROWS_AS(measureDevicePeaks(*be, bad), ConfigError);
}

TEST_CASE(peaksAreStoredPerDeviceAndReplaced) {
    const std::string path = test::tempDir() + "/roofline-peaks.sqlite";
    std::filesystem::remove(path);
    RunStore store(path);
    const DevicePeak first[] = {{"cpu A", "cpu", "gemm_f32_gflops", 100.0, 1.0, "{}"},
                                {"cpu A", "cpu", "copy_gbps", 10.0, 1.0, "{}"},
                                {"gpu B", "cuda", "copy_gbps", 4000.0, 1.0, "{\"n\":1}"}};
    store.setDevicePeaks(first);
    const DevicePeak again[] = {{"cpu A", "cpu", "gemm_f32_gflops", 120.0, 2.0, "{}"}};
    store.setDevicePeaks(again);
    const auto all = store.devicePeaks();
    CHECK_EQ(all.size(), std::size_t(3));
    const auto a = store.devicePeaks("cpu A");
    REQUIRE(a.size() == 2);
    CHECK_EQ(a[0].key, std::string("copy_gbps")); // ordered by key
    CHECK_EQ(a[1].value, 120.0);
    CHECK_EQ(a[1].measuredAt, 2.0);
    CHECK_EQ(store.devicePeaks("gpu B").at(0).detailJson, std::string("{\"n\":1}"));
    CHECK(store.devicePeaks("nobody").empty());
}

MINI_TEST_MAIN()

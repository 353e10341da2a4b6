// What the `lathe-cli bench` kinds share: the backends a run measures (--device, --threads), the timing
// loop on the backend's own timer, option parsing for batch sizes and layer shapes, and the JSON fields
// that say where a figure was measured.
#pragma once

#include "app/cli/cli.h"

#include "engine/backends/backend.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace lathe::cli {

struct BenchOptions {
    std::vector<std::shared_ptr<Backend>> backends;
    std::vector<std::string> unavailable; // "cuda: <reason>" when looping over everything
    int warmup = 20, repeats = 200, rotate = 8;
    bool json = false;
};

// --device, --threads, --warmup, --repeats, --rotate and --json; ConfigError on bad values.
BenchOptions parseCommon(const Args& args);

// Times `work(i)` (i = repeat index) with the backend's timer: device events on a GPU, a monotonic
// clock on the CPU. The timer's elapsedMs() waits for the work to finish.
std::vector<double> timeRepeats(Backend& be, int warmup, int repeats, const std::function<void(int)>& work);

// "1,64,256" -> {1, 64, 256}, each in [1, 65536].
std::vector<int> parseBatchSizes(const std::string& text);
// "784x256,256x128" -> {(784, 256), (256, 128)}: Linear layers as (in, out), extents in [1, 65536].
// `bench` names the benchmark in the error ("bench sparse: --layers: ...").
std::vector<std::pair<std::int64_t, std::int64_t>> parseLayers(const std::string& bench, const std::string& text);

// backend, device_name, threads, library.
nlohmann::json backendJson(Backend& be);
// The document `--json` prints: {"bench": name, date, warmup, repeats, rotate, unavailable, results}.
nlohmann::json benchDocument(const std::string& bench, const BenchOptions& o, nlohmann::json results);
std::string today(); // "2026-01-31 14:05 UTC"
// n values uniform in [-1, 1).
std::vector<float> randomValues(std::size_t n, std::uint64_t seed);

} // namespace lathe::cli

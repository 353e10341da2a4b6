// The helpers shared by the `lathe-cli bench` kinds (bench_support.h).
#include "app/cli/bench_support.h"

#include "engine/backends/cpu/cpu_backend.h"
#include "engine/backends/registry.h"
#include "engine/core/errors.h"
#include "engine/core/rng.h"

#include <ctime>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace lathe::cli {

std::vector<double> timeRepeats(Backend& be, int warmup, int repeats, const std::function<void(int)>& work) {
    for (int i = 0; i < warmup; ++i) work(i);
    be.synchronize();
    auto timer = be.createTimer();
    std::vector<double> ms;
    ms.reserve(static_cast<std::size_t>(repeats));
    for (int i = 0; i < repeats; ++i) {
        timer->start();
        work(warmup + i);
        timer->stop();
        ms.push_back(timer->elapsedMs());
    }
    return ms;
}

BenchOptions parseCommon(const Args& args) {
    BenchOptions o;
    o.json = args.flag("--json");
    o.warmup = static_cast<int>(args.integer("--warmup", 20));
    o.repeats = static_cast<int>(args.integer("--repeats", 200));
    o.rotate = static_cast<int>(args.integer("--rotate", 8));
    if (o.warmup < 0 || o.repeats < 1 || o.rotate < 1)
        throw ConfigError("bench: --warmup must be >= 0, --repeats and --rotate >= 1");
    const long long threads = args.integer("--threads", 0);
    if (threads < 0 || threads > 1024) throw ConfigError("bench: --threads must be in [0, 1024]");
    const auto device = args.value("--device");
    if (threads > 0 && device && *device != "cpu") throw ConfigError("bench: --threads applies to --device cpu only");
    auto cpu = [&] { return threads > 0 ? makeCpuBackend(static_cast<int>(threads)) : backendFor("cpu"); };
    if (device && *device != "all") {
        o.backends.push_back(*device == "cpu" ? cpu() : backendFor(*device));
        return o;
    }
    for (const auto& e : probeBackends()) {
        if (!e.info.available) {
            o.unavailable.push_back(e.info.backend + ": " + e.info.reason);
            continue;
        }
        const std::string name = e.info.device.toString();
        o.backends.push_back(name == "cpu" ? cpu() : backendFor(name));
    }
    return o;
}

nlohmann::json backendJson(Backend& be) {
    const DeviceInfo d = be.info();
    return {{"backend", be.name()}, {"device_name", d.name}, {"threads", d.threads},
            {"library", d.libraryVersion.empty() ? d.runtimeVersion : d.libraryVersion}};
}

nlohmann::json benchDocument(const std::string& bench, const BenchOptions& o, nlohmann::json results) {
    return {{"bench", bench},          {"date", today()},
            {"warmup", o.warmup},      {"repeats", o.repeats},
            {"rotate", o.rotate},      {"unavailable", o.unavailable},
            {"results", std::move(results)}};
}

std::string today() {
    const std::time_t now = std::time(nullptr);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
    return buf;
}

std::vector<float> randomValues(std::size_t n, std::uint64_t seed) {
    Rng rng(seed);
    std::vector<float> v(n);
    for (auto& x : v) x = rng.uniform(-1.0f, 1.0f);
    return v;
}


std::vector<int> parseBatchSizes(const std::string& text) {
    std::vector<int> out;
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ',')) {
        try {
            std::size_t used = 0;
            const int b = std::stoi(item, &used);
            if (used != item.size() || b < 1 || b > 65536) throw std::invalid_argument(item);
            out.push_back(b);
        } catch (const std::exception&) {
            throw ConfigError("bench: --batch-sizes: \"" + item + "\" is not an integer in [1, 65536]");
        }
    }
    if (out.empty()) throw ConfigError("bench: --batch-sizes is empty");
    return out;
}

std::vector<std::pair<std::int64_t, std::int64_t>> parseLayers(const std::string& bench, const std::string& text) {
    std::vector<std::pair<std::int64_t, std::int64_t>> layers;
    std::stringstream list(text);
    for (std::string item; std::getline(list, item, ',');) {
        std::int64_t in = 0, out = 0;
        char x = 0;
        std::stringstream is(item);
        if (!(is >> in >> x >> out) || x != 'x' || !is.eof() || in < 1 || out < 1 || in > 65536 || out > 65536)
            throw ConfigError(bench + ": --layers: \"" + item + "\" is not INxOUT with extents in [1, 65536]");
        layers.emplace_back(in, out);
    }
    if (layers.empty()) throw ConfigError(bench + ": --layers is empty");
    return layers;
}


} // namespace lathe::cli

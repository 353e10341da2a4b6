// lathe-cli bench store: sample ingest rate through StoreSampleWriter, and how long listing 10,000
// runs takes (RunStore::listRuns, the `runs` table formatting, and `lathe-cli runs` end to end).
#include "app/cli/cli.h"
#include "app/cli/cmd_runs.h"

#include "engine/core/errors.h"
#include "engine/store/run_store.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sqlite3.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

namespace lathe::cli {
namespace {

using Clock = std::chrono::steady_clock;

// This process's CPU time: on a loaded machine it says what the code costs, wall time what it got.
double cpuSeconds() {
    timespec ts{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}

double msSince(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::string shellQuote(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'') out += "'\\''";
        else out += c;
    }
    return out + "'";
}

// Milliseconds for this very binary to run `ARGS` with its output thrown away; -1 if it failed.
double timeSelf(const std::string& args) {
    char exe[4096] = {};
    const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) return -1;
    const std::string cmd = shellQuote(std::string(exe, static_cast<std::size_t>(n))) + " " + args + " >/dev/null";
    const auto t0 = Clock::now();
    const int rc = std::system(cmd.c_str());
    const double ms = msSince(t0);
    return (rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0) ? ms : -1;
}

int runBenchStore(const std::vector<std::string>& argv) {
    Args args(argv, {"--db", "--samples", "--runs", "--repeats"}, {"--json"});
    const long long samplesPerRepeat = args.integer("--samples", 1000000);
    const long long runCount = args.integer("--runs", 10000);
    const long long repeats = args.integer("--repeats", 3);
    if (samplesPerRepeat < 1 || runCount < 1 || repeats < 1)
        throw ConfigError("--samples, --runs and --repeats must be at least 1");

    namespace fs = std::filesystem;
    std::string dir;
    std::string path;
    if (auto p = args.value("--db")) {
        path = *p;
        if (fs::exists(path)) throw ConfigError("--db " + path + ": exists; bench store writes a fresh database, give a new path");
    } else {
        const char* tmp = std::getenv("TMPDIR");
        std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/lathe-bench-store-XXXXXX";
        if (!::mkdtemp(pattern.data())) throw std::runtime_error("cannot create a temporary folder " + pattern);
        dir = pattern;
        path = dir + "/runs.sqlite";
    }
    struct Cleanup {
        std::string dir;
        ~Cleanup() {
            std::error_code ec;
            if (!dir.empty()) std::filesystem::remove_all(dir, ec);
        }
    } cleanup{dir};

    nlohmann::json report;
    report["database"] = path;
    report["sqlite_version"] = sqlite3_libversion();
    {
        RunStore store(path);
        const std::int64_t experiment = store.addExperiment("bench-store", "{}");

        // Ingest: eight interleaved series, as a training loop with latency probes produces them.
        static const char* kSeries[] = {"loss", "accuracy", "lr", "grad_norm",
                                        "latency_ms/b1", "latency_ms/b64", "throughput/b64", "memory_bytes"};
        std::vector<double> rates, cpuRates;
        std::uint64_t lcg = 0x9E3779B97F4A7C15ull;
        for (long long rep = 0; rep < repeats; ++rep) {
            NewRun nr;
            nr.experimentId = experiment;
            nr.name = "ingest " + std::to_string(rep);
            const std::int64_t runId = store.createRun(nr);
            store.startRun(runId);
            const auto t0 = Clock::now();
            const double cpu0 = cpuSeconds();
            {
                StoreSampleWriter writer(store);
                for (long long i = 0; i < samplesPerRepeat; ++i) {
                    lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
                    const double value = static_cast<double>(lcg >> 11) * 0x1.0p-53;
                    MetricSample s;
                    s.runId = runId;
                    s.setSeries(kSeries[i & 7]);
                    s.step = i >> 3;
                    s.tMs = static_cast<double>(i) * 0.01;
                    s.value = value;
                    writer.push(s);
                }
                writer.flush();
            }
            const double seconds = msSince(t0) / 1000.0;
            const double cpu = cpuSeconds() - cpu0;
            rates.push_back(static_cast<double>(samplesPerRepeat) / seconds);
            cpuRates.push_back(static_cast<double>(samplesPerRepeat) / cpu);
            store.finishRun(runId, run_status::kDone);
            if (store.sampleCount(runId) != samplesPerRepeat)
                throw StoreError("bench store: run " + std::to_string(runId) + " holds " +
                                 std::to_string(store.sampleCount(runId)) + " samples, expected " +
                                 std::to_string(samplesPerRepeat));
        }
        std::vector<double> sorted = rates;
        std::sort(sorted.begin(), sorted.end());
        report["ingest"] = {{"samples_per_repeat", samplesPerRepeat},
                            {"batch", 4096},
                            {"samples_per_s", rates},
                            {"samples_per_cpu_s", cpuRates},
                            {"median_samples_per_s", sorted[sorted.size() / 2]}};

        // Listing: runCount runs, each with a summary of eight shared metric keys.
        const auto t0 = Clock::now();
        for (long long i = 0; i < runCount; ++i) {
            lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
            const double u = static_cast<double>(lcg >> 11) * 0x1.0p-53;
            NewRun nr;
            nr.experimentId = experiment;
            nr.name = "mlp-int8 [sparsity=" + std::to_string(i % 10 / 10.0).substr(0, 3) + "] #" + std::to_string(i);
            nr.model = "mlp-784-256-128-10";
            nr.dataset = "fashion-mnist";
            nr.device = i % 3 ? "cpu" : "cuda:0";
            nr.strategyChain = "train > prune.magnitude > quantize.int8";
            nr.tags = {"bench", i % 2 ? "odd" : "even"};
            const std::int64_t id = store.createRun(nr);
            store.setSummary(id, {{"accuracy", 0.8 + 0.1 * u},
                                  {"latency_p50_ms", 0.2 + u},
                                  {"latency_p95_ms", 0.3 + u},
                                  {"latency_p99_ms", 0.4 + u},
                                  {"throughput_per_s", 10000 * (1 + u)},
                                  {"model_bytes", 270000 * (1 - u / 2)},
                                  {"sparsity", u},
                                  {"params", 235146}});
        }
        report["listing_setup_ms"] = msSince(t0);
    }

    // A fresh read-only connection, as `lathe-cli runs` and the GUI open it.
    auto t0 = Clock::now();
    RunStore reader(path, RunStore::Mode::ReadOnly);
    const double openMs = msSince(t0);
    t0 = Clock::now();
    const auto runs = reader.listRuns();
    const double listMs = msSince(t0);
    t0 = Clock::now();
    const std::string table = formatRunsTable(runs, 0);
    const double formatMs = msSince(t0);
    const double cliMs = timeSelf("runs --db " + shellQuote(path));
    const double cliJsonMs = timeSelf("runs --json --db " + shellQuote(path));
    report["listing"] = {{"runs", runs.size()},
                         {"open_ms", openMs},
                         {"list_runs_ms", listMs},
                         {"format_table_ms", formatMs},
                         {"table_bytes", table.size()},
                         {"cli_runs_ms", cliMs},
                         {"cli_runs_json_ms", cliJsonMs}};

    if (args.flag("--json")) {
        std::cout << report.dump(2) << "\n";
        return kExitOk;
    }
    std::printf("store benchmark: SQLite %s, %s\n", sqlite3_libversion(), path.c_str());
    std::printf("ingest (StoreSampleWriter, batches of 4096, 8 series): %lld samples x %lld:", samplesPerRepeat, repeats);
    for (const auto& r : report["ingest"]["samples_per_s"]) std::printf(" %.0f", r.get<double>());
    std::printf(" samples/s; median %.0f samples/s\n", report["ingest"]["median_samples_per_s"].get<double>());
    std::printf("  per second of this process's CPU time:");
    for (const auto& r : report["ingest"]["samples_per_cpu_s"]) std::printf(" %.0f", r.get<double>());
    double load[3] = {};
    if (::getloadavg(load, 3) > 0) std::printf(" (load average %.2f on %ld cores)", load[0], ::sysconf(_SC_NPROCESSORS_ONLN));
    std::printf("\n");
    std::printf("listing %zu runs with 8 summary keys each (setup %.0f ms):\n", runs.size(),
                report["listing_setup_ms"].get<double>());
    std::printf("  open read-only %.1f ms, listRuns %.1f ms, table formatting %.1f ms\n", openMs, listMs, formatMs);
    std::printf("  lathe-cli runs end to end %.1f ms, lathe-cli runs --json %.1f ms\n", cliMs, cliJsonMs);
    return kExitOk;
}

const BenchRegistrar kRegistrar({"store", "bench store [--db NEW_PATH] [--samples N] [--repeats R] [--runs N] [--json]",
                                 "run store: sample ingest rate and listing 10,000 runs", runBenchStore});

} // namespace
} // namespace lathe::cli

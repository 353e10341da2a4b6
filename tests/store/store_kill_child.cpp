// Helper for the store's kill and concurrency tests: opens the store, then creates runs, appends
// samples in batches, writes a summary and marks each run done, reporting progress on stdout
// ("READY pid", "RUN id", "DONE id samples step_sum"). Killed with SIGKILL at random moments.
#include "engine/core/rng.h"
#include "engine/store/run_store.h"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <unistd.h>

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: store_kill_child DB SEED [RUNS (0: until killed)]\n");
        return 2;
    }
    const std::string path = argv[1];
    const std::uint64_t seed = std::strtoull(argv[2], nullptr, 10);
    const long runs = argc > 3 ? std::atol(argv[3]) : 0;
    try {
        lathe::RunStore store(path);
        lathe::Rng rng(seed);
        std::printf("READY %d\n", static_cast<int>(::getpid()));
        std::fflush(stdout);
        for (long r = 0; runs == 0 || r < runs; ++r) {
            lathe::NewRun nr;
            nr.name = "kill-child " + std::to_string(seed) + "/" + std::to_string(r);
            nr.model = "mlp-784-256-128-10";
            nr.device = "cpu";
            nr.strategyChain = "train";
            nr.tags = {"kill-test"};
            const std::int64_t id = store.createRun(nr);
            std::printf("RUN %lld\n", static_cast<long long>(id));
            std::fflush(stdout);
            store.startRun(id);
            const std::int64_t total = 2000 + static_cast<std::int64_t>(rng.below(30000));
            const std::size_t batch = 1 + rng.below(3000);
            std::int64_t stepSum = 0;
            {
                lathe::StoreSampleWriter writer(store, batch);
                for (std::int64_t i = 0; i < total; ++i) {
                    writer.push(lathe::makeSample(id, i % 3 ? "loss" : "latency_ms/b64", i, i * 0.25, rng.uniform(-1, 1)));
                    stepSum += i;
                }
                writer.flush();
            }
            store.setSummary(id, {{"samples", static_cast<double>(total)}, {"accuracy", rng.uniform()}});
            store.finishRun(id, lathe::run_status::kDone);
            std::printf("DONE %lld %lld %lld\n", static_cast<long long>(id), static_cast<long long>(total),
                        static_cast<long long>(stepSum));
            std::fflush(stdout);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ERROR %s\n", e.what());
        return 1;
    }
    return 0;
}

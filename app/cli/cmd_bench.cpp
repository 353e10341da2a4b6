// lathe-cli bench KIND: dispatches to the registered benchmarks (gemm, mlp, store, ...).
#include "app/cli/cli.h"

#include "engine/core/errors.h"

#include <iostream>

namespace lathe::cli {
namespace {

int runBench(const std::vector<std::string>& args) {
    if (args.empty() || args[0].rfind("--", 0) == 0) {
        std::string known;
        for (const auto& [name, b] : benches()) known += "\n  " + name + "  " + b.summary;
        throw ConfigError("bench needs a kind:" + known);
    }
    auto it = benches().find(args[0]);
    if (it == benches().end()) {
        std::string known;
        for (const auto& [name, b] : benches()) known += (known.empty() ? "" : ", ") + name;
        throw ConfigError("unknown benchmark \"" + args[0] + "\" (known: " + known + ")");
    }
    return it->second.run(std::vector<std::string>(args.begin() + 1, args.end()));
}

const Registrar kRegistrar({"bench", "bench KIND [options]  (KIND: gemm, mlp, store, ...)",
                            "benchmarks: median latency and throughput per backend and batch size", runBench});

} // namespace
} // namespace lathe::cli

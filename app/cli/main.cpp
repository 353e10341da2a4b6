// lathe-cli: the headless tool (engine only, no Qt) for GPU servers, scripts and clusters.
#include "app/cli/cli.h"

#include "engine/core/errors.h"

#include <cstdio>
#include <iostream>

namespace {

void printUsage() {
    std::cout << "lathe-cli " << LATHE_VERSION << ": inference-optimization experiments without a GUI\n\n"
              << "usage: lathe-cli COMMAND [options]\n\ncommands:\n";
    for (const auto& [name, cmd] : lathe::cli::commands())
        std::printf("  %-10s %s\n", name.c_str(), cmd.summary.c_str());
    std::cout << "\n'lathe-cli COMMAND --help' shows a command's options.\n"
              << "exit codes: 0 ok, 1 a run failed, 2 bad input, 130 cancelled\n";
}

} // namespace

int main(int argc, char** argv) {
    using namespace lathe::cli;
    if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" ||
        std::string(argv[1]) == "help") {
        printUsage();
        return argc < 2 ? kExitBadInput : kExitOk;
    }
    if (std::string(argv[1]) == "--version") {
        std::cout << "lathe-cli " << LATHE_VERSION << "\n";
        return kExitOk;
    }
    const std::string name = argv[1];
    auto it = commands().find(name);
    if (it == commands().end()) {
        std::cerr << "lathe-cli: unknown command \"" << name << "\"\n";
        printUsage();
        return kExitBadInput;
    }
    std::vector<std::string> args(argv + 2, argv + argc);
    for (const auto& a : args)
        if (a == "--help" || a == "-h") {
            std::cout << "usage: lathe-cli " << it->second.usage << "\n\n" << it->second.summary << "\n";
            return kExitOk;
        }
    try {
        return it->second.run(args);
    } catch (const lathe::CancelledError&) {
        std::cerr << "lathe-cli " << name << ": cancelled\n";
        return kExitCancelled;
    } catch (const lathe::ConfigError& e) {
        std::cerr << "lathe-cli " << name << ": " << e.what() << "\n";
        return kExitBadInput;
    } catch (const lathe::DataError& e) {
        std::cerr << "lathe-cli " << name << ": " << e.what() << "\n";
        return kExitBadInput;
    } catch (const std::exception& e) {
        std::cerr << "lathe-cli " << name << ": " << e.what() << "\n";
        return kExitRunFailed;
    }
}

// lathe-cli plumbing: subcommands register themselves here; a small argument parser that turns
// unknown or malformed flags into ConfigError (exit code 2).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace lathe::cli {

// Exit codes shared by every subcommand.
constexpr int kExitOk = 0;
constexpr int kExitRunFailed = 1;
constexpr int kExitBadInput = 2;
constexpr int kExitCancelled = 130;

struct Command {
    std::string name;
    std::string usage;   // "train --model NAME --dataset NAME|DIR [--epochs N] ..."
    std::string summary; // one line
    std::function<int(const std::vector<std::string>& args)> run;
};

std::map<std::string, Command>& commands();

struct Registrar {
    explicit Registrar(Command c);
};

// `lathe-cli bench KIND`: benchmarks register themselves the same way.
struct Bench {
    std::string name;    // "gemm", "mlp", "store"
    std::string usage;
    std::string summary;
    std::function<int(const std::vector<std::string>& args)> run;
};
std::map<std::string, Bench>& benches();
struct BenchRegistrar {
    explicit BenchRegistrar(Bench b);
};

// Parses "--key value", "--key=value" and boolean "--flag" options plus positionals.
// valueOptions: options that take a value; flagOptions: booleans. Anything else throws ConfigError.
class Args {
public:
    Args(const std::vector<std::string>& args, const std::vector<std::string>& valueOptions,
         const std::vector<std::string>& flagOptions);

    std::optional<std::string> value(const std::string& key) const;
    std::string value(const std::string& key, const std::string& fallback) const;
    std::vector<std::string> values(const std::string& key) const; // repeated option
    long long integer(const std::string& key, long long fallback) const;
    double number(const std::string& key, double fallback) const;
    bool flag(const std::string& key) const;
    const std::vector<std::string>& positional() const { return m_positional; }

private:
    std::multimap<std::string, std::string> m_values;
    std::vector<std::string> m_flags;
    std::vector<std::string> m_positional;
};

// Ctrl-C (and SIGTERM) while a guard lives sets the flag returned by cancelFlag(), so loops stop
// between batches and the current run is stored as cancelled; a second Ctrl-C exits at once (130).
class InterruptGuard {
public:
    InterruptGuard();
    ~InterruptGuard();
    InterruptGuard(const InterruptGuard&) = delete;
    InterruptGuard& operator=(const InterruptGuard&) = delete;

private:
    struct Saved;
    Saved* m_saved;
};
const std::atomic<bool>& cancelFlag();
// The signal that first set cancelFlag() (SIGINT, SIGTERM), 0 when none did.
int cancelSignal();

// True when stdout is a terminal (progress lines are drawn only then).
bool stdoutIsTerminal();

} // namespace lathe::cli

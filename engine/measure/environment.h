// The environment a run was measured in, stored with every run: host, CPU, device and its
// driver/library versions, BLAS threading, Lathe version and git revision, seed, dataset hashes.
#pragma once

#include "engine/backends/backend.h"
#include "engine/core/host_info.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace lathe {

// backend may be null (the run failed before one was chosen). Dataset files are hashed with
// sha256File (cached per process). A file that cannot be hashed is recorded with its error.
nlohmann::json captureEnvironment(const Backend* backend, std::uint64_t seed,
                                  const std::vector<std::string>& datasetFiles);

// Where a cluster scheduler placed the process: Slurm's job, array job and task ids, restart count, node,
// partition and the GPUs it was given (SLURM_* and CUDA_VISIBLE_DEVICES). Null outside a Slurm job.
// captureEnvironment stores it as "slurm".
nlohmann::json slurmEnvironment();

std::string hostName();
std::string osDescription(); // "Linux 6.1.0-18-amd64 x86_64"

} // namespace lathe

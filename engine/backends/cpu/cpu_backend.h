// The CPU reference backend: OpenBLAS SGEMM plus plain loops spread over a small thread pool.
#pragma once

#include "engine/backends/backend.h"

#include <cstdint>
#include <memory>
#include <string>

namespace lathe {

// threads == 0: defaultCpuThreads().
std::shared_ptr<Backend> makeCpuBackend(int threads = 0);

// The threads of a CPU backend made with threads == 0, and where the number comes from: inside a Slurm
// job that set SLURM_CPUS_PER_TASK (sbatch --cpus-per-task), that many, so tasks sharing a node do not
// each take all its cores; else the CPUs this process may run on (its affinity mask: taskset, a cgroup
// cpuset, a scheduler that binds tasks); else every hardware thread.
struct CpuThreadsChoice {
    int threads = 1;
    std::string source; // "SLURM_CPUS_PER_TASK", "affinity", "hardware"
};
CpuThreadsChoice defaultCpuThreads();

// The kernels of the CPU backend's W8A8 ops (quantize_rows, gemm_int8), picked when the backend is made:
// the best this CPU runs, unless LATHE_CPU_INT8_PATH=scalar|avx2|avx512vnni names one. All of them sum
// the same exact int32 products, so they differ in speed only; tests and benchmarks pick one per backend.
enum class CpuInt8Path : std::uint8_t {
    Scalar,     // portable loops
    Avx2,       // vpmaddwd on sign-extended int16 (AVX2 + FMA)
    Avx512Vnni, // vpdpbusd on u8 activations (x + 128) x s8 weights (AVX512-VNNI + BW + VL)
};
const char* cpuInt8PathName(CpuInt8Path path); // "scalar", "avx2", "avx512vnni"
bool cpuInt8PathAvailable(CpuInt8Path path);   // whether this CPU (and OS) runs its instructions
// Throws BackendError when `backend` is not a CPU backend or this CPU lacks the path.
void setCpuInt8Path(Backend& backend, CpuInt8Path path);
CpuInt8Path cpuInt8Path(const Backend& backend);

} // namespace lathe

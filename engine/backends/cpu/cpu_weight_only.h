// Internal to the CPU backend and its tests: which kernel the weight-only GEMM runs (instruction set, fused
// GEMV or dequantized tiles into the f32 GEMM), and the bias + activation epilogue it applies to f32 tiles.
#pragma once

#include "engine/backends/backend.h"

#include <cstdint>

namespace lathe::cpu {

enum class WeightOnlyIsa : std::uint8_t { Auto, Scalar, Avx2, Avx512 };
enum class WeightOnlyPath : std::uint8_t { Auto, Gemv, Tiled };

// Auto picks the widest instruction set the CPU has, and the GEMV for up to 16 rows of x (cpu_weight_only.cpp).
// The process starts with LATHE_CPU_WEIGHT_ONLY_PATH (read once, for benchmarks: an instruction set
// scalar|avx2|avx512 and/or a path gemv|tiled, comma-separated) or Auto.
struct WeightOnlyDispatch {
    WeightOnlyIsa isa = WeightOnlyIsa::Auto;
    WeightOnlyPath path = WeightOnlyPath::Auto;
};
// Process-wide; tests force each kernel in turn. Forcing an instruction set the CPU lacks throws BackendError.
void setWeightOnlyDispatch(WeightOnlyDispatch d);
WeightOnlyDispatch weightOnlyDispatch();
bool weightOnlyIsaAvailable(WeightOnlyIsa isa);
const char* weightOnlyIsaName(WeightOnlyIsa isa); // "auto", "scalar", "avx2", "avx512"

// y (rows, cols), row stride ldy: y[r][c] = act(y[r][c] + bias[c]); bias (cols) or null. A GEMM calls it on
// each tile of y right after writing it, while the tile is still in cache.
void applyBiasActivation(float* y, std::int64_t rows, std::int64_t cols, std::int64_t ldy, const float* bias,
                         Activation act);

} // namespace lathe::cpu

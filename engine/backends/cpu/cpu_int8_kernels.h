// The CPU int8 kernels (cpu_int8_kernels.cpp) for the ops of cpu_int8.cpp: quantize_rows' row loops and
// gemm_int8's tiles on each path (scalar, AVX2, AVX512-VNNI), and the packed weight they read.
#pragma once

#include "engine/backends/backend.h"
#include "engine/backends/cpu/cpu_backend.h"

#include <cstdint>

namespace lathe::cpu::int8 {

// prepackInt8's result is a U8 tensor of bytes, for W (N, K) I8:
//   Int8PackHeader (cpu_int8.cpp)           64 bytes: N, K, kp, panels, for gemm_int8's checks
//   comp   I32 (panels * 16)                128 * sum over k of W[n][k]; 0 in the padding rows
//   codes  I8 (panels, kp / 4, 16, 4)       W[16 p + r][4 j + i] at [p][j][r][i]; 0 past N and past K
// with kp = K rounded up to 4 and panels = ceil(N / 16). One (16, 4) block is 64 bytes, one zmm: the
// groups of 4 codes of 16 output columns that vpdpbusd multiplies by one broadcast group of 4 activations.
// comp undoes the + 128 that makes the activations unsigned for vpdpbusd (the other paths ignore it).
constexpr std::int64_t kPanel = 16; // output columns per panel: one zmm of int32 sums
constexpr std::int64_t kGroup = 4;  // k values one vpdpbusd lane sums

struct PackedView {
    std::int64_t n = 0, k = 0, kp = 0, panels = 0;
    const std::int32_t* comp = nullptr; // (panels * 16)
    const std::int8_t* codes = nullptr; // (panels, kp / 4, 16, 4)
};

// One W8A8 product's operands, shared by the kernels.
struct Int8Gemm {
    PackedView w;
    std::int64_t m = 0;
    const std::int8_t* xq = nullptr; // (M, K)
    const void* xPrepared = nullptr;  // the kernel's copy of x: u8 x + 128 (vnni) or i16 (avx2), (M, kp)
    const float* xScale = nullptr;    // (M) or (1)
    bool xPerRow = false;
    const float* wScale = nullptr;    // (N) or (1)
    bool wPerColumn = false;
    const float* bias = nullptr;      // (N) or null
    Activation act = Activation::None;
    float* y = nullptr;               // (M, N)

    float xs(std::int64_t r) const { return xScale[xPerRow ? r : 0]; }
    float ws(std::int64_t n) const { return wScale[wPerColumn ? n : 0]; }
    float b(std::int64_t n) const { return bias ? bias[n] : 0.0f; }
};

// Rows [m0, m1) x panels [p0, p1) of y, epilogue included.
using TileFn = void (*)(const Int8Gemm& g, std::int64_t m0, std::int64_t m1, std::int64_t p0, std::int64_t p1);
TileFn tileFor(CpuInt8Path path);

// The kernel's own copy of x (M, K), padded to kp with zeros: u8 x + 128 for avx512vnni, i16 for avx2; none
// (0 bytes) for the scalar kernel, which reads xq itself.
std::int64_t preparedBytes(CpuInt8Path path, std::int64_t m, std::int64_t kp);
void prepareX(CpuInt8Path path, const std::int8_t* xq, std::int64_t m, std::int64_t k, std::int64_t kp, void* out);

// rows of x (rows, k) -> q (rows, k), quantize_rows' arithmetic; dynamic: s[r] written, else s[0] read.
void quantizeRowsOn(CpuInt8Path path, const float* x, std::int64_t rows, std::int64_t k, bool dynamic, float* s,
                    std::int8_t* q);

} // namespace lathe::cpu::int8

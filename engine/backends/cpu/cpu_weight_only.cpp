// CPU weight-only quantized GEMM: y (M, N) = act(x (M, K) @ W^T + bias), W (N, K) in quant_matrix.h's formats.
// A few rows of x: a fused dequantize-GEMV that never writes W in f32. More rows: W dequantized a tile at a time
// into the f32 GEMM, the bias + activation epilogue on each tile while it is in cache. AVX-512, AVX2 + FMA and
// baseline kernels are all built and picked at run time.
#include "engine/backends/cpu/cpu_weight_only.h"

#include "engine/backends/cpu/cpu_backend_impl.h"
#include "engine/core/errors.h"
#include "engine/core/quant_blocks.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LATHE_WEIGHT_ONLY_X86 1
#include <immintrin.h>
#endif

namespace lathe::cpu {
namespace {

constexpr int kChunk = 16;       // codes decoded at once: one AVX-512 register, two AVX2 ones
constexpr int kSymmetricZero = 8; // int4 without stored zero points (quant_matrix.h)

// Up to this many rows of x the fused GEMV runs; above, dequantized tiles into the f32 GEMM. Measured on
// the 4096 x 4096 layer (AVX-512, one thread, every format): the GEMV, which decodes W once per four rows
// of x, took 9.6 ms against the tiles' 12.2 at M = 16 and 19.1 against 18.4 at M = 32.
constexpr std::int64_t kGemvMaxBatch = 16;
// Multiply-adds a GEMV task should get at least: below, waking a worker costs more than it saves (the
// 784 -> 256 layer at batch 1 stays on the calling thread).
constexpr std::int64_t kMinGemvTaskMacs = 1 << 18;
// The tiled path dequantizes this many bytes of W at a time (clamped to kMinTileRows..kMaxTileRows rows).
// OpenBLAS packs x again for every tile: with 1 MiB tiles (64 rows of a 4096-wide W) a 256-row batch was
// packed 64 times and the path ran 35% behind the f32 GEMM; with 4 MiB (256 rows), 20-25% behind.
constexpr std::int64_t kTileBytes = 4 << 20;
constexpr std::int64_t kMinTileRows = 32, kMaxTileRows = 256;

// What a kernel reads of W: codes (N, rowBytes), scales (N, groups), zero points (N, groups) or null.
struct QuantView {
    const std::uint8_t* codes;
    const float* scales;
    const std::uint8_t* zeros;
    std::int64_t k, group, groups, rowBytes;
    int zeroOf(std::int64_t n, std::int64_t g) const { return zeros ? zeros[n * groups + g] : kSymmetricZero; }
};

// Two codes per byte (int4, nf4), or one (int8, fp8).
template <WeightFormat F>
constexpr bool kNibbleCodes = F == WeightFormat::Int4 || F == WeightFormat::Nf4;

// Every FP8 E4M3 byte's value: fp8 codes decode through this table (gathered 8 or 16 at a time).
const float* fp8Table() {
    static const float* table = fp8E4M3Table().data();
    return table;
}

// The value of code k of a row before its group's scale: int8 q, int4 q - zero, nf4 codebook[q], fp8 e4m3(q).
template <WeightFormat F>
inline float codeValue(const std::uint8_t* row, std::int64_t k, int zero) {
    if constexpr (F == WeightFormat::Int8) {
        return static_cast<float>(static_cast<std::int8_t>(row[k]));
    } else if constexpr (F == WeightFormat::Fp8) {
        return fp8Table()[row[k]];
    } else {
        const int q = (row[k >> 1] >> ((k & 1) * 4)) & 0x0F;
        if constexpr (F == WeightFormat::Int4) return static_cast<float>(q - zero);
        else return kNf4Codebook[static_cast<std::size_t>(q)];
    }
}

// ---- instruction sets: each decodes kChunk codes starting at an even k into a Chunk of floats and sums
// chunks times x into an Acc. The generic kernels below are written once over them.

struct ScalarIsa {
    struct Chunk { float v[kChunk]; };
    using Acc = Chunk;
    struct Table {};
    static Table table() { return {}; }
    static Acc zero() { return Acc{}; }
    template <WeightFormat F>
    static Chunk decode(const std::uint8_t* row, std::int64_t k, int zero, const Table&) {
        Chunk c;
        for (int i = 0; i < kChunk; ++i) c.v[i] = codeValue<F>(row, k + i, zero);
        return c;
    }
    // 32 codes from k (a multiple of 32): the even ones (low nibbles) and the odd ones (high nibbles).
    template <WeightFormat F>
    static void decodePairs(const std::uint8_t* row, std::int64_t k, int zero, const Table&, Chunk& even, Chunk& odd) {
        for (int i = 0; i < kChunk; ++i) {
            even.v[i] = codeValue<F>(row, k + 2 * i, zero);
            odd.v[i] = codeValue<F>(row, k + 2 * i + 1, zero);
        }
    }
    static void fma(Acc& acc, const Chunk& w, const float* x) {
        for (int i = 0; i < kChunk; ++i) acc.v[i] += w.v[i] * x[i];
    }
    static void addScaled(Acc& total, float scale, const Acc& acc) {
        for (int i = 0; i < kChunk; ++i) total.v[i] += scale * acc.v[i];
    }
    static float sum(const Acc& a) {
        float s = 0.0f;
        for (float v : a.v) s += v;
        return s;
    }
    static void storeScaled(float* out, float scale, const Chunk& c) {
        for (int i = 0; i < kChunk; ++i) out[i] = scale * c.v[i];
    }
};

#ifdef LATHE_WEIGHT_ONLY_X86
#define LATHE_AVX2 __attribute__((target("avx2,fma")))
#define LATHE_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))

// Eight bytes of packed 4-bit codes -> their 16 codes in k order, one per byte (low nibble first).
LATHE_AVX2 inline __m128i unpackNibbles(const std::uint8_t* p) {
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    const __m128i mask = _mm_set1_epi8(0x0F);
    return _mm_unpacklo_epi8(_mm_and_si128(b, mask), _mm_and_si128(_mm_srli_epi16(b, 4), mask));
}

struct Avx2Isa {
    struct Chunk { __m256 lo, hi; };
    using Acc = Chunk;
    struct Table { __m256 lo, hi; }; // nf4 codebook entries 0-7 and 8-15
    LATHE_AVX2 static Table table() { return {_mm256_loadu_ps(kNf4Codebook.data()), _mm256_loadu_ps(kNf4Codebook.data() + 8)}; }
    LATHE_AVX2 static Acc zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
    // Sixteen entries from two 8-entry permutes: the index's bit 3 (moved to the sign bit) picks the half.
    LATHE_AVX2 static __m256 lookup(__m256i idx, const Table& t) {
        const __m256 lo = _mm256_permutevar8x32_ps(t.lo, idx), hi = _mm256_permutevar8x32_ps(t.hi, idx);
        return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
    }
    // Sixteen 4-bit codes, one per byte, -> their values.
    template <WeightFormat F>
    LATHE_AVX2 static Chunk fromCodes(__m128i q, int zero, const Table& t) {
        const __m256i q0 = _mm256_cvtepu8_epi32(q), q1 = _mm256_cvtepu8_epi32(_mm_srli_si128(q, 8));
        if constexpr (F == WeightFormat::Int4) {
            const __m256i z = _mm256_set1_epi32(zero);
            return {_mm256_cvtepi32_ps(_mm256_sub_epi32(q0, z)), _mm256_cvtepi32_ps(_mm256_sub_epi32(q1, z))};
        } else {
            return {lookup(q0, t), lookup(q1, t)};
        }
    }
    template <WeightFormat F>
    LATHE_AVX2 static Chunk decode(const std::uint8_t* row, std::int64_t k, int zero, const Table& t) {
        if constexpr (F == WeightFormat::Int8) {
            const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k));
            return {_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)), _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(b, 8)))};
        } else if constexpr (F == WeightFormat::Fp8) {
            const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k));
            const float* t8 = fp8Table();
            return {_mm256_i32gather_ps(t8, _mm256_cvtepu8_epi32(b), 4),
                    _mm256_i32gather_ps(t8, _mm256_cvtepu8_epi32(_mm_srli_si128(b, 8)), 4)};
        } else {
            return fromCodes<F>(unpackNibbles(row + k / 2), zero, t);
        }
    }
    template <WeightFormat F>
    LATHE_AVX2 static void decodePairs(const std::uint8_t* row, std::int64_t k, int zero, const Table& t, Chunk& even,
                                       Chunk& odd) {
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k / 2));
        const __m128i mask = _mm_set1_epi8(0x0F);
        even = fromCodes<F>(_mm_and_si128(b, mask), zero, t);
        odd = fromCodes<F>(_mm_and_si128(_mm_srli_epi16(b, 4), mask), zero, t);
    }
    LATHE_AVX2 static void fma(Acc& acc, const Chunk& w, const float* x) {
        acc.lo = _mm256_fmadd_ps(w.lo, _mm256_loadu_ps(x), acc.lo);
        acc.hi = _mm256_fmadd_ps(w.hi, _mm256_loadu_ps(x + 8), acc.hi);
    }
    LATHE_AVX2 static void addScaled(Acc& total, float scale, const Acc& acc) {
        const __m256 s = _mm256_set1_ps(scale);
        total.lo = _mm256_fmadd_ps(s, acc.lo, total.lo);
        total.hi = _mm256_fmadd_ps(s, acc.hi, total.hi);
    }
    LATHE_AVX2 static float sum(const Acc& a) {
        const __m256 v = _mm256_add_ps(a.lo, a.hi);
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
    }
    LATHE_AVX2 static void storeScaled(float* out, float scale, const Chunk& c) {
        const __m256 s = _mm256_set1_ps(scale);
        _mm256_storeu_ps(out, _mm256_mul_ps(s, c.lo));
        _mm256_storeu_ps(out + 8, _mm256_mul_ps(s, c.hi));
    }
};

// GCC 12's unmasked forms of these intrinsics start from an "undefined" register that -Wmaybe-uninitialized
// reports once inlined; the all-ones masked forms are the same instructions.
struct Avx512Isa {
    static constexpr __mmask16 kAll = 0xFFFF;
    using Chunk = __m512;
    using Acc = __m512;
    using Table = __m512; // the whole nf4 codebook in one register
    LATHE_AVX512 static Table table() { return _mm512_loadu_ps(kNf4Codebook.data()); }
    LATHE_AVX512 static Acc zero() { return _mm512_setzero_ps(); }
    // Sixteen 4-bit codes, one per byte, -> their values.
    template <WeightFormat F>
    LATHE_AVX512 static Chunk fromCodes(__m128i codes, int zero, const Table& t) {
        const __m512i q = _mm512_maskz_cvtepu8_epi32(kAll, codes);
        if constexpr (F == WeightFormat::Int4)
            return _mm512_maskz_cvtepi32_ps(kAll, _mm512_sub_epi32(q, _mm512_set1_epi32(zero)));
        else return _mm512_maskz_permutexvar_ps(kAll, q, t);
    }
    template <WeightFormat F>
    LATHE_AVX512 static Chunk decode(const std::uint8_t* row, std::int64_t k, int zero, const Table& t) {
        if constexpr (F == WeightFormat::Int8) {
            const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k));
            return _mm512_maskz_cvtepi32_ps(kAll, _mm512_maskz_cvtepi8_epi32(kAll, b));
        } else if constexpr (F == WeightFormat::Fp8) {
            const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k));
            return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), kAll, _mm512_maskz_cvtepu8_epi32(kAll, b), fp8Table(), 4);
        } else {
            return fromCodes<F>(unpackNibbles(row + k / 2), zero, t);
        }
    }
    template <WeightFormat F>
    LATHE_AVX512 static void decodePairs(const std::uint8_t* row, std::int64_t k, int zero, const Table& t,
                                         Chunk& even, Chunk& odd) {
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k / 2));
        const __m128i mask = _mm_set1_epi8(0x0F);
        even = fromCodes<F>(_mm_and_si128(b, mask), zero, t);
        odd = fromCodes<F>(_mm_and_si128(_mm_srli_epi16(b, 4), mask), zero, t);
    }
    LATHE_AVX512 static void fma(Acc& acc, const Chunk& w, const float* x) {
        acc = _mm512_fmadd_ps(w, _mm512_loadu_ps(x), acc);
    }
    LATHE_AVX512 static void addScaled(Acc& total, float scale, const Acc& acc) {
        total = _mm512_fmadd_ps(_mm512_set1_ps(scale), acc, total);
    }
    LATHE_AVX512 static float sum(const Acc& a) {
        const __m512d d = _mm512_castps_pd(a);
        return Avx2Isa::sum({_mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xFF, d, 0)),
                             _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xFF, d, 1))});
    }
    LATHE_AVX512 static void storeScaled(float* out, float scale, const Chunk& c) {
        _mm512_storeu_ps(out, _mm512_mul_ps(_mm512_set1_ps(scale), c));
    }
};
#endif

// ---- the kernels, written once over an instruction set. The SIMD instantiations are only ever inlined
// (flatten) into entry points compiled for their instruction set, so the vector-ABI note GCC gives for
// the generic bodies, which pass AVX registers between inline functions, never describes a real call.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

// y[r][n] for r < R, n in [n0, n1): sum over n's groups of scale * sum(code * x[r]) over the group. Each
// chunk of codes is decoded once and multiplied into all R rows of x, into two accumulators per row: one
// chain of dependent FMAs kept the batch-1 GEMV at one chunk per FMA latency. 4-bit codes come 32 at a time
// from one 16-byte load where xPairs (x with each aligned run of 32 values reordered evens first, odds
// after) is given: the low nibbles then meet the evens and the high nibbles the odds, with no interleave.
// A 4-bit group that starts on an odd k (odd group sizes) and each group's last k % 16 codes are summed one
// at a time.
template <class I, WeightFormat F, int R>
inline void gemvRows(const QuantView& w, const float* x, const float* xPairs, std::int64_t ldx, float* y,
                     std::int64_t ldy, std::int64_t n0, std::int64_t n1) {
    const typename I::Table table = I::table();
    for (std::int64_t n = n0; n < n1; ++n) {
        const std::uint8_t* row = w.codes + n * w.rowBytes; // (rowBytes)
        typename I::Acc total[R];
        float tail[R];
        for (int r = 0; r < R; ++r) {
            total[r] = I::zero();
            tail[r] = 0.0f;
        }
        for (std::int64_t g = 0; g < w.groups; ++g) {
            const std::int64_t k0 = g * w.group, k1 = std::min(w.k, k0 + w.group);
            const float scale = w.scales[n * w.groups + g];
            const int zero = F == WeightFormat::Int4 ? w.zeroOf(n, g) : 0;
            typename I::Acc acc[R], acc2[R];
            float part[R];
            for (int r = 0; r < R; ++r) {
                acc[r] = acc2[r] = I::zero();
                part[r] = 0.0f;
            }
            std::int64_t k = k0;
            if (kNibbleCodes<F> && (k & 1) && k < k1) {
                const float c = codeValue<F>(row, k, zero);
                for (int r = 0; r < R; ++r) part[r] += c * x[r * ldx + k];
                ++k;
            }
            if constexpr (kNibbleCodes<F>) {
                if (xPairs && k % (2 * kChunk) == 0)
                    for (; k + 2 * kChunk <= k1; k += 2 * kChunk) {
                        typename I::Chunk even, odd;
                        I::template decodePairs<F>(row, k, zero, table, even, odd);
                        for (int r = 0; r < R; ++r) {
                            I::fma(acc[r], even, xPairs + r * ldx + k);
                            I::fma(acc2[r], odd, xPairs + r * ldx + k + kChunk);
                        }
                    }
            }
            for (; k + 2 * kChunk <= k1; k += 2 * kChunk) {
                const typename I::Chunk c0 = I::template decode<F>(row, k, zero, table);
                const typename I::Chunk c1 = I::template decode<F>(row, k + kChunk, zero, table);
                for (int r = 0; r < R; ++r) {
                    I::fma(acc[r], c0, x + r * ldx + k);
                    I::fma(acc2[r], c1, x + r * ldx + k + kChunk);
                }
            }
            for (; k + kChunk <= k1; k += kChunk) {
                const typename I::Chunk c = I::template decode<F>(row, k, zero, table);
                for (int r = 0; r < R; ++r) I::fma(acc[r], c, x + r * ldx + k);
            }
            for (; k < k1; ++k) {
                const float c = codeValue<F>(row, k, zero);
                for (int r = 0; r < R; ++r) part[r] += c * x[r * ldx + k];
            }
            for (int r = 0; r < R; ++r) {
                I::addScaled(total[r], scale, acc[r]);
                I::addScaled(total[r], scale, acc2[r]);
                tail[r] += scale * part[r];
            }
        }
        for (int r = 0; r < R; ++r) y[r * ldy + n] = I::sum(total[r]) + tail[r];
    }
}

// out (n1 - n0, K) = the f32 values of W's rows [n0, n1), exactly dequantizeMatrix's.
template <class I, WeightFormat F>
inline void dequantRows(const QuantView& w, std::int64_t n0, std::int64_t n1, float* out) {
    const typename I::Table table = I::table();
    for (std::int64_t n = n0; n < n1; ++n) {
        const std::uint8_t* row = w.codes + n * w.rowBytes; // (rowBytes)
        float* o = out + (n - n0) * w.k;                    // (K)
        for (std::int64_t g = 0; g < w.groups; ++g) {
            const std::int64_t k0 = g * w.group, k1 = std::min(w.k, k0 + w.group);
            const float scale = w.scales[n * w.groups + g];
            const int zero = F == WeightFormat::Int4 ? w.zeroOf(n, g) : 0;
            std::int64_t k = k0;
            if (kNibbleCodes<F> && (k & 1) && k < k1) {
                o[k] = scale * codeValue<F>(row, k, zero);
                ++k;
            }
            for (; k + kChunk <= k1; k += kChunk) I::storeScaled(o + k, scale, I::template decode<F>(row, k, zero, table));
            for (; k < k1; ++k) o[k] = scale * codeValue<F>(row, k, zero);
        }
    }
}

#pragma GCC diagnostic pop

using GemvFn = void (*)(const QuantView&, const float*, const float*, std::int64_t, float*, std::int64_t,
                        std::int64_t, std::int64_t);
using DequantFn = void (*)(const QuantView&, std::int64_t, std::int64_t, float*);

template <WeightFormat F, int R>
void gemvScalar(const QuantView& w, const float* x, const float* xPairs, std::int64_t ldx, float* y,
                std::int64_t ldy, std::int64_t n0, std::int64_t n1) {
    gemvRows<ScalarIsa, F, R>(w, x, xPairs, ldx, y, ldy, n0, n1);
}
template <WeightFormat F>
void dequantScalar(const QuantView& w, std::int64_t n0, std::int64_t n1, float* out) {
    dequantRows<ScalarIsa, F>(w, n0, n1, out);
}

#ifdef LATHE_WEIGHT_ONLY_X86
template <WeightFormat F, int R>
__attribute__((target("avx2,fma"), flatten)) void gemvAvx2(const QuantView& w, const float* x, const float* xPairs,
                                                           std::int64_t ldx, float* y, std::int64_t ldy,
                                                           std::int64_t n0, std::int64_t n1) {
    gemvRows<Avx2Isa, F, R>(w, x, xPairs, ldx, y, ldy, n0, n1);
}
template <WeightFormat F>
__attribute__((target("avx2,fma"), flatten)) void dequantAvx2(const QuantView& w, std::int64_t n0, std::int64_t n1,
                                                              float* out) {
    dequantRows<Avx2Isa, F>(w, n0, n1, out);
}
template <WeightFormat F, int R>
__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma"), flatten)) void gemvAvx512(
    const QuantView& w, const float* x, const float* xPairs, std::int64_t ldx, float* y, std::int64_t ldy,
    std::int64_t n0, std::int64_t n1) {
    gemvRows<Avx512Isa, F, R>(w, x, xPairs, ldx, y, ldy, n0, n1);
}
template <WeightFormat F>
__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma"), flatten)) void dequantAvx512(
    const QuantView& w, std::int64_t n0, std::int64_t n1, float* out) {
    dequantRows<Avx512Isa, F>(w, n0, n1, out);
}
#endif

template <WeightFormat F, int R>
GemvFn gemvFor(WeightOnlyIsa isa) {
    switch (isa) {
#ifdef LATHE_WEIGHT_ONLY_X86
    case WeightOnlyIsa::Avx512: return &gemvAvx512<F, R>;
    case WeightOnlyIsa::Avx2: return &gemvAvx2<F, R>;
#endif
    default: return &gemvScalar<F, R>;
    }
}

template <WeightFormat F>
GemvFn gemvFor(WeightOnlyIsa isa, int rows) {
    return rows >= 4 ? gemvFor<F, 4>(isa) : rows == 2 ? gemvFor<F, 2>(isa) : gemvFor<F, 1>(isa);
}

GemvFn gemvFor(WeightOnlyIsa isa, WeightFormat f, int rows) {
    switch (f) {
    case WeightFormat::Int8: return gemvFor<WeightFormat::Int8>(isa, rows);
    case WeightFormat::Int4: return gemvFor<WeightFormat::Int4>(isa, rows);
    case WeightFormat::Fp8: return gemvFor<WeightFormat::Fp8>(isa, rows);
    case WeightFormat::Nf4: break;
    }
    return gemvFor<WeightFormat::Nf4>(isa, rows);
}

template <WeightFormat F>
DequantFn dequantFor(WeightOnlyIsa isa) {
    switch (isa) {
#ifdef LATHE_WEIGHT_ONLY_X86
    case WeightOnlyIsa::Avx512: return &dequantAvx512<F>;
    case WeightOnlyIsa::Avx2: return &dequantAvx2<F>;
#endif
    default: return &dequantScalar<F>;
    }
}

DequantFn dequantFor(WeightOnlyIsa isa, WeightFormat f) {
    switch (f) {
    case WeightFormat::Int8: return dequantFor<WeightFormat::Int8>(isa);
    case WeightFormat::Int4: return dequantFor<WeightFormat::Int4>(isa);
    case WeightFormat::Fp8: return dequantFor<WeightFormat::Fp8>(isa);
    case WeightFormat::Nf4: break;
    }
    return dequantFor<WeightFormat::Nf4>(isa);
}

// ---- dispatch state

// LATHE_CPU_WEIGHT_ONLY_PATH: an instruction set (auto, scalar, avx2, avx512) and/or a path (gemv, tiled),
// comma-separated ("avx2,tiled"), for benchmarks that compare the kernels.
WeightOnlyDispatch dispatchFromEnvironment() {
    WeightOnlyDispatch d;
    const char* v = std::getenv("LATHE_CPU_WEIGHT_ONLY_PATH");
    std::string rest = v ? v : "";
    while (!rest.empty()) {
        const std::size_t comma = rest.find(',');
        const std::string item = rest.substr(0, comma);
        rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
        bool known = false;
        for (WeightOnlyIsa isa : {WeightOnlyIsa::Auto, WeightOnlyIsa::Scalar, WeightOnlyIsa::Avx2, WeightOnlyIsa::Avx512})
            if (item == weightOnlyIsaName(isa)) {
                d.isa = isa;
                known = true;
            }
        if (item == "gemv" || item == "tiled") {
            d.path = item == "gemv" ? WeightOnlyPath::Gemv : WeightOnlyPath::Tiled;
            known = true;
        }
        if (!known)
            throw BackendError("LATHE_CPU_WEIGHT_ONLY_PATH=" + std::string(v) + ": \"" + item +
                               "\" is none of auto, scalar, avx2, avx512, gemv, tiled");
    }
    return d;
}

struct DispatchState {
    std::atomic<WeightOnlyIsa> isa;
    std::atomic<WeightOnlyPath> path;
    explicit DispatchState(WeightOnlyDispatch d) : isa(d.isa), path(d.path) {}
};

DispatchState& dispatchState() {
    static DispatchState state(dispatchFromEnvironment());
    return state;
}

WeightOnlyIsa resolveIsa(WeightOnlyIsa isa) {
    if (isa != WeightOnlyIsa::Auto) {
        if (!weightOnlyIsaAvailable(isa))
            throw BackendError(std::string("cpu gemm_weight_only: this CPU cannot run the ") + weightOnlyIsaName(isa) +
                               " kernels");
        return isa;
    }
    for (WeightOnlyIsa best : {WeightOnlyIsa::Avx512, WeightOnlyIsa::Avx2})
        if (weightOnlyIsaAvailable(best)) return best;
    return WeightOnlyIsa::Scalar;
}

// ---- argument checks

bool doubleQuantized(const QuantizedWeights& w) { return w.spec.format == WeightFormat::Nf4 && w.spec.doubleQuant; }

void checkWeights(const Tensor& x, const QuantizedWeights& w, const Tensor* bias, const Tensor& y) {
    const char* op = "gemm_weight_only";
    checkCpu(x, op, "x");
    checkCpu(y, op, "y");
    checkDType(x, DType::F32, op, "x");
    checkDType(y, DType::F32, op, "y");
    if (x.rank() != 2)
        throw BackendError(std::string("cpu gemm_weight_only: x must be (M, K), got ") + x.describe());
    if (w.spec.group < 1)
        throw BackendError("cpu gemm_weight_only: the weights' group must be at least 1, got " +
                           std::to_string(w.spec.group));
    if (w.cols != x.dim(1))
        throw BackendError("cpu gemm_weight_only: x is " + x.describe() + " but the weights have K = " +
                           std::to_string(w.cols) + " columns");
    const std::int64_t n = w.rows, groups = quantGroups(w.cols, w.spec.group);
    checkShape(w.packed, {n, packedRowBytes(w.spec.format, w.cols)}, op, "packed");
    checkDType(w.packed, packedDType(w.spec.format), op, "packed");
    if (doubleQuantized(w)) {
        for (const auto& [t, name, shape, dt] :
             {std::tuple{&w.scaleCodes, "scale_codes", Shape{n, groups}, DType::U8},
              std::tuple{&w.scaleAbsmax, "scale_absmax", Shape{(n * groups + kDoubleQuantBlock - 1) / kDoubleQuantBlock},
                         DType::F32},
              std::tuple{&w.scaleOffset, "scale_offset", Shape{1}, DType::F32}}) {
            if (!t->defined())
                throw BackendError(std::string("cpu gemm_weight_only: double-quantized nf4 weights need ") + name +
                                   " " + shapeToString(shape) + ", got none");
            checkShape(*t, shape, op, name);
            checkDType(*t, dt, op, name);
        }
    } else {
        checkShape(w.scales, {n, groups}, op, "scales");
        checkDType(w.scales, DType::F32, op, "scales");
    }
    if (w.spec.format == WeightFormat::Int4 && !w.spec.symmetric) {
        if (!w.zeros.defined())
            throw BackendError("cpu gemm_weight_only: asymmetric int4 weights need zeros U8 " +
                               shapeToString({n, groups}) + ", got none");
        checkShape(w.zeros, {n, groups}, op, "zeros");
        checkDType(w.zeros, DType::U8, op, "zeros");
    }
    checkShape(y, {x.dim(0), n}, op, "y");
    if (bias) {
        checkShape(*bias, {n}, op, "bias");
        checkDType(*bias, DType::F32, op, "bias");
    }
}

} // namespace

// ---- the internal interface (cpu_weight_only.h)

const char* weightOnlyIsaName(WeightOnlyIsa isa) {
    switch (isa) {
    case WeightOnlyIsa::Auto: return "auto";
    case WeightOnlyIsa::Scalar: return "scalar";
    case WeightOnlyIsa::Avx2: return "avx2";
    case WeightOnlyIsa::Avx512: return "avx512";
    }
    return "?";
}

bool weightOnlyIsaAvailable(WeightOnlyIsa isa) {
    switch (isa) {
    case WeightOnlyIsa::Auto:
    case WeightOnlyIsa::Scalar: return true;
#ifdef LATHE_WEIGHT_ONLY_X86
    case WeightOnlyIsa::Avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case WeightOnlyIsa::Avx512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && weightOnlyIsaAvailable(WeightOnlyIsa::Avx2);
#endif
    default: return false;
    }
}

void setWeightOnlyDispatch(WeightOnlyDispatch d) {
    resolveIsa(d.isa); // refuses an instruction set the CPU lacks now rather than at the next call
    dispatchState().isa = d.isa;
    dispatchState().path = d.path;
}

WeightOnlyDispatch weightOnlyDispatch() { return {dispatchState().isa.load(), dispatchState().path.load()}; }

void applyBiasActivation(float* y, std::int64_t rows, std::int64_t cols, std::int64_t ldy, const float* bias,
                         Activation act) {
    if (!bias && act == Activation::None) return;
    for (std::int64_t r = 0; r < rows; ++r) {
        float* yr = y + r * ldy; // (cols)
        if (bias)
            for (std::int64_t c = 0; c < cols; ++c) yr[c] += bias[c];
        switch (act) {
        case Activation::None: break;
        case Activation::Relu:
            for (std::int64_t c = 0; c < cols; ++c) yr[c] = std::max(yr[c], 0.0f);
            break;
        case Activation::Gelu:
            for (std::int64_t c = 0; c < cols; ++c) yr[c] = geluExact(yr[c]);
            break;
        }
    }
}

void CpuBackend::gemmWeightOnly(const Tensor& x, const QuantizedWeights& w, const Tensor* bias, Activation act,
                                Tensor& y) {
    require(weightOnlyGemmDesc(w.spec.format));
    checkWeights(x, w, bias, y);
    const std::int64_t m = x.dim(0), n = w.rows, k = w.cols;
    if (m == 0 || n == 0) return;
    const WeightOnlyDispatch d = weightOnlyDispatch();
    const WeightOnlyIsa isa = resolveIsa(d.isa);
    const bool hasZeros = w.spec.format == WeightFormat::Int4 && !w.spec.symmetric;
    // Double-quantized nf4: the absmax decoded first (bitsandbytes' dequantize_blockwise of the statistics), a
    // 64th of the codes' count at group 64; the kernels below then read them as f32 scales.
    thread_local std::vector<float> decodedScales;
    const float* scales = nullptr;
    if (doubleQuantized(w)) {
        const std::int64_t count = n * quantGroups(k, w.spec.group);
        decodedScales.resize(static_cast<std::size_t>(count));
        decodeDoubleQuantScales(w.scaleCodes.ptr<const std::uint8_t>(), w.scaleAbsmax.ptr<const float>(),
                                *w.scaleOffset.ptr<const float>(), count, decodedScales.data());
        scales = decodedScales.data();
    } else {
        scales = w.scales.ptr<const float>();
    }
    const QuantView view{w.packed.ptr<const std::uint8_t>(), scales,
                         hasZeros ? w.zeros.ptr<const std::uint8_t>() : nullptr, k, w.spec.group,
                         quantGroups(k, w.spec.group), packedRowBytes(w.spec.format, k)};
    const float* px = x.ptr<const float>(); // (M, K)
    const float* pb = bias ? bias->ptr<const float>() : nullptr; // (N)
    float* py = y.ptr<float>();             // (M, N)

    // K = 0 (no codes) goes to the GEMV too, which writes act(bias) without dividing by K.
    const bool gemv =
        d.path == WeightOnlyPath::Gemv || (d.path == WeightOnlyPath::Auto && m <= kGemvMaxBatch) || k == 0;
    if (gemv) {
        // xPairs (M, K): each full, aligned run of 32 values of x reordered evens first, odds after, for the
        // 4-bit kernels' 32-code loads; only where every group starts on a multiple of 32.
        const bool pairs = packedDType(w.spec.format) == DType::U8 && (w.spec.group % 32 == 0 || w.spec.group >= k);
        thread_local std::vector<float> xPairs;
        if (pairs) {
            xPairs.resize(static_cast<std::size_t>(m * k));
            for (std::int64_t r = 0; r < m; ++r)
                for (std::int64_t b = 0; b + 32 <= k; b += 32)
                    for (std::int64_t i = 0; i < 16; ++i) {
                        xPairs[static_cast<std::size_t>(r * k + b + i)] = px[r * k + b + 2 * i];
                        xPairs[static_cast<std::size_t>(r * k + b + 16 + i)] = px[r * k + b + 2 * i + 1];
                    }
        }
        const float* pp = pairs ? xPairs.data() : nullptr;
        // Rows of x in blocks of 4, 2, 1: each block decodes W once.
        const std::int64_t minRows =
            std::max<std::int64_t>(1, kMinGemvTaskMacs / (std::max<std::int64_t>(k, 1) * std::min<std::int64_t>(m, 4)));
        forEach(n, [&](std::int64_t n0, std::int64_t n1) {
            for (std::int64_t r = 0; r < m;) {
                const int rows = m - r >= 4 ? 4 : m - r >= 2 ? 2 : 1;
                gemvFor(isa, w.spec.format, rows)(view, px + r * k, pp ? pp + r * k : nullptr, k, py + r * n, n, n0, n1);
                applyBiasActivation(py + r * n + n0, rows, n1 - n0, n, pb ? pb + n0 : nullptr, act);
                r += rows;
            }
        }, minRows);
        return;
    }

    // y[:, tile] = x @ W[tile]^T, one tile of W's rows at a time; tiles in parallel when there are several
    // (the GEMM inside then runs on its thread), else the one GEMM splits over the pool itself.
    const DequantFn dequant = dequantFor(isa, w.spec.format);
    const std::int64_t tileRows =
        std::clamp<std::int64_t>(kTileBytes / (k * std::int64_t{sizeof(float)}) / 16 * 16, kMinTileRows, kMaxTileRows);
    const std::int64_t tiles = (n + tileRows - 1) / tileRows;
    auto runTile = [&](std::int64_t t) {
        thread_local std::vector<float> buffer;
        const std::int64_t n0 = t * tileRows, rows = std::min(tileRows, n - n0);
        buffer.resize(static_cast<std::size_t>(rows * k));
        dequant(view, n0, n0 + rows, buffer.data()); // (rows, K)
        sgemm(false, true, m, rows, k, 1.0f, px, k, buffer.data(), k, 0.0f, py + n0, n);
        applyBiasActivation(py + n0, m, rows, n, pb ? pb + n0 : nullptr, act);
    };
    if (tiles == 1 || static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) < kParallelGemmMacs) {
        for (std::int64_t t = 0; t < tiles; ++t) runTile(t);
        return;
    }
    m_threads.forChunks(tiles, runTile);
}

} // namespace lathe::cpu

namespace lathe::cpu {

// The FP8 GEMM's numerics on f32 units (Fp8Mode::Emulated; the CPU has no FP8 matrix unit): x rounded to E4M3
// values with its per-tensor scale, then the fp8 weight-only kernel over those values, with W's scales times sx
// (so the bias and activation stay fused in its epilogue).
void CpuBackend::gemmFp8(const Tensor& x, const QuantizedWeights& w, const Tensor* bias, Activation act, Fp8Mode mode,
                         Tensor& y) {
    require(fp8GemmDesc(mode));
    const char* op = "gemm_fp8";
    checkCpu(x, op, "x");
    checkDType(x, DType::F32, op, "x");
    if (w.spec.format != WeightFormat::Fp8 || w.spec.group < w.cols)
        throw BackendError(std::string("cpu gemm_fp8: W must be fp8 with one scale per row, got ") +
                           weightFormatName(w.spec.format) + " group " + std::to_string(w.spec.group));
    checkShape(w.scales, {w.rows, 1}, op, "scales");
    if (x.rank() != 2) throw BackendError("cpu gemm_fp8: x must be (M, K), got " + x.describe());
    const float* px = x.ptr<const float>(); // (M, K)
    const std::int64_t count = x.numel();
    float amax = 0.0f;
    for (std::int64_t i = 0; i < count; ++i) amax = std::max(amax, std::fabs(px[i]));
    const float sx = fp8TensorScale(amax);
    Tensor xq = Tensor::host(x.shape(), DType::F32); // (M, K): e4m3(x / sx) as f32 values, exact
    float* pq = xq.ptr<float>();
    for (std::int64_t i = 0; i < count; ++i) pq[i] = fp8E4M3ToFloat(floatToFp8E4M3(px[i] / sx));
    Tensor scaled = Tensor::host(w.scales.shape(), DType::F32); // (N, 1)
    const float* ps = w.scales.ptr<const float>();
    for (std::int64_t i = 0; i < w.rows; ++i) scaled.ptr<float>()[i] = ps[i] * sx;
    QuantizedWeights ws = w;
    ws.scales = scaled;
    gemmWeightOnly(xq, ws, bias, act, y);
}

} // namespace lathe::cpu

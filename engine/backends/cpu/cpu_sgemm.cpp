// The CPU backend's own f32 GEMM (see cpu_sgemm.h): B in panels of 32 columns, (K, 32) each (read in place, or
// packed from W = B^T, per call or once for inference, where a 16-bit weight keeps its f16 / bf16 elements and is
// widened in registers), and tiles of up to 12 rows x 32 columns summed in zmm registers over the whole of K (one
// broadcast of op(A) per row and k, two FMAs). The epilogue adds the bias and applies the activation in registers.
// Measured on an AMD Zen 5 core for the MLP's layers at batch 256: 8 x 32, 12 x 32, 14 x 32 and 6 x 64 tiles all
// within 2% of one another; packing W is about 3.5% of the forward.
#include "engine/backends/cpu/cpu_sgemm.h"

#include "engine/backends/cpu/cpu_backend_impl.h"
#include "engine/core/errors.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define LATHE_SGEMM_X86 1
// The build targets baseline x86-64; the kernels are compiled for AVX-512F and run only where the CPU has it.
#define LATHE_TARGET_AVX512F __attribute__((target("avx512f,avx2,fma")))
#endif

namespace lathe::cpu {
namespace {

constexpr int kNv = 2;                  // zmm per tile row
constexpr std::int64_t kNr = 16 * kNv;  // columns per panel
constexpr int kMr = 12;                 // rows per tile: 24 zmm of sums (with kNv = 2)
constexpr std::int64_t kRowChunk = 96;  // rows per task (a multiple of kMr)
constexpr std::int64_t kPanelChunk = 4; // panels per task
constexpr std::int64_t kPrefetchRows = 16; // rows of B ahead that the micro-kernel prefetches

#ifdef LATHE_SGEMM_X86
// Panels [p0, p1) of W (N, K) -> bp (panels, K, 32): bp[p][k][j] = W[32 p + j][k], 0 past N. Blocks of 16
// columns x 16 k are transposed in registers; the edges (K % 16, a last panel narrower than 32) go one by one.
LATHE_TARGET_AVX512F void packPanels(const float* w, std::int64_t ldw, std::int64_t n, std::int64_t k, std::int64_t p0,
                                     std::int64_t p1, float* bp) {
    for (std::int64_t p = p0; p < p1; ++p) {
        float* dst = bp + p * k * kNr; // (K, 32)
        for (std::int64_t half = 0; half < kNv; ++half) {
            const std::int64_t c0 = p * kNr + half * 16, cols = std::clamp<std::int64_t>(n - c0, 0, 16);
            float* d = dst + half * 16;
            std::int64_t kk = 0;
            if (cols == 16) {
                for (; kk + 16 <= k; kk += 16) {
                    __m512 r[16];
                    for (int j = 0; j < 16; ++j)
                        r[j] = _mm512_loadu_ps(w + (c0 + j) * ldw + kk);
                    // 16 x 16 transpose: pairs of rows, then pairs of pairs, then 128-bit lanes twice (the maskz
                    // forms with a full mask are the plain instructions, without GCC 12's -Wmaybe-uninitialized).
                    __m512 t[16];
                    for (int j = 0; j < 16; j += 2) {
                        t[j] = _mm512_maskz_unpacklo_ps(0xffff, r[j], r[j + 1]);
                        t[j + 1] = _mm512_maskz_unpackhi_ps(0xffff, r[j], r[j + 1]);
                    }
                    for (int j = 0; j < 16; j += 4) {
                        r[j] = _mm512_maskz_shuffle_ps(0xffff, t[j], t[j + 2], _MM_SHUFFLE(1, 0, 1, 0));
                        r[j + 1] = _mm512_maskz_shuffle_ps(0xffff, t[j], t[j + 2], _MM_SHUFFLE(3, 2, 3, 2));
                        r[j + 2] = _mm512_maskz_shuffle_ps(0xffff, t[j + 1], t[j + 3], _MM_SHUFFLE(1, 0, 1, 0));
                        r[j + 3] = _mm512_maskz_shuffle_ps(0xffff, t[j + 1], t[j + 3], _MM_SHUFFLE(3, 2, 3, 2));
                    }
                    // r[4 g + q] now holds, in 128-bit lane l, column values (4 g .. 4 g + 3) of k = 4 l + q.
                    for (int j = 0; j < 4; ++j) {
                        t[j] = _mm512_maskz_shuffle_f32x4(0xffff, r[j], r[j + 4], _MM_SHUFFLE(2, 0, 2, 0));
                        t[j + 4] = _mm512_maskz_shuffle_f32x4(0xffff, r[j], r[j + 4], _MM_SHUFFLE(3, 1, 3, 1));
                        t[j + 8] = _mm512_maskz_shuffle_f32x4(0xffff, r[j + 8], r[j + 12], _MM_SHUFFLE(2, 0, 2, 0));
                        t[j + 12] = _mm512_maskz_shuffle_f32x4(0xffff, r[j + 8], r[j + 12], _MM_SHUFFLE(3, 1, 3, 1));
                    }
                    for (int j = 0; j < 4; ++j) {
                        r[j] = _mm512_maskz_shuffle_f32x4(0xffff, t[j], t[j + 8], _MM_SHUFFLE(2, 0, 2, 0));
                        r[j + 8] = _mm512_maskz_shuffle_f32x4(0xffff, t[j], t[j + 8], _MM_SHUFFLE(3, 1, 3, 1));
                        r[j + 4] = _mm512_maskz_shuffle_f32x4(0xffff, t[j + 4], t[j + 12], _MM_SHUFFLE(2, 0, 2, 0));
                        r[j + 12] = _mm512_maskz_shuffle_f32x4(0xffff, t[j + 4], t[j + 12], _MM_SHUFFLE(3, 1, 3, 1));
                    }
                    for (int q = 0; q < 16; ++q)
                        _mm512_storeu_ps(d + (kk + q) * kNr, r[q]);
                }
            }
            for (; kk < k; ++kk)
                for (std::int64_t j = 0; j < 16; ++j)
                    d[kk * kNr + j] = j < cols ? w[(c0 + j) * ldw + kk] : 0.0f;
        }
    }
}

// B's elements: f32, or a 16-bit weight prepacked for inference (f16, bf16), widened to f32 in registers as it is
// loaded (exactly: every f16 and bf16 value is a float), so the products and sums are those of the widened weight.
enum class BElem { F32, F16, Bf16 };

template <BElem BE>
using BType = std::conditional_t<BE == BElem::F32, float, std::uint16_t>;

// 16 elements of B's row at p as floats: f32 masked (B's own last panel ends at its last column); 16-bit ones only
// come from prepacked panels, which are padded to whole panels of zeros, so they load whole.
template <BElem BE>
LATHE_TARGET_AVX512F inline __m512 loadB(const BType<BE>* p, __mmask16 mask) {
    if constexpr (BE == BElem::F32) {
        return _mm512_maskz_loadu_ps(mask, p);
    } else {
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
        if constexpr (BE == BElem::F16) return _mm512_maskz_cvtph_ps(0xffff, h);
        else return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xffff, _mm512_maskz_cvtepu16_epi32(0xffff, h), 16));
    }
}

// A 16-bit weight's product rounded once to its format (to nearest even; a NaN stays a NaN), and widened back: the
// output of the 16-bit GEMM, before the bias and the activation. f32 sums pass unchanged.
template <BElem BE>
LATHE_TARGET_AVX512F inline __m512 roundToB(__m512 v) {
    if constexpr (BE == BElem::F16) {
        return _mm512_maskz_cvtph_ps(0xffff, _mm512_maskz_cvtps_ph(0xffff, v, _MM_FROUND_TO_NEAREST_INT));
    } else if constexpr (BE == BElem::Bf16) {
        const __m512i x = _mm512_castps_si512(v);
        const __m512i odd = _mm512_and_si512(_mm512_maskz_srli_epi32(0xffff, x, 16), _mm512_set1_epi32(1));
        const __m512i up = _mm512_add_epi32(x, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), odd));
        const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        const __m512i r = _mm512_mask_or_epi32(up, nan, x, _mm512_set1_epi32(0x400000)); // quiet
        return _mm512_castsi512_ps(_mm512_and_si512(r, _mm512_set1_epi32(static_cast<int>(0xffff0000u))));
    } else {
        return v;
    }
}

// MR rows of op(A) against one panel of B, row kk at bp + kk * ldb (a packed panel: ldb = 32; B itself: its row
// stride), `cols` of its columns read: y (MR, cols) = act(sums + bias). Row i of op(A) at k is x[i * lda + k], or
// with A transposed (stored (K, M)) x[k * lda + i]. `accumulate`: the sums start at y's values (beta = 1).
template <int MR, int NV, bool AT, bool PF, BElem BE>
LATHE_TARGET_AVX512F void microTile(const float* x, std::int64_t lda, const void* bpv, std::int64_t ldb,
                                    std::int64_t k, float* y, std::int64_t ldy, std::int64_t cols, bool accumulate,
                                    const float* bias, Activation act) {
    const auto* bp = static_cast<const BType<BE>*>(bpv);
    __mmask16 mask[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
        const std::int64_t left = std::clamp<std::int64_t>(cols - 16 * v, 0, 16);
        mask[v] = static_cast<__mmask16>(left == 16 ? 0xffff : (1u << left) - 1);
    }
    __m512 acc[MR][NV];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v)
            acc[i][v] = accumulate ? _mm512_maskz_loadu_ps(mask[v], y + i * ldy + 16 * v) : _mm512_setzero_ps();
#pragma GCC unroll 2
    for (std::int64_t kk = 0; kk < k; ++kk) {
        // PF: B's row kPrefetchRows ahead into L1, for a panel prepacked for inference that streams from memory
        // (the first tile row over it), where the hardware's prefetcher alone leaves the loop waiting; past the
        // end it is a hint, never a fault. Panels in cache go without: the extra loads cost 3-10 %.
        if constexpr (PF) { // a row of 32 is two cache lines in f32, one in 16 bits
#pragma GCC unroll 4
            for (int v = 0; v < (BE == BElem::F32 ? NV : 1); ++v)
                _mm_prefetch(reinterpret_cast<const char*>(bp + (kk + kPrefetchRows) * ldb + 16 * v), _MM_HINT_T0);
        }
        __m512 b[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v)
            b[v] = loadB<BE>(bp + kk * ldb + 16 * v, mask[v]);
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) {
            const __m512 a = _mm512_set1_ps(AT ? x[kk * lda + i] : x[i * lda + kk]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v)
                acc[i][v] = _mm512_fmadd_ps(a, b[v], acc[i][v]);
        }
    }
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
        bv[v] = bias ? _mm512_maskz_loadu_ps(mask[v], bias + 16 * v) : _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
            if (!mask[v]) continue;
            // sum + bias, one rounding, as the bias_add op (a 16-bit weight's sum rounded to its format first);
            // ReLU as the relu op (NaN -> 0: max_ps returns its second operand where either is NaN). The maskz
            // forms with a full mask are the plain instructions.
            __m512 o = _mm512_maskz_add_ps(0xffff, roundToB<BE>(acc[i][v]), bv[v]);
            if (act == Activation::Relu) o = _mm512_maskz_max_ps(0xffff, o, _mm512_setzero_ps());
            _mm512_mask_storeu_ps(y + i * ldy + 16 * v, mask[v], o);
        }
    if (act == Activation::Gelu)
        for (int i = 0; i < MR; ++i)
            for (std::int64_t j = 0; j < cols; ++j)
                y[i * ldy + j] = geluExact(y[i * ldy + j]);
}

using MicroFn = void (*)(const float*, std::int64_t, const void*, std::int64_t, std::int64_t, float*, std::int64_t,
                         std::int64_t, bool, const float*, Activation);
// [rows][0]: the whole panel; [rows][1]: its first 16 columns only (a last panel that narrow).
template <bool AT, bool PF, BElem BE, int... R>
constexpr std::array<std::array<MicroFn, 2>, sizeof...(R) + 1> microTable(std::integer_sequence<int, R...>) {
    return {{{nullptr, nullptr}, {microTile<R + 1, kNv, AT, PF, BE>, microTile<R + 1, 1, AT, PF, BE>}...}};
}
using MicroTable = std::array<std::array<MicroFn, 2>, kMr + 1>;
template <bool AT, bool PF, BElem BE>
constexpr MicroTable kMicro = microTable<AT, PF, BE>(std::make_integer_sequence<int, kMr>{});
#endif

} // namespace

std::int64_t sgemmNtPackedFloats(std::int64_t n, std::int64_t k) {
    return (n + kNr - 1) / kNr * kNr * k;
}

bool ownSgemmAvailable() {
#ifdef LATHE_SGEMM_X86
    static const bool available =
        __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return available;
#else
    return false;
#endif
}

namespace {
std::atomic<bool>& enabledFlag() {
    static std::atomic<bool> flag{[] {
        const char* v = std::getenv("LATHE_CPU_SGEMM");
        return ownSgemmAvailable() && !(v && std::strcmp(v, "openblas") == 0);
    }()};
    return flag;
}
} // namespace

bool ownSgemmEnabled() {
    return enabledFlag().load(std::memory_order_relaxed);
}

void setOwnSgemmEnabled(bool enabled) {
    if (enabled && !ownSgemmAvailable()) throw BackendError("cpu sgemm: this CPU has no AVX-512F");
    enabledFlag().store(enabled, std::memory_order_relaxed);
}

namespace {
#ifdef LATHE_SGEMM_X86
// The tiles of y = act(beta y + op(A) B + bias), B's panel p at panel0 + p * panelStride and its row k at + k *
// rowStride (in elements of BE), as tasks of rowChunks x panelChunks; `pack(c)`, when given, lays out panel group c
// before the tasks that read it. `streamed`: the panels were laid out before the call (prepacked for inference) and
// may be in memory rather than cache, so each task's first tile row over them prefetches. A transposed only with f32.
template <BElem BE>
void runTiles(bool ta, std::int64_t m, std::int64_t n, std::int64_t k, const float* a, std::int64_t lda,
              const BType<BE>* panel0, std::int64_t panelStride, std::int64_t rowStride, bool accumulate, float* y,
              std::int64_t ldy, const float* bias, Activation act, const ChunkRunner& forChunks,
              const std::function<void(std::int64_t)>* pack, bool streamed) {
    const std::int64_t panels = (n + kNr - 1) / kNr;
    const std::int64_t panelChunks = (panels + kPanelChunk - 1) / kPanelChunk;
    const std::int64_t rowChunks = (m + kRowChunk - 1) / kRowChunk;
    const MicroTable& cached = ta ? kMicro<true, false, BElem::F32> : kMicro<false, false, BE>;
    const MicroTable& first = streamed ? kMicro<false, true, BE> : cached;
    const auto compute = [&](std::int64_t c) {
        const std::int64_t r0 = (c / panelChunks) * kRowChunk, r1 = std::min(m, r0 + kRowChunk);
        const std::int64_t q0 = (c % panelChunks) * kPanelChunk, q1 = std::min(panels, q0 + kPanelChunk);
        // The task's rows in tiles of near-equal height (64 rows: 11, 11, 11, 11, 10, 10, not 12 x 5 and a 4).
        const std::int64_t tiles = (r1 - r0 + kMr - 1) / kMr, base = (r1 - r0) / tiles, taller = (r1 - r0) % tiles;
        for (std::int64_t t = 0, r = r0; t < tiles; ++t) {
            const int rows = static_cast<int>(base + (t < taller ? 1 : 0));
            const float* ar = ta ? a + r : a + r * lda; // op(A)'s row r
            const MicroTable& micro = t == 0 ? first : cached;
            for (std::int64_t p = q0; p < q1; ++p) {
                const std::int64_t c0 = p * kNr;
                const std::int64_t cols = std::min(kNr, n - c0);
                micro[rows][cols <= 16](ar, lda, panel0 + p * panelStride, rowStride, k, y + r * ldy + c0, ldy, cols,
                                        accumulate, bias ? bias + c0 : nullptr, act);
            }
            r += rows;
        }
    };
    if (!pack) {
        forChunks(rowChunks * panelChunks, compute);
    } else if (rowChunks == 1) { // one task per panel group packs the panels it uses: one round of tasks, not two
        forChunks(panelChunks, [&](std::int64_t c) {
            (*pack)(c);
            compute(c);
        });
    } else {
        forChunks(panelChunks, *pack);
        forChunks(rowChunks * panelChunks, compute);
    }
}
#endif
} // namespace

void sgemmOwn(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const float* a, std::int64_t lda,
              const float* b, std::int64_t ldb, bool accumulate, float* y, std::int64_t ldy, const float* bias,
              Activation act, const ChunkRunner& forChunks) {
#ifdef LATHE_SGEMM_X86
    if (!ownSgemmAvailable()) throw BackendError("cpu sgemm: this CPU has no AVX-512F");
    if (m <= 0 || n <= 0) return;
    if (!tb) // B (K, N) row-major already holds what a packed panel does (32 consecutive columns at each k)
        return runTiles<BElem::F32>(ta, m, n, k, a, lda, b, kNr, ldb, accumulate, y, ldy, bias, act, forChunks,
                                    nullptr, false);
    // W = B^T (N, K) is packed into the calling thread's buffer, reused by its next call (grown, never shrunk: a
    // resize down and up again would zero the regrown part on every call); the tasks on other threads write and
    // read it through bp.
    thread_local std::vector<float> packed;
    const auto need = static_cast<std::size_t>(std::max<std::int64_t>(1, sgemmNtPackedFloats(n, k)));
    if (packed.size() < need) packed.resize(need);
    float* bp = packed.data();
    const std::int64_t panels = (n + kNr - 1) / kNr;
    const std::function<void(std::int64_t)> pack = [&](std::int64_t pc) {
        packPanels(b, ldb, n, k, pc * kPanelChunk, std::min(panels, (pc + 1) * kPanelChunk), bp);
    };
    runTiles<BElem::F32>(ta, m, n, k, a, lda, bp, k * kNr, kNr, accumulate, y, ldy, bias, act, forChunks, &pack,
                         false);
#else
    (void)ta, (void)tb, (void)m, (void)n, (void)k, (void)a, (void)lda, (void)b, (void)ldb, (void)accumulate, (void)y,
        (void)ldy, (void)bias, (void)act, (void)forChunks;
    throw BackendError("cpu sgemm: built without the x86-64 kernels");
#endif
}

void sgemmPackNt(std::int64_t n, std::int64_t k, const float* w, std::int64_t ldw, float* packed) {
#ifdef LATHE_SGEMM_X86
    if (!ownSgemmAvailable()) throw BackendError("cpu sgemm: this CPU has no AVX-512F");
    packPanels(w, ldw, n, k, 0, (n + kNr - 1) / kNr, packed);
#else
    (void)n, (void)k, (void)w, (void)ldw, (void)packed;
    throw BackendError("cpu sgemm: built without the x86-64 kernels");
#endif
}

void sgemmOwnPackedNt(std::int64_t m, std::int64_t n, std::int64_t k, const float* a, std::int64_t lda,
                      const float* packed, float* y, std::int64_t ldy, const float* bias, Activation act,
                      const ChunkRunner& forChunks) {
#ifdef LATHE_SGEMM_X86
    if (!ownSgemmAvailable()) throw BackendError("cpu sgemm: this CPU has no AVX-512F");
    if (m <= 0 || n <= 0) return;
    runTiles<BElem::F32>(false, m, n, k, a, lda, packed, k * kNr, kNr, false, y, ldy, bias, act, forChunks, nullptr,
                         true);
#else
    (void)m, (void)n, (void)k, (void)a, (void)lda, (void)packed, (void)y, (void)ldy, (void)bias, (void)act,
        (void)forChunks;
    throw BackendError("cpu sgemm: built without the x86-64 kernels");
#endif
}

void sgemmPackNt16(std::int64_t n, std::int64_t k, const std::uint16_t* w, std::int64_t ldw, std::uint16_t* packed) {
    // Done once per weight: one element at a time, panel (K, 32) after panel, zeros past N.
    const std::int64_t panels = (n + kNr - 1) / kNr;
    for (std::int64_t p = 0; p < panels; ++p)
        for (std::int64_t kk = 0; kk < k; ++kk)
            for (std::int64_t j = 0; j < kNr; ++j) {
                const std::int64_t col = p * kNr + j;
                packed[(p * k + kk) * kNr + j] = col < n ? w[col * ldw + kk] : std::uint16_t{0};
            }
}

void sgemmOwnPackedNt16(bool bf16, std::int64_t m, std::int64_t n, std::int64_t k, const float* a, std::int64_t lda,
                        const std::uint16_t* packed, float* y, std::int64_t ldy, const float* bias, Activation act,
                        const ChunkRunner& forChunks) {
#ifdef LATHE_SGEMM_X86
    if (!ownSgemmAvailable()) throw BackendError("cpu sgemm: this CPU has no AVX-512F");
    if (m <= 0 || n <= 0) return;
    if (bf16)
        runTiles<BElem::Bf16>(false, m, n, k, a, lda, packed, k * kNr, kNr, false, y, ldy, bias, act, forChunks,
                              nullptr, true);
    else
        runTiles<BElem::F16>(false, m, n, k, a, lda, packed, k * kNr, kNr, false, y, ldy, bias, act, forChunks,
                             nullptr, true);
#else
    (void)bf16, (void)m, (void)n, (void)k, (void)a, (void)lda, (void)packed, (void)y, (void)ldy, (void)bias,
        (void)act, (void)forChunks;
    throw BackendError("cpu sgemm: built without the x86-64 kernels");
#endif
}

} // namespace lathe::cpu

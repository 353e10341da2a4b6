// The CPU int8 kernels: quantize_rows' rows (scalar, GCC vector lanes compiled for AVX2, AVX-512 intrinsics) and
// gemm_int8's tiles: AVX512-VNNI vpdpbusd, AVX2 vpmaddwd on int16, and portable loops, each with the same
// exact int32 sums and the same epilogue arithmetic. Which one runs is cpu_int8.cpp's choice.
#include "engine/backends/cpu/cpu_int8_kernels.h"

#include "engine/backends/cpu/cpu_backend_impl.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define LATHE_INT8_X86 1
// The build targets baseline x86-64; these kernels are compiled for their own instruction sets and
// called only where __builtin_cpu_supports says the CPU has them.
#define LATHE_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define LATHE_TARGET_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")))
#endif

namespace lathe::cpu::int8 {
namespace {

// ---------------------------------------------------------------- quantize_rows

// clamp(v / s, -127, 127) rounded half away from zero. Clamping first keeps the rounded value in range;
// truncating and correcting by the exact remainder avoids the error of adding 0.5 before truncating
// (0.49999997f + 0.5f rounds to 1.0f). NaN gives 0.
inline std::int8_t quantizeOne(float v, float s) {
    float q = v / s;
    if (!(q == q)) q = 0.0f;
    q = q > 127.0f ? 127.0f : q;
    q = q < -127.0f ? -127.0f : q;
    int t = static_cast<int>(q);
    const float d = q - static_cast<float>(t);
    t += (d >= 0.5f) - (d <= -0.5f);
    return static_cast<std::int8_t>(t);
}

inline float maxAbsScalar(const float* x, std::int64_t k) {
    float m = 0.0f;
    for (std::int64_t i = 0; i < k; ++i) m = std::max(m, std::fabs(x[i]));
    return m;
}

// The same arithmetic on W lanes at once (GCC vector extensions, ymm in the AVX2 build; the AVX-512 rows
// are written out below); the tail goes through quantizeOne. (A vector_size that depends on W is dropped by GCC in an
// alias template, hence one specialisation per width.)
template <int W>
struct Lanes;
template <>
struct Lanes<8> {
    typedef float F __attribute__((vector_size(32)));
    typedef std::int32_t I __attribute__((vector_size(32)));
    typedef std::int8_t B __attribute__((vector_size(8)));
    typedef std::int8_t Bytes __attribute__((vector_size(32)));
    // The low byte of each int32 lane, first. AVX2 has no vpmovdb: __builtin_convertvector came out as
    // 8 extracts and shifts (2.5x the time of the whole AVX-512 row); a byte shuffle is two instructions.
    static B narrow(const I& t) {
        Bytes bytes;
        std::memcpy(&bytes, &t, sizeof bytes);
        const Bytes pick = {0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28,
                            0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28};
        const Bytes low = __builtin_shuffle(bytes, pick);
        B b;
        std::memcpy(&b, &low, sizeof b);
        return b;
    }
};

template <int W>
__attribute__((always_inline)) inline float maxAbsVec(const float* x, std::int64_t k) {
    using F = typename Lanes<W>::F;
    const F zero = {};
    F m = zero;
    std::int64_t i = 0;
    for (; i + W <= k; i += W) {
        F v;
        std::memcpy(&v, x + i, sizeof v);
        const F a = v < zero ? -v : v;
        m = a > m ? a : m;
    }
    float r = maxAbsScalar(x + i, k - i);
    for (int l = 0; l < W; ++l) r = std::max(r, m[l]);
    return r;
}

template <int W>
__attribute__((always_inline)) inline void quantizeVec(const float* x, std::int64_t k, float s, std::int8_t* q) {
    using F = typename Lanes<W>::F;
    using I = typename Lanes<W>::I;
    using B = typename Lanes<W>::B;
    const F sv = F{} + s, hi = F{} + 127.0f, lo = F{} - 127.0f, half = F{} + 0.5f, zero = {};
    std::int64_t i = 0;
    for (; i + W <= k; i += W) {
        F v;
        std::memcpy(&v, x + i, sizeof v);
        F f = v / sv;
        f = f == f ? f : zero;
        f = f > hi ? hi : f;
        f = f < lo ? lo : f;
        I t = __builtin_convertvector(f, I); // truncates toward zero
        const F d = f - __builtin_convertvector(t, F);
        t -= d >= half; // a true lane compares as -1
        t += d <= -half;
        const B b = Lanes<W>::narrow(t);
        std::memcpy(q + i, &b, sizeof b);
    }
    for (; i < k; ++i) q[i] = quantizeOne(x[i], s);
}

// rows of x (rows, k) -> q (rows, k); dynamic: s[r] written, else s[0] read for every row.
template <int W>
__attribute__((always_inline)) inline void quantizeRowsImpl(const float* x, std::int64_t rows, std::int64_t k,
                                                            bool dynamic, float* s, std::int8_t* q) {
    for (std::int64_t r = 0; r < rows; ++r, x += k, q += k) {
        float scale = dynamic ? 0.0f : s[0];
        if (dynamic) {
            if constexpr (W == 1)
                scale = maxAbsScalar(x, k) / 127.0f;
            else
                scale = maxAbsVec<W>(x, k) / 127.0f;
            s[r] = scale;
        }
        if (scale == 0.0f) {
            std::memset(q, 0, static_cast<std::size_t>(k));
            continue;
        }
        if constexpr (W == 1)
            for (std::int64_t i = 0; i < k; ++i) q[i] = quantizeOne(x[i], scale);
        else
            quantizeVec<W>(x, k, scale, q);
    }
}

#ifdef LATHE_INT8_X86
// ---- AVX-512 rows, written out: the vector-extension form above took a third of the int8 MLP's forward here,
// its samples piled on its vpmovdb to memory (slow on some cores, e.g. AMD Zen 4/5) and on the compares and
// blends of its rounding. Here 64 values are packed to bytes in registers (vpackssdw, vpacksswb, one permute)
// and stored once, and the rounding is one add: clamp(v / s) + copysign(0.49999997, .) truncated equals
// quantizeOne on every float (test_quantize_rows_exhaustive runs all 2^32 bit patterns; 0.49999997 is the
// largest float below one half, so a fraction below .5 never carries while .5 itself still does). (The maskz
// forms with a full mask are the plain instructions without GCC 12's -Wmaybe-uninitialized in its header.)

// 16 lanes of v / s through the rounding: NaN -> 0, clamp to +-127, half away from zero, as int32.
LATHE_TARGET_VNNI inline __attribute__((always_inline)) __m512i quantize16(__m512 v, __m512 s) {
    __m512 f = _mm512_div_ps(v, s);
    const __mmask16 ordered = _mm512_cmp_ps_mask(f, f, _CMP_ORD_Q);
    f = _mm512_maskz_min_ps(0xffff, _mm512_maskz_max_ps(ordered, f, _mm512_set1_ps(-127.0f)), _mm512_set1_ps(127.0f));
    // 0.49999997 with f's sign: (c | (f & sign)), c's own sign bit being 0.
    const __m512i c = _mm512_ternarylogic_epi32(_mm512_castps_si512(_mm512_set1_ps(0.49999997f)),
                                                _mm512_castps_si512(f), _mm512_set1_epi32(INT32_MIN), 0xf8);
    return _mm512_maskz_cvttps_epi32(0xffff, _mm512_add_ps(f, _mm512_castsi512_ps(c)));
}

LATHE_TARGET_VNNI inline __attribute__((always_inline)) __m512 absMax16(__m512i bits, __m512 m) {
    // max_ps returns its second operand where either is NaN: a NaN value leaves the running maximum.
    return _mm512_maskz_max_ps(0xffff, _mm512_castsi512_ps(_mm512_and_si512(bits, _mm512_set1_epi32(INT32_MAX))), m);
}

LATHE_TARGET_VNNI float maxAbsAvx512(const float* x, std::int64_t k) {
    __m512 m0 = _mm512_setzero_ps(), m1 = m0;
    std::int64_t i = 0;
    for (; i + 32 <= k; i += 32) {
        m0 = absMax16(_mm512_loadu_si512(x + i), m0);
        m1 = absMax16(_mm512_loadu_si512(x + i + 16), m1);
    }
    for (; i < k; i += 16) {
        const __mmask16 live = static_cast<__mmask16>(k - i >= 16 ? 0xffff : (1u << (k - i)) - 1);
        m0 = absMax16(_mm512_maskz_loadu_epi32(live, x + i), m0);
    }
    // Both halves, then the 128-bit quarters, then the lanes within one: the maximum ends in lane 0.
    __m512 m = _mm512_maskz_max_ps(0xffff, m0, m1);
    m = _mm512_maskz_max_ps(0xffff, m, _mm512_maskz_shuffle_f32x4(0xffff, m, m, _MM_SHUFFLE(1, 0, 3, 2)));
    m = _mm512_maskz_max_ps(0xffff, m, _mm512_maskz_shuffle_f32x4(0xffff, m, m, _MM_SHUFFLE(2, 3, 0, 1)));
    m = _mm512_maskz_max_ps(0xffff, m, _mm512_shuffle_ps(m, m, _MM_SHUFFLE(1, 0, 3, 2)));
    m = _mm512_maskz_max_ps(0xffff, m, _mm512_shuffle_ps(m, m, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm512_cvtss_f32(m);
}

LATHE_TARGET_VNNI void quantizeRowAvx512(const float* x, std::int64_t k, float scale, std::int8_t* q) {
    const __m512 s = _mm512_set1_ps(scale);
    // After the two packs, 128-bit lane l holds dwords (a_l, b_l, c_l, d_l): put each vector's back together.
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    std::int64_t i = 0;
    for (; i + 64 <= k; i += 64) {
        const __m512i a = quantize16(_mm512_loadu_ps(x + i), s), b = quantize16(_mm512_loadu_ps(x + i + 16), s);
        const __m512i c = quantize16(_mm512_loadu_ps(x + i + 32), s), d = quantize16(_mm512_loadu_ps(x + i + 48), s);
        const __m512i bytes = _mm512_packs_epi16(_mm512_packs_epi32(a, b), _mm512_packs_epi32(c, d));
        _mm512_storeu_si512(q + i, _mm512_maskz_permutexvar_epi32(0xffff, order, bytes));
    }
    for (; i < k; i += 16) {
        const __mmask16 live = static_cast<__mmask16>(k - i >= 16 ? 0xffff : (1u << (k - i)) - 1);
        __m128i b = _mm512_maskz_cvtepi32_epi8(0xffff, quantize16(_mm512_maskz_loadu_ps(live, x + i), s));
        asm("" : "+v"(b)); // keep vpmovdb on registers (its memory form is the slow one)
        _mm_mask_storeu_epi8(q + i, live, b);
    }
}

LATHE_TARGET_AVX2 void quantizeRowsAvx2(const float* x, std::int64_t rows, std::int64_t k, bool dynamic, float* s,
                                        std::int8_t* q) {
    quantizeRowsImpl<8>(x, rows, k, dynamic, s, q);
}
LATHE_TARGET_VNNI void quantizeRowsAvx512(const float* x, std::int64_t rows, std::int64_t k, bool dynamic, float* s,
                                          std::int8_t* q) {
    for (std::int64_t r = 0; r < rows; ++r, x += k, q += k) {
        const float scale = dynamic ? maxAbsAvx512(x, k) / 127.0f : s[0];
        if (dynamic) s[r] = scale;
        if (scale == 0.0f)
            std::memset(q, 0, static_cast<std::size_t>(k));
        else
            quantizeRowAvx512(x, k, scale, q);
    }
}
#endif

// ---------------------------------------------------------------- gemm_int8

// The epilogue every kernel computes, lane for lane: fma(float(acc) * xs, ws, bias), then the activation.
// The fused multiply-add is written out (never left to contraction), so each path rounds the same way.
inline float dequantOne(std::int32_t acc, float xs, float ws, float b) {
    return std::fma(static_cast<float>(acc) * xs, ws, b);
}
inline float activateOne(float v, Activation act) {
    if (act == Activation::Relu) return v > 0.0f ? v : 0.0f;
    if (act == Activation::Gelu) return geluExact(v);
    return v;
}

// GELU on a tile the vector epilogues left in y (still in L1): erf has no vector form here.
inline void geluTile(const Int8Gemm& g, std::int64_t m0, std::int64_t rows, std::int64_t n0, std::int64_t n1) {
    for (std::int64_t r = m0; r < m0 + rows; ++r)
        for (std::int64_t n = n0; n < n1; ++n) g.y[r * g.w.n + n] = geluExact(g.y[r * g.w.n + n]);
}

// Portable kernel over rows [m0, m1) and panels [p0, p1), reading xq directly: each group of 4 activations
// against the 16 columns' groups of a panel, 64 contiguous bytes (the compiler vectorises the 16 columns).
void tileScalar(const Int8Gemm& g, std::int64_t m0, std::int64_t m1, std::int64_t p0, std::int64_t p1) {
    const std::int64_t k = g.w.k, full = k / kGroup, panelBytes = g.w.kp * kPanel;
    for (std::int64_t r = m0; r < m1; ++r) {
        const std::int8_t* x = g.xq + r * k; // (K)
        for (std::int64_t p = p0; p < p1; ++p) {
            const std::int8_t* w = g.w.codes + p * panelBytes; // (kp / 4, 16, 4)
            std::int32_t acc[kPanel] = {};
            for (std::int64_t j = 0; j < full; ++j) {
                const std::int8_t* xg = x + kGroup * j;          // (4)
                const std::int8_t* wg = w + j * kPanel * kGroup; // (16, 4)
                for (std::int64_t c = 0; c < kPanel; ++c)
                    acc[c] += xg[0] * wg[4 * c] + xg[1] * wg[4 * c + 1] + xg[2] * wg[4 * c + 2] + xg[3] * wg[4 * c + 3];
            }
            for (std::int64_t i = 0; i < k % kGroup; ++i) // the last, partial group
                for (std::int64_t c = 0; c < kPanel; ++c)
                    acc[c] += x[kGroup * full + i] * w[full * kPanel * kGroup + 4 * c + i];
            const std::int64_t n0 = p * kPanel, cols = std::min(kPanel, g.w.n - n0);
            for (std::int64_t c = 0; c < cols; ++c)
                g.y[r * g.w.n + n0 + c] = activateOne(dequantOne(acc[c], g.xs(r), g.ws(n0 + c), g.b(n0 + c)), g.act);
        }
    }
}

#ifdef LATHE_INT8_X86
// ---- AVX2: vpmaddwd on int16. x is sign-extended once per call (i16 (M, kp)); each group of 4 codes of 4
// columns is sign-extended on load. Every pair product fits int16 x int16 -> int32, so this is exact
// (vpmaddubsw would saturate the pair sums of u8 x s8 codes at int16).

// x (M, K) -> x16 (M, kp): sign-extended, zeros past K. (Left to the compiler, this pass and the one below
// stayed scalar and took 3-4x the time of the 128 -> 10 layer's whole product at batch 256.)
LATHE_TARGET_AVX2 void prepareXAvx2(const std::int8_t* x, std::int64_t m, std::int64_t k, std::int64_t kp,
                                    std::int16_t* x16) {
    for (std::int64_t r = 0; r < m; ++r) {
        const std::int8_t* src = x + r * k; // (K)
        std::int16_t* dst = x16 + r * kp;   // (kp)
        std::int64_t c = 0;
        for (; c + 16 <= k; c += 16)
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + c),
                                _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + c))));
        for (; c < k; ++c) dst[c] = src[c];
        for (; c < kp; ++c) dst[c] = 0;
    }
}

// Eight sums (columns n0 .. n0 + 7, fewer at the edge) of row r through the epilogue into y.
LATHE_TARGET_AVX2 inline void storeAvx2(const Int8Gemm& g, __m256i acc, std::int64_t r, std::int64_t n0) {
    const std::int64_t cols = std::min<std::int64_t>(8, g.w.n - n0);
    if (cols <= 0) return;
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cols)),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256 ws = g.wPerColumn ? _mm256_maskload_ps(g.wScale + n0, mask) : _mm256_set1_ps(g.wScale[0]);
    const __m256 b = g.bias ? _mm256_maskload_ps(g.bias + n0, mask) : _mm256_setzero_ps();
    __m256 v = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(g.xs(r))), ws, b);
    if (g.act == Activation::Relu) v = _mm256_max_ps(v, _mm256_setzero_ps()); // NaN -> 0, as activateOne
    _mm256_maskstore_ps(g.y + r * g.w.n + n0, mask, v);
}

// MR rows (from m0) x one panel p. acc[i][q] holds, for columns 4q .. 4q + 3, two partial sums each.
template <int MR>
LATHE_TARGET_AVX2 void microAvx2(const Int8Gemm& g, std::int64_t m0, std::int64_t p) {
    const std::int64_t kp = g.w.kp, steps = kp / kGroup;
    const auto* x = static_cast<const std::int16_t*>(g.xPrepared) + m0 * kp; // (MR, kp)
    const std::int8_t* w = g.w.codes + p * kp * kPanel;                      // (kp / 4, 16, 4)
    __m256i acc[MR][4];
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) acc[i][q] = _mm256_setzero_si256();
    for (std::int64_t s = 0; s < steps; ++s) {
        __m256i xb[MR]; // (x[4s], x[4s + 1], x[4s + 2], x[4s + 3]) four times
#pragma GCC unroll 4
        for (int i = 0; i < MR; ++i) {
            long long group;
            std::memcpy(&group, x + i * kp + kGroup * s, sizeof group);
            xb[i] = _mm256_set1_epi64x(group);
        }
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) {
            const __m256i wq = _mm256_cvtepi8_epi16(
                _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + s * kPanel * kGroup + q * 16)));
#pragma GCC unroll 4
            for (int i = 0; i < MR; ++i) acc[i][q] = _mm256_add_epi32(acc[i][q], _mm256_madd_epi16(xb[i], wq));
        }
    }
    const std::int64_t n0 = p * kPanel;
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
        // hadd gives columns (0, 1, 4, 5 | 2, 3, 6, 7); the permute puts them in order.
        const __m256i lo = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc[i][0], acc[i][1]), 0xd8);
        const __m256i hi = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc[i][2], acc[i][3]), 0xd8);
        storeAvx2(g, lo, m0 + i, n0);
        storeAvx2(g, hi, m0 + i, n0 + 8);
    }
    if (g.act == Activation::Gelu) geluTile(g, m0, MR, n0, std::min(g.w.n, n0 + kPanel));
}

LATHE_TARGET_AVX2 void tileAvx2(const Int8Gemm& g, std::int64_t m0, std::int64_t m1, std::int64_t p0,
                                std::int64_t p1) {
    // Two rows: 8 accumulators, 2 broadcasts and a code register stay within the 16 ymm.
    for (std::int64_t p = p0; p < p1; ++p) {
        std::int64_t r = m0;
        for (; r + 2 <= m1; r += 2) microAvx2<2>(g, r, p);
        if (r < m1) microAvx2<1>(g, r, p);
    }
}

// ---- AVX512-VNNI: vpdpbusd multiplies u8 x s8 groups of 4 and adds them to int32 lanes without
// saturating. x is stored as x + 128 (u8); sum (x + 128) w - 128 sum w = sum x w exactly, the
// intermediate wrapping, if it did, cancelling modulo 2^32.

// x (M, K) -> xu (M, kp): x + 128 as u8 (the bit pattern with its top bit flipped), zeros past K.
LATHE_TARGET_VNNI void prepareXVnni(const std::int8_t* x, std::int64_t m, std::int64_t k, std::int64_t kp,
                                    std::uint8_t* xu) {
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    for (std::int64_t r = 0; r < m; ++r) {
        const std::int8_t* src = x + r * k; // (K)
        std::uint8_t* dst = xu + r * kp;    // (kp)
        std::int64_t c = 0;
        for (; c + 64 <= k; c += 64) _mm512_storeu_si512(dst + c, _mm512_xor_si512(_mm512_loadu_si512(src + c), flip));
        for (; c < k; ++c) dst[c] = static_cast<std::uint8_t>(src[c]) ^ 0x80u;
        for (; c < kp; ++c) dst[c] = 0;
    }
}

// acc (16 x i32) += sum of 4 u8 x s8 products per lane. Through asm: GCC 12 copies every accumulator of
// _mm512_dpbusd_epi32 to a fresh register and back on each loop iteration (out-of-SSA fails on the tied
// operand), which cost more than the dot products themselves.
LATHE_TARGET_VNNI inline __attribute__((always_inline)) void dpbusd(__m512i& acc, __m512i u8, __m512i s8) {
    asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u8), "vm"(s8));
}

// MR rows (from m0) x NP panels (from p0): MR * NP zmm of sums (24 of the 32 at 6 x 4).
template <int MR, int NP>
LATHE_TARGET_VNNI void microVnni(const Int8Gemm& g, std::int64_t m0, std::int64_t p0) {
    const std::int64_t kp = g.w.kp, steps = kp / kGroup, panelBytes = kp * kPanel;
    const auto* x = static_cast<const std::uint8_t*>(g.xPrepared) + m0 * kp; // (MR, kp)
    const std::int8_t* w = g.w.codes + p0 * panelBytes;                      // (NP, kp / 4, 16, 4)
    __m512i acc[MR][NP];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
        for (int j = 0; j < NP; ++j) acc[i][j] = _mm512_setzero_si512();
    for (std::int64_t s = 0; s < steps; ++s) {
        __m512i wv[NP];
#pragma GCC unroll 8
        for (int j = 0; j < NP; ++j) wv[j] = _mm512_loadu_si512(w + j * panelBytes + s * kPanel * kGroup);
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) {
            std::int32_t group;
            std::memcpy(&group, x + i * kp + kGroup * s, sizeof group);
            const __m512i xb = _mm512_set1_epi32(group);
#pragma GCC unroll 8
            for (int j = 0; j < NP; ++j) dpbusd(acc[i][j], xb, wv[j]);
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < NP; ++j) {
        const std::int64_t n0 = (p0 + j) * kPanel, cols = std::min(kPanel, g.w.n - n0);
        const __mmask16 mask = static_cast<__mmask16>(cols >= 16 ? 0xffff : (1u << cols) - 1);
        const __m512i comp = _mm512_loadu_si512(g.w.comp + n0);
        const __m512 ws = g.wPerColumn ? _mm512_maskz_loadu_ps(mask, g.wScale + n0) : _mm512_set1_ps(g.wScale[0]);
        const __m512 b = g.bias ? _mm512_maskz_loadu_ps(mask, g.bias + n0) : _mm512_setzero_ps();
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) {
            // The maskz forms with a full mask are the same instructions; the plain ones trip GCC 12's
            // -Wuninitialized on _mm512_undefined_ps inside its own header.
            const __m512 sums = _mm512_maskz_cvtepi32_ps(0xffff, _mm512_sub_epi32(acc[i][j], comp));
            __m512 v = _mm512_fmadd_ps(_mm512_mul_ps(sums, _mm512_set1_ps(g.xs(m0 + i))), ws, b);
            if (g.act == Activation::Relu) // NaN -> 0, as activateOne
                v = _mm512_maskz_max_ps(0xffff, v, _mm512_setzero_ps());
            _mm512_mask_storeu_ps(g.y + (m0 + i) * g.w.n + n0, mask, v);
        }
    }
    if (g.act == Activation::Gelu) geluTile(g, m0, MR, p0 * kPanel, std::min(g.w.n, (p0 + NP) * kPanel));
}

template <int MR>
LATHE_TARGET_VNNI void microVnniPanels(const Int8Gemm& g, std::int64_t m0, std::int64_t p0, std::int64_t np) {
    switch (np) {
    case 4: return microVnni<MR, 4>(g, m0, p0);
    case 3: return microVnni<MR, 3>(g, m0, p0);
    case 2: return microVnni<MR, 2>(g, m0, p0);
    default: return microVnni<MR, 1>(g, m0, p0);
    }
}

// Panels in groups of 4 (64 columns, whose codes stay in L1/L2 while every row block passes), rows in
// tiles of 6.
LATHE_TARGET_VNNI void tileVnni(const Int8Gemm& g, std::int64_t m0, std::int64_t m1, std::int64_t p0,
                                std::int64_t p1) {
    for (std::int64_t p = p0; p < p1; p += 4) {
        const std::int64_t np = std::min<std::int64_t>(4, p1 - p);
        std::int64_t r = m0;
        for (; r + 6 <= m1; r += 6) microVnniPanels<6>(g, r, p, np);
        switch (m1 - r) {
        case 5: microVnniPanels<5>(g, r, p, np); break;
        case 4: microVnniPanels<4>(g, r, p, np); break;
        case 3: microVnniPanels<3>(g, r, p, np); break;
        case 2: microVnniPanels<2>(g, r, p, np); break;
        case 1: microVnniPanels<1>(g, r, p, np); break;
        default: break;
        }
    }
}
#endif

} // namespace

void quantizeRowsOn(CpuInt8Path path, const float* x, std::int64_t rows, std::int64_t k, bool dynamic, float* s,
                    std::int8_t* q) {
#ifdef LATHE_INT8_X86
    if (path == CpuInt8Path::Avx512Vnni) return quantizeRowsAvx512(x, rows, k, dynamic, s, q);
    if (path == CpuInt8Path::Avx2) return quantizeRowsAvx2(x, rows, k, dynamic, s, q);
#endif
    (void)path;
    quantizeRowsImpl<1>(x, rows, k, dynamic, s, q);
}

TileFn tileFor(CpuInt8Path path) {
#ifdef LATHE_INT8_X86
    if (path == CpuInt8Path::Avx512Vnni) return tileVnni;
    if (path == CpuInt8Path::Avx2) return tileAvx2;
#endif
    (void)path;
    return tileScalar;
}

std::int64_t preparedBytes(CpuInt8Path path, std::int64_t m, std::int64_t kp) {
    if (path == CpuInt8Path::Avx512Vnni) return m * kp;
    if (path == CpuInt8Path::Avx2) return m * kp * 2;
    return 0;
}

void prepareX(CpuInt8Path path, const std::int8_t* xq, std::int64_t m, std::int64_t k, std::int64_t kp, void* out) {
#ifdef LATHE_INT8_X86
    if (path == CpuInt8Path::Avx512Vnni) return prepareXVnni(xq, m, k, kp, static_cast<std::uint8_t*>(out));
    if (path == CpuInt8Path::Avx2) return prepareXAvx2(xq, m, k, kp, static_cast<std::int16_t*>(out));
#endif
    (void)path, (void)xq, (void)m, (void)k, (void)kp, (void)out;
}

} // namespace lathe::cpu::int8

namespace lathe {

// What the kernels above need of the CPU (and of the OS, which must save the AVX-512 registers: GCC's
// __builtin_cpu_supports checks both).
bool cpuInt8PathAvailable(CpuInt8Path path) {
#ifdef LATHE_INT8_X86
    static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    static const bool vnni = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
    if (path == CpuInt8Path::Avx2) return avx2;
    if (path == CpuInt8Path::Avx512Vnni) return vnni;
#endif
    return path == CpuInt8Path::Scalar;
}

} // namespace lathe

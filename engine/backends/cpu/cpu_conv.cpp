// CPU convolution (im2col + OpenBLAS SGEMM per group, col2im for the data gradient; direct loops for
// depthwise) and max pooling with argmax. The batch is cut into chunks of images; the thread pool runs one
// chunk per task (im2col, single-threaded SGEMMs, and the layout shuffle), so both cores stay busy.
#include "engine/backends/cpu/cpu_backend_impl.h"

#include "engine/core/errors.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

namespace lathe::cpu {
namespace {

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// One output row of the 2x2 / stride 2 max pool on AVX-512: 16 outputs at a time from 32 values of each input
// row, split into their even and odd columns by two permutes, then the same comparisons as the scalar loop
// (the first maximum of each row's pair, the second row's only where strictly greater). False where the row pair
// holds a NaN: the caller then takes the window-by-window NaN rule. (Left to the compiler, the scalar loop
// stayed scalar: the engine is built for baseline x86-64.)
__attribute__((target("avx512f"))) bool maxPoolRowAvx512(const float* r0, const float* r1, std::int64_t ow,
                                                         std::int32_t base, std::int32_t w, float* out,
                                                         std::int32_t* arg) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512i one = _mm512_set1_epi32(1), below = _mm512_set1_epi32(w);
    for (std::int64_t ox = 0; ox < ow; ox += 16) {
        const std::int64_t left = std::min<std::int64_t>(16, ow - ox);
        const __mmask16 live = static_cast<__mmask16>(left == 16 ? 0xffff : (1u << left) - 1);
        const std::int64_t inputs = 2 * left; // values of each row this step reads
        const __mmask16 lo = static_cast<__mmask16>(inputs >= 16 ? 0xffff : (1u << inputs) - 1);
        const __mmask16 hi =
            static_cast<__mmask16>(inputs >= 32 ? 0xffff : inputs <= 16 ? 0 : (1u << (inputs - 16)) - 1);
        const __m512 p0 = _mm512_maskz_loadu_ps(lo, r0 + 2 * ox), q0 = _mm512_maskz_loadu_ps(hi, r0 + 2 * ox + 16);
        const __m512 p1 = _mm512_maskz_loadu_ps(lo, r1 + 2 * ox), q1 = _mm512_maskz_loadu_ps(hi, r1 + 2 * ox + 16);
        const __m512 a = _mm512_permutex2var_ps(p0, even, q0), b = _mm512_permutex2var_ps(p0, odd, q0);
        const __m512 c = _mm512_permutex2var_ps(p1, even, q1), d = _mm512_permutex2var_ps(p1, odd, q1);
        const __mmask16 nan = _mm512_mask_cmp_ps_mask(live, a, b, _CMP_UNORD_Q) |
                              _mm512_mask_cmp_ps_mask(live, c, d, _CMP_UNORD_Q);
        if (nan) return false;
        const __m512i ia = _mm512_add_epi32(_mm512_set1_epi32(base + 2 * static_cast<std::int32_t>(ox)),
                                            even);
        const __mmask16 k1 = _mm512_cmp_ps_mask(b, a, _CMP_GT_OQ), k2 = _mm512_cmp_ps_mask(d, c, _CMP_GT_OQ);
        const __m512 m1 = _mm512_mask_blend_ps(k1, a, b), m2 = _mm512_mask_blend_ps(k2, c, d);
        const __m512i i1 = _mm512_mask_add_epi32(ia, k1, ia, one);
        const __m512i iw = _mm512_add_epi32(ia, below);
        const __m512i i2 = _mm512_mask_add_epi32(iw, k2, iw, one);
        const __mmask16 k3 = _mm512_cmp_ps_mask(m2, m1, _CMP_GT_OQ);
        _mm512_mask_storeu_ps(out + ox, live, _mm512_mask_blend_ps(k3, m1, m2));
        _mm512_mask_storeu_epi32(arg + ox, live, _mm512_mask_blend_epi32(k3, i1, i2));
    }
    return true;
}

bool avx512Pool() {
    static const bool available = __builtin_cpu_supports("avx512f");
    return available;
}
#else
bool maxPoolRowAvx512(const float*, const float*, std::int64_t, std::int32_t, std::int32_t, float*, std::int32_t*) {
    return false;
}
bool avx512Pool() { return false; }
#endif

// Target size of one task's column buffer: a few MiB stays in the shared L3 cache.
constexpr std::int64_t kChunkColumnBytes = std::int64_t{4} << 20;

void checkConv(const Conv2dGeometry& g, const char* op) { checkConvGeometry(g, std::string("cpu ") + op); }

// w (or dw) must be (K, C/groups, KH, KW); a grouped mismatch says which groups it was checked against.
void checkWeight(const Tensor& w, const Conv2dGeometry& g, const char* op, const char* what) {
    const Shape expected{g.outChannels, g.inPerGroup(), g.kernelH, g.kernelW};
    checkCpu(w, op, what);
    if (w.shape() == expected) return;
    std::string message = std::string("cpu ") + op + ": " + what + " is " + w.describe() + ", expected shape " +
                          shapeToString(expected);
    if (g.groups != 1)
        message += " (K, C/groups, KH, KW) for C=" + std::to_string(g.inChannels) +
                   ", K=" + std::to_string(g.outChannels) + ", groups=" + std::to_string(g.groups);
    throw BackendError(message);
}

// The geometry of one group seen as a dense convolution: C/G input and K/G output channels.
Conv2dGeometry groupSlice(const Conv2dGeometry& g) {
    Conv2dGeometry s = g;
    s.inChannels = g.inPerGroup();
    s.outChannels = g.outPerGroup();
    s.groups = 1;
    return s;
}

// [lo, hi) within [0, outSize): the output positions o whose input position o * stride - pad + k lies in
// [0, size).
std::pair<std::int64_t, std::int64_t> validOutputs(std::int64_t k, std::int64_t pad, std::int64_t stride,
                                                   std::int64_t size, std::int64_t outSize) {
    const std::int64_t first = pad - k; // o * stride >= pad - k
    const std::int64_t lo = std::min(outSize, first > 0 ? (first + stride - 1) / stride : 0);
    const std::int64_t last = size - 1 + pad - k; // o * stride <= size - 1 + pad - k
    const std::int64_t hi = last < 0 ? 0 : std::min(outSize, last / stride + 1);
    return {lo, std::max(lo, hi)};
}

// Writes the (C*KH*KW, OH*OW) columns of one image x (C, H, W) into col, whose rows have stride ld.
void im2col(const float* x, const Conv2dGeometry& g, float* col, std::int64_t ld) {
    const std::int64_t oh = g.outH(), ow = g.outW();
    for (std::int64_t c = 0; c < g.inChannels; ++c)
        for (std::int64_t ky = 0; ky < g.kernelH; ++ky)
            for (std::int64_t kx = 0; kx < g.kernelW; ++kx) {
                float* row = col + ((c * g.kernelH + ky) * g.kernelW + kx) * ld;
                const float* plane = x + c * g.height * g.width;
                for (std::int64_t oy = 0; oy < oh; ++oy) {
                    const std::int64_t iy = oy * g.strideH - g.padH + ky;
                    float* out = row + oy * ow;
                    if (iy < 0 || iy >= g.height) {
                        std::fill(out, out + ow, 0.0f);
                        continue;
                    }
                    // Zeros, the columns inside the row (at stride 1 one contiguous copy), zeros.
                    const float* in = plane + iy * g.width + kx - g.padW; // in[ox * SW] is column ox's input
                    const auto [lo, hi] = validOutputs(kx, g.padW, g.strideW, g.width, ow);
                    std::fill(out, out + lo, 0.0f);
                    if (g.strideW == 1) std::copy(in + lo, in + hi, out + lo);
                    else
                        for (std::int64_t ox = lo; ox < hi; ++ox) out[ox] = in[ox * g.strideW];
                    std::fill(out + hi, out + ow, 0.0f);
                }
            }
}

// Adds the columns of one image back into dx (C, H, W) (which the caller zeroed).
void col2im(const float* col, std::int64_t ld, const Conv2dGeometry& g, float* dx) {
    const std::int64_t oh = g.outH(), ow = g.outW();
    for (std::int64_t c = 0; c < g.inChannels; ++c)
        for (std::int64_t ky = 0; ky < g.kernelH; ++ky)
            for (std::int64_t kx = 0; kx < g.kernelW; ++kx) {
                const float* row = col + ((c * g.kernelH + ky) * g.kernelW + kx) * ld;
                float* plane = dx + c * g.height * g.width;
                for (std::int64_t oy = 0; oy < oh; ++oy) {
                    const std::int64_t iy = oy * g.strideH - g.padH + ky;
                    if (iy < 0 || iy >= g.height) continue;
                    const float* in = row + oy * ow;
                    float* out = plane + iy * g.width + kx - g.padW; // out[ox * SW] is column ox's input
                    const auto [lo, hi] = validOutputs(kx, g.padW, g.strideW, g.width, ow);
                    if (g.strideW == 1)
                        for (std::int64_t ox = lo; ox < hi; ++ox) out[ox] += in[ox];
                    else
                        for (std::int64_t ox = lo; ox < hi; ++ox) out[ox * g.strideW] += in[ox];
                }
            }
}

// Images per task: the column buffer of one task (one group's columns) stays near kChunkColumnBytes
// (at least one image). It depends on the geometry only, so the results do not depend on the thread count.
std::int64_t imagesPerChunk(const Conv2dGeometry& g) {
    const std::int64_t perImage = g.inPerGroup() * g.kernelH * g.kernelW * g.outH() * g.outW() * 4;
    return std::clamp<std::int64_t>(kChunkColumnBytes / std::max<std::int64_t>(1, perImage), 1,
                                    std::max<std::int64_t>(1, g.batch));
}

// ---- depthwise (one input channel per group): direct loops over shifted rows. A GEMM per channel
// would be a (K/G, KH*KW) x (KH*KW, OH*OW) product that spends more time writing its columns than
// multiplying; see docs/benchmarks/cpu.md for the measurement.

// Calls f(oy, iy, tap, lo, hi, shift) for every output row oy and kernel tap (ky, kx), tap = ky*KW + kx,
// whose input row iy = oy*SH - PH + ky lies inside the plane: output columns [lo, hi) read the input
// columns ox*SW + shift. Taps come in (ky, kx) order for each output row, which fixes the summation order.
template <class F>
void forEachTap(const Conv2dGeometry& g, F&& f) {
    const std::int64_t oh = g.outH(), ow = g.outW();
    for (std::int64_t oy = 0; oy < oh; ++oy)
        for (std::int64_t ky = 0; ky < g.kernelH; ++ky) {
            const std::int64_t iy = oy * g.strideH - g.padH + ky;
            if (iy < 0 || iy >= g.height) continue;
            for (std::int64_t kx = 0; kx < g.kernelW; ++kx) {
                const auto [lo, hi] = validOutputs(kx, g.padW, g.strideW, g.width, ow);
                f(oy, iy, ky * g.kernelW + kx, lo, hi, kx - g.padW);
            }
        }
}

// out (OH, OW) = the input plane in (H, W) correlated with the kernel wk (KH, KW).
void depthwisePlaneForward(const float* in, const float* wk, float* out, const Conv2dGeometry& g) {
    const std::int64_t ow = g.outW(), sw = g.strideW;
    std::fill(out, out + g.outH() * ow, 0.0f);
    forEachTap(g, [&](std::int64_t oy, std::int64_t iy, std::int64_t tap, std::int64_t lo, std::int64_t hi,
                      std::int64_t shift) {
        float* orow = out + oy * ow;
        const float* irow = in + iy * g.width;
        const float wv = wk[tap];
        if (sw == 1) // the common case, kept apart so it vectorises
            for (std::int64_t ox = lo; ox < hi; ++ox) orow[ox] += wv * irow[ox + shift];
        else
            for (std::int64_t ox = lo; ox < hi; ++ox) orow[ox] += wv * irow[ox * sw + shift];
    });
}

// dx (H, W) += the output gradient dy (OH, OW) of one output channel spread back through its kernel wk.
void depthwisePlaneBackwardData(const float* dy, const float* wk, float* dx, const Conv2dGeometry& g) {
    const std::int64_t ow = g.outW(), sw = g.strideW;
    forEachTap(g, [&](std::int64_t oy, std::int64_t iy, std::int64_t tap, std::int64_t lo, std::int64_t hi,
                      std::int64_t shift) {
        const float* drow = dy + oy * ow;
        float* xrow = dx + iy * g.width;
        const float wv = wk[tap];
        if (sw == 1)
            for (std::int64_t ox = lo; ox < hi; ++ox) xrow[ox + shift] += wv * drow[ox];
        else
            for (std::int64_t ox = lo; ox < hi; ++ox) xrow[ox * sw + shift] += wv * drow[ox];
    });
}

// acc (KH*KW) += the weight gradient of one (input plane, output-gradient plane) pair.
void depthwisePlaneBackwardWeight(const float* in, const float* dy, double* acc, const Conv2dGeometry& g) {
    const std::int64_t ow = g.outW(), sw = g.strideW;
    forEachTap(g, [&](std::int64_t oy, std::int64_t iy, std::int64_t tap, std::int64_t lo, std::int64_t hi,
                      std::int64_t shift) {
        const float* drow = dy + oy * ow;
        const float* irow = in + iy * g.width;
        float s = 0.0f;
        if (sw == 1)
            for (std::int64_t ox = lo; ox < hi; ++ox) s += irow[ox + shift] * drow[ox];
        else
            for (std::int64_t ox = lo; ox < hi; ++ox) s += irow[ox * sw + shift] * drow[ox];
        acc[tap] += s;
    });
}

} // namespace

// Grouped convolutions run the dense path once per group on the group's channel slices (for groups = 1
// it is exactly the dense path); depthwise ones take the direct loops above.
void CpuBackend::conv2dForward(const Tensor& x, const Tensor& w, Tensor& y, const Conv2dGeometry& g) {
    checkConv(g, "conv2d_forward");
    require(Op::Conv2dForward, x.dtype());
    checkShape(x, {g.batch, g.inChannels, g.height, g.width}, "conv2d_forward", "x");
    checkWeight(w, g, "conv2d_forward", "w");
    checkShape(y, {g.batch, g.outChannels, g.outH(), g.outW()}, "conv2d_forward", "y");
    checkDType(w, DType::F32, "conv2d_forward", "w");
    checkDType(y, DType::F32, "conv2d_forward", "y");
    const std::int64_t p = g.outH() * g.outW(), ckk = g.inPerGroup() * g.kernelH * g.kernelW;
    const std::int64_t inSize = g.inChannels * g.height * g.width, outSize = g.outChannels * p;
    const float *px = x.ptr<const float>(), *pw = w.ptr<const float>();
    float* py = y.ptr<float>();
    if (g.depthwise()) {
        // One (image, output channel) plane per iteration; output channel k reads input channel k / (K/C).
        const std::int64_t planes = g.batch * g.outChannels, kg = g.outPerGroup(), kk = g.kernelH * g.kernelW;
        forEach(planes, [&](std::int64_t b, std::int64_t e) {
            for (std::int64_t pl = b; pl < e; ++pl) {
                const std::int64_t n = pl / g.outChannels, k = pl % g.outChannels;
                depthwisePlaneForward(px + (n * g.inChannels + k / kg) * g.height * g.width, pw + k * kk,
                                      py + pl * p, g);
            }
        }, std::max<std::int64_t>(1, kInlineElements / 2 / std::max<std::int64_t>(1, p * kk)));
        return;
    }
    const Conv2dGeometry sg = groupSlice(g);
    const std::int64_t kg = sg.outChannels, groupIn = sg.inChannels * g.height * g.width;
    const std::int64_t per = imagesPerChunk(g), chunks = (g.batch + per - 1) / per;
    m_threads.forChunks(chunks, [&](std::int64_t c) {
        const std::int64_t n0 = c * per, cn = std::min(per, g.batch - n0), ld = cn * p;
        // col (CKK, cn*P): one group's columns of cn images side by side;
        // out rows of the group (K/G, cn*P) = w rows of the group (K/G, CKK) @ col.
        Tensor col = empty({ckk, ld});
        float* pc = col.ptr<float>();
        Tensor out;
        if (cn > 1) out = empty({g.outChannels, ld});
        for (std::int64_t gi = 0; gi < g.groups; ++gi) {
            for (std::int64_t i = 0; i < cn; ++i) im2col(px + (n0 + i) * inSize + gi * groupIn, sg, pc + i * p, ld);
            const float* wg = pw + gi * kg * ckk;
            if (cn == 1) // one image: (K, P) is already y's layout
                sgemmRowMajor(false, false, kg, p, ckk, 1.0f, wg, ckk, pc, p, 0.0f, py + n0 * outSize + gi * kg * p, p);
            else
                sgemmRowMajor(false, false, kg, ld, ckk, 1.0f, wg, ckk, pc, ld, 0.0f, out.ptr<float>() + gi * kg * ld,
                              ld);
        }
        if (cn == 1) return;
        const float* po = out.ptr<const float>();
        for (std::int64_t i = 0; i < cn; ++i) // (K, cn, P) -> (cn, K, P)
            for (std::int64_t k = 0; k < g.outChannels; ++k)
                std::memcpy(py + (n0 + i) * outSize + k * p, po + k * ld + i * p, static_cast<std::size_t>(p) * 4);
    });
}

void CpuBackend::conv2dBackwardData(const Tensor& dy, const Tensor& w, Tensor& dx, const Conv2dGeometry& g) {
    checkConv(g, "conv2d_backward_data");
    require(Op::Conv2dBackwardData, dy.dtype());
    checkShape(dy, {g.batch, g.outChannels, g.outH(), g.outW()}, "conv2d_backward_data", "dy");
    checkWeight(w, g, "conv2d_backward_data", "w");
    checkShape(dx, {g.batch, g.inChannels, g.height, g.width}, "conv2d_backward_data", "dx");
    checkDType(w, DType::F32, "conv2d_backward_data", "w");
    checkDType(dx, DType::F32, "conv2d_backward_data", "dx");
    const std::int64_t p = g.outH() * g.outW(), ckk = g.inPerGroup() * g.kernelH * g.kernelW;
    const std::int64_t inSize = g.inChannels * g.height * g.width, outSize = g.outChannels * p;
    const float *pdy = dy.ptr<const float>(), *pw = w.ptr<const float>();
    float* pdx = dx.ptr<float>();
    if (g.depthwise()) {
        // One (image, input channel) plane per iteration, gathering its K/C output channels in order.
        const std::int64_t planes = g.batch * g.inChannels, kg = g.outPerGroup(), kk = g.kernelH * g.kernelW;
        const std::int64_t plane = g.height * g.width;
        forEach(planes, [&](std::int64_t b, std::int64_t e) {
            for (std::int64_t pl = b; pl < e; ++pl) {
                const std::int64_t n = pl / g.inChannels, ch = pl % g.inChannels;
                float* out = pdx + pl * plane;
                std::fill(out, out + plane, 0.0f);
                for (std::int64_t k = ch * kg; k < (ch + 1) * kg; ++k)
                    depthwisePlaneBackwardData(pdy + (n * g.outChannels + k) * p, pw + k * kk, out, g);
            }
        }, std::max<std::int64_t>(1, kInlineElements / 2 / std::max<std::int64_t>(1, p * kk * kg)));
        return;
    }
    const Conv2dGeometry sg = groupSlice(g);
    const std::int64_t kg = sg.outChannels, groupIn = sg.inChannels * g.height * g.width;
    const std::int64_t per = imagesPerChunk(g), chunks = (g.batch + per - 1) / per;
    m_threads.forChunks(chunks, [&](std::int64_t c) {
        const std::int64_t n0 = c * per, cn = std::min(per, g.batch - n0), ld = cn * p;
        Tensor col = empty({ckk, ld});
        float* pc = col.ptr<float>();
        const float* src = pdy + n0 * outSize; // one image: dy (K, P) is used in place
        Tensor gathered;
        if (cn > 1) {
            gathered = empty({g.outChannels, ld});
            float* pg = gathered.ptr<float>();
            for (std::int64_t i = 0; i < cn; ++i) // (cn, K, P) -> (K, cn, P)
                for (std::int64_t k = 0; k < g.outChannels; ++k)
                    std::memcpy(pg + k * ld + i * p, pdy + (n0 + i) * outSize + k * p, static_cast<std::size_t>(p) * 4);
            src = pg;
        }
        for (std::int64_t i = 0; i < cn; ++i) {
            float* img = pdx + (n0 + i) * inSize;
            std::fill(img, img + inSize, 0.0f);
        }
        for (std::int64_t gi = 0; gi < g.groups; ++gi) {
            // dcol (CKK, cn*P) = w^T of the group (CKK, K/G) @ dy rows of the group (K/G, cn*P)
            sgemmRowMajor(true, false, ckk, ld, kg, 1.0f, pw + gi * kg * ckk, ckk, src + gi * kg * ld, ld, 0.0f, pc,
                          ld);
            for (std::int64_t i = 0; i < cn; ++i) col2im(pc + i * p, ld, sg, pdx + (n0 + i) * inSize + gi * groupIn);
        }
    });
}

void CpuBackend::conv2dBackwardWeight(const Tensor& x, const Tensor& dy, Tensor& dw, const Conv2dGeometry& g,
                                      bool accumulate) {
    checkConv(g, "conv2d_backward_weight");
    require(Op::Conv2dBackwardWeight, x.dtype());
    checkShape(x, {g.batch, g.inChannels, g.height, g.width}, "conv2d_backward_weight", "x");
    checkShape(dy, {g.batch, g.outChannels, g.outH(), g.outW()}, "conv2d_backward_weight", "dy");
    checkWeight(dw, g, "conv2d_backward_weight", "dw");
    checkDType(dy, DType::F32, "conv2d_backward_weight", "dy");
    checkDType(dw, DType::F32, "conv2d_backward_weight", "dw");
    const std::int64_t p = g.outH() * g.outW(), ckk = g.inPerGroup() * g.kernelH * g.kernelW;
    const std::int64_t inSize = g.inChannels * g.height * g.width, outSize = g.outChannels * p;
    const std::int64_t wSize = g.outChannels * ckk;
    const float *px = x.ptr<const float>(), *pdy = dy.ptr<const float>();
    float* pdw = dw.ptr<float>();
    if (g.depthwise()) {
        // One output channel per iteration, summing over the images in order (in double), so the result
        // does not depend on the thread count.
        const std::int64_t kg = g.outPerGroup(), kk = g.kernelH * g.kernelW;
        forEach(g.outChannels, [&](std::int64_t b, std::int64_t e) {
            std::vector<double> acc(static_cast<std::size_t>(kk));
            for (std::int64_t k = b; k < e; ++k) {
                std::fill(acc.begin(), acc.end(), 0.0);
                for (std::int64_t n = 0; n < g.batch; ++n)
                    depthwisePlaneBackwardWeight(px + (n * g.inChannels + k / kg) * g.height * g.width,
                                                 pdy + (n * g.outChannels + k) * p, acc.data(), g);
                for (std::int64_t j = 0; j < kk; ++j)
                    pdw[k * kk + j] = (accumulate ? pdw[k * kk + j] : 0.0f) + static_cast<float>(acc[j]);
            }
        }, std::max<std::int64_t>(1, kInlineElements / 2 / std::max<std::int64_t>(1, g.batch * p * kk)));
        return;
    }
    const Conv2dGeometry sg = groupSlice(g);
    const std::int64_t kg = sg.outChannels, groupIn = sg.inChannels * g.height * g.width;
    const std::int64_t per = imagesPerChunk(g), chunks = (g.batch + per - 1) / per;
    if (!accumulate) fill(dw, 0.0f);
    // Each chunk of images writes its own partial dw; the partials are summed in chunk order.
    Tensor partials = empty({chunks, wSize});
    float* pp = partials.ptr<float>();
    m_threads.forChunks(chunks, [&](std::int64_t c) {
        const std::int64_t n0 = c * per, cn = std::min(per, g.batch - n0), ld = cn * p;
        Tensor col = empty({ckk, ld});
        float* pc = col.ptr<float>();
        const float* src = pdy + n0 * outSize;
        Tensor gathered;
        if (cn > 1) {
            gathered = empty({g.outChannels, ld});
            float* pg = gathered.ptr<float>();
            for (std::int64_t i = 0; i < cn; ++i)
                for (std::int64_t k = 0; k < g.outChannels; ++k)
                    std::memcpy(pg + k * ld + i * p, pdy + (n0 + i) * outSize + k * p, static_cast<std::size_t>(p) * 4);
            src = pg;
        }
        for (std::int64_t gi = 0; gi < g.groups; ++gi) {
            for (std::int64_t i = 0; i < cn; ++i) im2col(px + (n0 + i) * inSize + gi * groupIn, sg, pc + i * p, ld);
            // partial dw rows of the group (K/G, CKK) = dy rows of the group (K/G, cn*P) @ col^T (cn*P, CKK)
            sgemmRowMajor(false, true, kg, ckk, ld, 1.0f, src + gi * kg * ld, ld, pc, ld, 0.0f,
                          pp + c * wSize + gi * kg * ckk, ckk);
        }
    });
    forEach(wSize, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t c = 0; c < chunks; ++c) {
            const float* part = pp + c * wSize;
            for (std::int64_t i = b; i < e; ++i) pdw[i] += part[i];
        }
    });
}

void CpuBackend::maxPool2dForward(const Tensor& x, Tensor& y, Tensor& argmax, const Pool2dGeometry& g) {
    require(Op::MaxPool2dForward, x.dtype());
    checkPoolGeometry(g, "cpu maxpool2d_forward");
    const std::int64_t oh = g.outH(), ow = g.outW();
    checkShape(x, {g.batch, g.channels, g.height, g.width}, "maxpool2d_forward", "x");
    checkShape(y, {g.batch, g.channels, oh, ow}, "maxpool2d_forward", "y");
    checkShape(argmax, {g.batch, g.channels, oh, ow}, "maxpool2d_forward", "argmax");
    checkDType(y, DType::F32, "maxpool2d_forward", "y");
    checkDType(argmax, DType::I32, "maxpool2d_forward", "argmax");
    const float* px = x.ptr<const float>();
    float* py = y.ptr<float>();
    std::int32_t* pa = argmax.ptr<std::int32_t>();
    const std::int64_t planes = g.batch * g.channels, inPlane = g.height * g.width, outPlane = oh * ow;
    // The CNNs' 2x2 window at stride 2 without padding, every window inside the plane: four loads and
    // three compares per output, no bounds or index arithmetic per element (the general loop below took
    // half of a small CNN's forward). A pair of rows holding a NaN is done window by window with the NaN
    // rule of the general loop.
    const bool twoByTwo =
        g.kernelH == 2 && g.kernelW == 2 && g.strideH == 2 && g.strideW == 2 && g.padH == 0 && g.padW == 0;
    const bool vector = twoByTwo && avx512Pool();
    forEach(planes, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t pl = b; pl < e && twoByTwo; ++pl) {
            const float* in = px + pl * inPlane;
            float* out = py + pl * outPlane;
            std::int32_t* arg = pa + pl * outPlane;
            for (std::int64_t oy = 0; oy < oh; ++oy) {
                const float* r0 = in + 2 * oy * g.width;
                const float* r1 = r0 + g.width;
                const auto base = static_cast<std::int32_t>(2 * oy * g.width);
                const auto w = static_cast<std::int32_t>(g.width);
                if (vector && maxPoolRowAvx512(r0, r1, ow, base, w, out + oy * ow, arg + oy * ow)) continue;
                bool nan = false;
                for (std::int64_t i = 0; i < 2 * ow; ++i) nan |= (r0[i] != r0[i]) | (r1[i] != r1[i]);
                if (!nan) {
                    // Branch-free (the compiler vectorizes it): the first maximum of each row's pair, then
                    // the second row's only where strictly greater, which keeps the first maximum overall.
                    float* o = out + oy * ow;
                    std::int32_t* ai = arg + oy * ow;
                    for (std::int64_t ox = 0; ox < ow; ++ox) {
                        const float a = r0[2 * ox], b = r0[2 * ox + 1], c = r1[2 * ox], d = r1[2 * ox + 1];
                        const std::int32_t ia = base + static_cast<std::int32_t>(2 * ox);
                        const float m1 = b > a ? b : a, m2 = d > c ? d : c;
                        const std::int32_t i1 = b > a ? ia + 1 : ia, i2 = d > c ? ia + w + 1 : ia + w;
                        o[ox] = m2 > m1 ? m2 : m1;
                        ai[ox] = m2 > m1 ? i2 : i1;
                    }
                    continue;
                }
                for (std::int64_t ox = 0; ox < ow; ++ox) {
                    const float v[4] = {r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1]};
                    const std::int32_t at[4] = {base + static_cast<std::int32_t>(2 * ox), base + static_cast<std::int32_t>(2 * ox) + 1,
                                                base + w + static_cast<std::int32_t>(2 * ox), base + w + static_cast<std::int32_t>(2 * ox) + 1};
                    int k = 0;
                    if (v[0] == v[0] && v[1] == v[1] && v[2] == v[2] && v[3] == v[3]) {
                        // The first maximum wins, as below.
                        for (int j = 1; j < 4; ++j) k = v[j] > v[k] ? j : k;
                    } else {
                        while (v[k] == v[k]) ++k; // the first NaN, which propagates
                    }
                    out[oy * ow + ox] = v[k];
                    arg[oy * ow + ox] = at[k];
                }
            }
        }
        if (twoByTwo) return;
        for (std::int64_t pl = b; pl < e; ++pl) {
            const float* in = px + pl * inPlane;
            for (std::int64_t oy = 0; oy < oh; ++oy)
                for (std::int64_t ox = 0; ox < ow; ++ox) {
                    float best = -std::numeric_limits<float>::infinity();
                    std::int64_t bestIdx = -1;
                    for (std::int64_t ky = 0; ky < g.kernelH; ++ky) {
                        const std::int64_t iy = oy * g.strideH - g.padH + ky;
                        if (iy < 0 || iy >= g.height) continue;
                        for (std::int64_t kx = 0; kx < g.kernelW; ++kx) {
                            const std::int64_t ix = ox * g.strideW - g.padW + kx;
                            if (ix < 0 || ix >= g.width) continue;
                            const float v = in[iy * g.width + ix];
                            // NaN propagates (as in PyTorch); otherwise the first maximum wins.
                            if (bestIdx < 0 || v > best || std::isnan(v)) {
                                best = v;
                                bestIdx = iy * g.width + ix;
                                if (std::isnan(v)) ky = g.kernelH, kx = g.kernelW;
                            }
                        }
                    }
                    py[pl * outPlane + oy * ow + ox] = best;
                    pa[pl * outPlane + oy * ow + ox] = static_cast<std::int32_t>(bestIdx);
                }
        }
    }, std::max<std::int64_t>(1, kInlineElements / 2 / std::max<std::int64_t>(1, inPlane)));
}

void CpuBackend::maxPool2dBackward(const Tensor& dy, const Tensor& argmax, Tensor& dx, const Pool2dGeometry& g) {
    require(Op::MaxPool2dBackward, dy.dtype());
    checkPoolGeometry(g, "cpu maxpool2d_backward");
    const std::int64_t oh = g.outH(), ow = g.outW();
    checkShape(dy, {g.batch, g.channels, oh, ow}, "maxpool2d_backward", "dy");
    checkShape(argmax, {g.batch, g.channels, oh, ow}, "maxpool2d_backward", "argmax");
    checkShape(dx, {g.batch, g.channels, g.height, g.width}, "maxpool2d_backward", "dx");
    checkDType(argmax, DType::I32, "maxpool2d_backward", "argmax");
    checkDType(dx, DType::F32, "maxpool2d_backward", "dx");
    const std::int64_t planes = g.batch * g.channels, inPlane = g.height * g.width, outPlane = oh * ow;
    const std::int32_t* pa = argmax.ptr<const std::int32_t>();
    for (std::int64_t i = 0; i < planes * outPlane; ++i)
        if (pa[i] < 0 || pa[i] >= inPlane)
            throw BackendError("cpu maxpool2d_backward: argmax " + std::to_string(pa[i]) + " at element " +
                               std::to_string(i) + " is outside the " + std::to_string(g.height) + "x" +
                               std::to_string(g.width) + " plane");
    const float* pdy = dy.ptr<const float>();
    float* pdx = dx.ptr<float>();
    forEach(planes, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t pl = b; pl < e; ++pl) {
            float* out = pdx + pl * inPlane;
            std::fill(out, out + inPlane, 0.0f);
            for (std::int64_t j = 0; j < outPlane; ++j) out[pa[pl * outPlane + j]] += pdy[pl * outPlane + j];
        }
    }, std::max<std::int64_t>(1, kInlineElements / 2 / std::max<std::int64_t>(1, inPlane)));
}

namespace {

// One output position per row: its patch, channel by channel, each kernel row a run of the input row (zeros
// where it leaves the row).
template <typename T>
void patchesAsRows(const T* px, const Conv2dGeometry& g, T* pc, std::int64_t r0, std::int64_t r1) {
    const std::int64_t p = g.outH() * g.outW(), ckk = g.inChannels * g.kernelH * g.kernelW;
    for (std::int64_t r = r0; r < r1; ++r) {
        const std::int64_t n = r / p, q = r % p, oy = q / g.outW(), ox = q % g.outW();
        T* row = pc + r * ckk;
        // Kernel columns [kLo, kHi) read input columns ix0 + kx inside the row: one run for every kernel row.
        const std::int64_t ix0 = ox * g.strideW - g.padW;
        const std::int64_t kLo = std::clamp<std::int64_t>(-ix0, 0, g.kernelW);
        const std::int64_t kHi = std::clamp<std::int64_t>(g.width - ix0, kLo, g.kernelW);
        for (std::int64_t c = 0; c < g.inChannels; ++c) {
            const T* plane = px + (n * g.inChannels + c) * g.height * g.width;
            for (std::int64_t ky = 0; ky < g.kernelH; ++ky) {
                const std::int64_t iy = oy * g.strideH - g.padH + ky;
                T* out = row + (c * g.kernelH + ky) * g.kernelW;
                if (iy < 0 || iy >= g.height) {
                    std::fill(out, out + g.kernelW, T(0));
                    continue;
                }
                const T* in = plane + iy * g.width + ix0;
                std::fill(out, out + kLo, T(0));
                std::copy(in + kLo, in + kHi, out + kLo);
                std::fill(out + kHi, out + g.kernelW, T(0));
            }
        }
    }
}

} // namespace

// f32, and i8 codes (a static-scale W8A8 convolution quantizes its input once and lays out the codes: the same
// codes as quantizing the float patches, the padding's zeros included).
void CpuBackend::im2colRows(const Tensor& x, Tensor& cols, const Conv2dGeometry& g) {
    checkCpu(x, "im2col_rows", "x");
    checkCpu(cols, "im2col_rows", "cols");
    require(Op::Im2colRows, x.dtype());
    if (g.groups != 1) throw BackendError("cpu im2col_rows: groups must be 1, got " + std::to_string(g.groups));
    checkConvGeometry(g, "cpu im2col_rows");
    checkShape(x, {g.batch, g.inChannels, g.height, g.width}, "im2col_rows", "x");
    const std::int64_t p = g.outH() * g.outW(), ckk = g.inChannels * g.kernelH * g.kernelW;
    checkShape(cols, {g.batch * p, ckk}, "im2col_rows", "cols");
    checkDType(cols, x.dtype(), "im2col_rows", "cols");
    const bool codes = x.dtype() == DType::I8;
    forEach(g.batch * p, [&](std::int64_t r0, std::int64_t r1) {
        if (codes) patchesAsRows(x.ptr<const std::int8_t>(), g, cols.ptr<std::int8_t>(), r0, r1);
        else patchesAsRows(x.ptr<const float>(), g, cols.ptr<float>(), r0, r1);
    }, std::max<std::int64_t>(1, kInlineElements / std::max<std::int64_t>(1, ckk)));
}

void CpuBackend::rowsToChannels(const Tensor& rows, Tensor& y, std::int64_t images) {
    checkCpu(rows, "rows_to_channels", "rows");
    checkCpu(y, "rows_to_channels", "y");
    require(Op::RowsToChannels, rows.dtype());
    if (rows.rank() != 2 || images < 1 || rows.dim(0) % images != 0)
        throw BackendError("cpu rows_to_channels: rows " + rows.describe() + " is not (images * P, K) for " +
                           std::to_string(images) + " images");
    const std::int64_t k = rows.dim(1), p = rows.dim(0) / images;
    if (y.dtype() != DType::F32 || y.rank() < 2 || y.dim(0) != images || y.dim(1) != k || y.numel() != rows.numel())
        throw BackendError("cpu rows_to_channels: y " + y.describe() + " is not (" + std::to_string(images) + ", " +
                           std::to_string(k) + ", " + std::to_string(p) + " positions)");
    const float* src = rows.ptr<const float>();
    float* dst = y.ptr<float>();
    // Blocks of 32 positions x 32 channels keep both sides of the transpose in cache lines.
    constexpr std::int64_t kBlock = 32;
    forEach(images * ((p + kBlock - 1) / kBlock), [&](std::int64_t t0, std::int64_t t1) {
        const std::int64_t blocks = (p + kBlock - 1) / kBlock;
        for (std::int64_t t = t0; t < t1; ++t) {
            const std::int64_t n = t / blocks, q0 = (t % blocks) * kBlock, q1 = std::min(p, q0 + kBlock);
            for (std::int64_t k0 = 0; k0 < k; k0 += kBlock)
                for (std::int64_t q = q0; q < q1; ++q)
                    for (std::int64_t c = k0; c < std::min(k, k0 + kBlock); ++c)
                        dst[(n * k + c) * p + q] = src[(n * p + q) * k + c];
        }
    }, std::max<std::int64_t>(1, kInlineElements / (kBlock * std::max<std::int64_t>(1, k))));
}

} // namespace lathe::cpu

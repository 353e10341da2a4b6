// The cross-backend op harness (like ggml's test-backend-ops): every op, forward and backward, runs on
// the CUDA backend and on the CPU reference with the same random inputs, one data row per
// op x dtype x shape. Outputs are compared by normalized error under a named per-dtype tolerance;
// integer outputs must match exactly; a dtype without a tolerance row fails. A descriptor a backend
// does not support is reported as "not supported", never counted as wrong. Each compared output prints
// its normalized error next to its tolerance. Needs a CUDA device (exits 77 = skipped otherwise);
// Qt-free (tests/support/mini_test.h) so it runs on GPU servers built with the headless preset.
#include "engine/backends/csr.h"
#include "engine/backends/quantized_weights.h"
#include "engine/backends/registry.h"
#include "engine/backends/sparse24.h"
#include "engine/core/errors.h"
#include "tests/support/mini_test.h"
#include "tests/support/test_common.h"

#include <array>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

using namespace lathe;

namespace {

// ---- tolerances (normalized error ||cuda - cpu|| / ||cpu||), one row per output dtype

struct Tolerance {
    DType dtype;
    double normalizedError; // 0: every value must match exactly
    const char* why;        // where the number comes from
};

const Tolerance kTolerances[] = {
    {DType::F32, 1e-5,
     "FP32 keeps 24 significant bits (eps 1.2e-7). CPU and GPU sum in different orders (blocked BLAS vs cuBLAS "
     "tiles, tree vs sequential reductions) and use different libm (erff, expf) within a few ulp; a length-K sum "
     "then differs by about sqrt(K) * eps, 4e-6 for K = 1000. 1e-5 leaves a margin of 2.5."},
    {DType::F16, 2e-3,
     "FP16 keeps 11 significant bits (eps 2^-10 = 9.8e-4). Both backends accumulate in f32 and round once to "
     "f16, so an element differs by at most one rounding step when the f32 values straddle a rounding boundary: "
     "the normalized error stays under one ulp. 2e-3 is two ulps."},
    {DType::BF16, 1.6e-2,
     "BF16 keeps 8 significant bits (eps 2^-7 = 7.8e-3); same argument as for f16: two ulps."},
    {DType::I32, 0.0,
     "Integer results (argmax indices, converted integers) are exact on both backends: no rounding to differ in."},
    {DType::I8, 0.0, "Saturating round-half-away conversion, identical in dtype.cpp and convert.cu: exact."},
    {DType::U8, 0.0, "Saturating round-half-away conversion, identical in dtype.cpp and convert.cu: exact."},
    {DType::F8E4M3, 0.0,
     "Filled (the pattern encoded once on the host) and converted from f32 by __nv_cvt_float_to_fp8 with "
     "round-to-nearest-even and saturation, the rounding floatToFp8E4M3 implements: identical bytes."},
    {DType::Q8_0, 0.0,
     "f32 -> q8_0: d = max|x| / 127 rounded once to fp16, codes round(x * (1 / d)) with the same f32 d, half away "
     "from zero, in quantizeRowQ8_0 and convert.cu alike: identical blocks; back, one product per value."},
};

// The row for dt, or nullptr: a dtype without a row fails the case (it is never taken as exact).
const Tolerance* toleranceFor(DType dt) {
    for (const auto& t : kTolerances)
        if (t.dtype == dt) return &t;
    return nullptr;
}

// ---- one case: run an op on a backend with inputs drawn from a seed, return its outputs

struct Output {
    std::string name;
    DType dtype;
    std::vector<float> values; // integers converted exactly through the dtype traits
};
using Outputs = std::vector<Output>;
using CaseFn = std::function<Outputs(Backend&, DType)>;

struct OpCase {
    std::string name;
    Op op;
    std::vector<DType> dtypes; // the dtype the case is about first (handed to run), then any others it touches
    CaseFn run;
    // The descriptors both backends must support; empty means OpDesc::uniform(op, dtypes.front()).
    std::vector<OpDesc> descs = {};
    // The right output is all zeros (an empty sparse matrix, K = 0 without a bias): the case pre-fills it with
    // random values, so zeros on both backends prove the op wrote it.
    bool zeroOutput = false;
};

// A tensor of `dt` on `be` holding uniform values in [lo, hi) from `seed` (never all zeros). The
// values are rounded to dt on the host, so both backends see identical bits.
Tensor input(Backend& be, const Shape& shape, DType dt, std::uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
    const auto v = test::randomVector(static_cast<std::size_t>(numel(shape)), seed, lo, hi);
    Tensor h = Tensor::host(shape, dt);
    traits(dt).fromFloat(v.data(), h.data(), v.size());
    return be.upload(h);
}

Tensor labels(Backend& be, std::int64_t n, int classes, std::uint64_t seed) {
    return be.uploadI32(test::randomLabels(static_cast<std::size_t>(n), classes, seed), {n});
}

Output out(Backend& be, const std::string& name, const Tensor& t) { return {name, t.dtype(), be.downloadF32(t)}; }

std::string shapeName(const Shape& s) {
    std::string r;
    for (std::size_t i = 0; i < s.size(); ++i) r += (i ? "x" : "") + std::to_string(s[i]);
    return r;
}

// ---- the case table

std::vector<OpCase> buildCases() {
    std::vector<OpCase> cases;
    const std::vector<DType> floats = {DType::F32, DType::F16, DType::BF16};

    // fill: every plain dtype, a value that rounds differently per type
    for (DType dt : {DType::F32, DType::F16, DType::BF16, DType::I32, DType::I8, DType::U8, DType::F8E4M3})
        cases.push_back({std::string("fill/") + dtypeName(dt) + "/1000", Op::Fill, {dt}, [dt](Backend& be, DType) {
                             Tensor x = input(be, {1000}, dt, 1);
                             be.fill(x, 3.7f);
                             return Outputs{out(be, "x", x)};
                         }});

    // convert: f32 -> each type and back; the wide range exercises i8/u8 saturation (and f8's, past 448). Q8_0
    // and F8E4M3 are the paged KV blocks' formats (convert.cu's storage kernels, to and from f32 only).
    for (DType dt : {DType::F16, DType::BF16, DType::I32, DType::I8, DType::U8, DType::Q8_0, DType::F8E4M3}) {
        const float range = dt == DType::F8E4M3 ? 600.0f : 300.0f;
        cases.push_back({std::string("convert/f32->") + dtypeName(dt) + "/4096", Op::Convert, {DType::F32, dt},
                         [dt, range](Backend& be, DType) {
                             Tensor src = input(be, {4096}, DType::F32, 2, -range, range);
                             Tensor dst = be.empty({4096}, dt);
                             be.convert(src, dst);
                             return Outputs{out(be, "dst", dst)};
                         },
                         {OpDesc::convert(DType::F32, dt)}});
        cases.push_back({std::string("convert/") + dtypeName(dt) + "->f32/4096", Op::Convert, {dt, DType::F32},
                         [dt](Backend& be, DType) {
                             Tensor src = input(be, {4096}, dt, 3, -100.0f, 100.0f);
                             Tensor dst = be.empty({4096}, DType::F32);
                             be.convert(src, dst);
                             return Outputs{out(be, "dst", dst)};
                         },
                         {OpDesc::convert(dt, DType::F32)}});
    }

    for (DType dt : {DType::F32, DType::F16, DType::I32})
        cases.push_back({std::string("copy/") + dtypeName(dt) + "/777", Op::Copy, {dt}, [dt](Backend& be, DType) {
                             Tensor a = input(be, {777}, dt, 4, -50.0f, 50.0f);
                             Tensor b = be.empty({777}, dt);
                             be.copy(a, b);
                             return Outputs{out(be, "dst", b)};
                         }});

    // gemm: the MLP's shapes, odd sizes, every transpose combination, alpha and beta
    struct GemmShape {
        std::int64_t m, k, n;
    };
    // K = 0 computes c = beta c (no products); K = 16384 on a small output invites split-K, whose partial sums
    // must stay in f32 for f16/bf16 too.
    const std::vector<GemmShape> gemmShapes = {{1, 784, 256}, {64, 256, 128}, {33, 17, 45}, {128, 1000, 10},
                                               {7, 0, 5},     {16, 16384, 16}};
    for (DType dt : floats)
        for (const auto& gs : gemmShapes)
            for (int t = 0; t < 4; ++t) {
                const Trans ta = (t & 1) ? Trans::Yes : Trans::No, tb = (t & 2) ? Trans::Yes : Trans::No;
                if (gs.m == 1 && t != 0 && t != 2) continue; // batch 1: the layouts Linear uses
                const std::string tn = std::string(ta == Trans::Yes ? "t" : "n") + (tb == Trans::Yes ? "t" : "n");
                cases.push_back({std::string("gemm/") + dtypeName(dt) + "/" + std::to_string(gs.m) + "x" +
                                     std::to_string(gs.k) + "x" + std::to_string(gs.n) + "/" + tn,
                                 Op::Gemm, {dt}, [gs, ta, tb](Backend& be, DType d) {
                                     const Shape as = ta == Trans::No ? Shape{gs.m, gs.k} : Shape{gs.k, gs.m};
                                     const Shape bs = tb == Trans::No ? Shape{gs.k, gs.n} : Shape{gs.n, gs.k};
                                     Tensor a = input(be, as, d, 10);
                                     Tensor b = input(be, bs, d, 11);
                                     Tensor c = input(be, {gs.m, gs.n}, d, 12);
                                     be.gemm(a, ta, b, tb, c, 0.75f, 0.5f);
                                     return Outputs{out(be, "c", c)};
                                 }});
            }

    // spmm_csr: a pruned Linear's weight (out, in) at several densities, batch 1 and larger, an empty
    // matrix. Zeros are drawn per element (about 1 - density of them), so some rows are empty.
    struct SpmmShape {
        std::int64_t n, in, out;
        double density;
    };
    const std::vector<SpmmShape> spmmShapes = {
        {1, 784, 256, 0.1}, {256, 784, 256, 0.05}, {33, 17, 45, 0.3}, {7, 128, 10, 0.0}, {64, 256, 128, 0.5}};
    for (const auto& ss : spmmShapes) {
        char density[16];
        std::snprintf(density, sizeof density, "%.2f", ss.density);
        cases.push_back({"spmm_csr/f32/" + std::to_string(ss.n) + "x" + std::to_string(ss.in) + "x" +
                             std::to_string(ss.out) + "/density" + density,
                         Op::SpmmCsr, {DType::F32}, [ss](Backend& be, DType d) {
                             auto w = test::randomVector(static_cast<std::size_t>(ss.out * ss.in), 30);
                             const auto keep = test::randomVector(w.size(), 31, 0.0f, 1.0f);
                             for (std::size_t i = 0; i < w.size(); ++i)
                                 if (keep[i] >= ss.density) w[i] = 0.0f;
                             const HostCsr c = csrFromDense(w.data(), ss.out, ss.in);
                             Tensor rowPtr = be.uploadI32(c.rowPtr, {ss.out + 1});
                             Tensor colIdx = be.uploadI32(c.colIdx, {c.nnz()});
                             Tensor values = be.upload(c.values, {c.nnz()});
                             Tensor x = input(be, {ss.n, ss.in}, d, 32);  // (N, in)
                             Tensor y = input(be, {ss.n, ss.out}, d, 33); // (N, out), overwritten
                             be.spmmCsr(x, rowPtr, colIdx, values, y);
                             return Outputs{out(be, "y", y)};
                         }});
        cases.back().zeroOutput = ss.density == 0.0;
    }

    // spmm_24: random 2:4 weights (0, 1 or 2 nonzeros per group of 4), inputs not a multiple of 4 (partial
    // last groups of 1, 2 and 3 columns), batch 1 to 256, one to 130 output rows.
    struct Spmm24Shape {
        std::int64_t n, in, out;
    };
    const std::vector<Spmm24Shape> spmm24Shapes = {{1, 784, 256}, {256, 784, 256}, {3, 13, 7},   {17, 30, 130},
                                                   {256, 787, 1}, {5, 785, 130},    {256, 256, 128}};
    for (const auto& ss : spmm24Shapes)
        cases.push_back({"spmm_24/f32/" + std::to_string(ss.n) + "x" + std::to_string(ss.in) + "x" +
                             std::to_string(ss.out),
                         Op::Spmm24, {DType::F32}, [ss](Backend& be, DType d) {
                             const auto w = test::randomSparse24(ss.out, ss.in, 34);
                             const HostSparse24 s = sparse24FromDense(w.data(), ss.out, ss.in);
                             Tensor values = be.upload(s.values, {ss.out, 2 * sparse24Groups(ss.in)});
                             Tensor meta = be.uploadU8(s.meta, {ss.out, sparse24MetaBytesPerRow(ss.in)});
                             Tensor x = input(be, {ss.n, ss.in}, d, 35);  // (N, in)
                             Tensor y = input(be, {ss.n, ss.out}, d, 36); // (N, out), overwritten
                             be.spmm24(x, values, meta, y);
                             return Outputs{out(be, "y", y)};
                         }});

    // gemm_weight_only: each format (int4 both ways) on the fused GEMV (M <= 8; 16-byte code loads where
    // K and the group allow, single codes where not: K 130, 33, group 5) and on dequantize + cuBLAS (M 64,
    // 257), with a bias and each activation.
    struct WeightOnlyShape {
        std::int64_t m, n, k, group;
        Activation act;
    };
    const std::vector<WeightOnlyShape> weightOnlyShapes = {
        {1, 256, 784, 128, Activation::None}, {3, 7, 33, 5, Activation::Relu},   {8, 64, 1024, 64, Activation::Gelu},
        {1, 33, 130, 64, Activation::Gelu},   {64, 256, 784, 128, Activation::Relu},
        {257, 33, 127, 32, Activation::None},
        // the batch-1 kernel with x staged in shared memory (70 rows: a warp's last four only half there), the
        // same kernel reading x from global memory where it would not fit (K 20480), and its few-row form
        {1, 70, 4096, 128, Activation::Relu}, {1, 9, 20480, 128, Activation::None}, {2, 33, 2048, 32, Activation::None}};
    const std::pair<const char*, QuantSpec> weightOnlyVariants[] = {{"int8", {WeightFormat::Int8, 0, true}},
                                                                     {"int4-sym", {WeightFormat::Int4, 0, true}},
                                                                     {"int4-asym", {WeightFormat::Int4, 0, false}},
                                                                     {"nf4", {WeightFormat::Nf4, 0, true}},
                                                                     {"nf4-dq", {WeightFormat::Nf4, 0, true, true}},
                                                                     {"fp8", {WeightFormat::Fp8, 0, true}}};
    for (const auto& [variant, baseSpec] : weightOnlyVariants)
        for (const auto& ws : weightOnlyShapes) {
            QuantSpec spec = baseSpec;
            spec.group = ws.group;
            cases.push_back({"gemm_weight_only/" + std::string(variant) + "/g" + std::to_string(ws.group) + "/" +
                                 std::to_string(ws.m) + "x" + std::to_string(ws.n) + "x" + std::to_string(ws.k),
                             Op::Gemm, {DType::F32}, [ws, spec](Backend& be, DType d) {
                                 const auto w = test::randomVector(static_cast<std::size_t>(ws.n * ws.k), 37);
                                 const HostQuantMatrix q = quantizeMatrix(w.data(), ws.n, ws.k, spec);
                                 const QuantizedWeights qw = uploadQuantizedWeights(be, q);
                                 Tensor x = input(be, {ws.m, ws.k}, d, 38);    // (M, K)
                                 Tensor bias = input(be, {ws.n}, d, 39);       // (N)
                                 Tensor y = input(be, {ws.m, ws.n}, d, 40);    // (M, N), overwritten
                                 be.gemmWeightOnly(x, qw, &bias, ws.act, y);
                                 return Outputs{out(be, "y", y)};
                             },
                             {weightOnlyGemmDesc(spec.format)}});
        }

    // gemm_fp8: cuBLASLt's FP8 GEMM where the device has one (compute capability >= 8.9), else its emulation,
    // against the CPU's emulation: the same E4M3 bytes of x (both divide by the same scale in IEEE f32 and round
    // to nearest even, saturating), exact E4M3 products, f32 sums in different orders (f32 tolerance). The MLP's
    // layers at batch 1 and 256, and K 47 (not a multiple of 16: cuBLASLt's FP8 GEMM refuses it, the fallback
    // runs).
    struct Fp8Shape {
        std::int64_t m, k, n;
        Activation act;
    };
    for (const auto& fs : std::vector<Fp8Shape>{{1, 784, 256, Activation::Relu},
                                                {256, 784, 256, Activation::Relu},
                                                {256, 128, 10, Activation::None},
                                                {33, 47, 19, Activation::Gelu}})
        cases.push_back({"gemm_fp8/f8e4m3/" + std::to_string(fs.m) + "x" + std::to_string(fs.k) + "x" +
                             std::to_string(fs.n),
                         Op::Gemm, {DType::F32, DType::F8E4M3}, [fs](Backend& be, DType d) {
                             const auto w = test::randomVector(static_cast<std::size_t>(fs.n * fs.k), 50);
                             const HostQuantMatrix q = quantizeMatrix(w.data(), fs.n, fs.k, {WeightFormat::Fp8, fs.k, true});
                             const QuantizedWeights qw = uploadQuantizedWeights(be, q);
                             Tensor x = input(be, {fs.m, fs.k}, d, 51, -3.0f, 3.0f); // (M, K)
                             Tensor bias = input(be, {fs.n}, d, 52);                 // (N)
                             Tensor y = input(be, {fs.m, fs.n}, d, 53);              // (M, N), overwritten
                             const Fp8Mode mode =
                                 be.supports(fp8GemmDesc(Fp8Mode::Native)) ? Fp8Mode::Native : Fp8Mode::Emulated;
                             be.gemmFp8(x, qw, &bias, fs.act, mode, y);
                             return Outputs{out(be, "y", y)};
                         },
                         {fp8GemmDesc(Fp8Mode::Emulated)}});

    // gemm_bias_act: the f32 Linear with bias and activation in the epilogue (cuBLASLt's BIAS / RELU_BIAS, GELU
    // as the bias epilogue plus the exact-erf kernel) against the CPU's panels; batch 1, the MLP's layers, shapes
    // cuBLASLt's heuristic may refuse (odd sizes), K = 0; each activation, with and without a bias.
    struct BiasActShape {
        std::int64_t m, k, n;
    };
    const std::vector<BiasActShape> biasActShapes = {
        {1, 784, 256}, {256, 784, 256}, {256, 128, 10}, {7, 13, 33}, {5, 0, 4}};
    for (const auto& bs : biasActShapes)
        for (Activation act : {Activation::None, Activation::Relu, Activation::Gelu})
            for (bool withBias : {true, false}) {
                const char* actName = act == Activation::None ? "none" : act == Activation::Relu ? "relu" : "gelu";
                cases.push_back({"gemm_bias_act/f32/" + std::to_string(bs.m) + "x" + std::to_string(bs.k) + "x" +
                                     std::to_string(bs.n) + "/" + actName + (withBias ? "/bias" : "/no-bias"),
                                 Op::GemmBiasAct, {DType::F32}, [bs, act, withBias](Backend& be, DType d) {
                                     Tensor x = input(be, {bs.m, bs.k}, d, 46, -2.0f, 2.0f); // (M, K)
                                     Tensor w = input(be, {bs.n, bs.k}, d, 47);              // (N, K)
                                     Tensor bias = input(be, {bs.n}, d, 48);                 // (N)
                                     Tensor y = input(be, {bs.m, bs.n}, d, 49);              // (M, N), overwritten
                                     be.gemmBiasAct(x, w, withBias ? &bias : nullptr, act, y);
                                     return Outputs{out(be, "y", y)};
                                 }});
                cases.back().zeroOutput = bs.k == 0 && !withBias;
            }

    // quantize_rows: codes exact (both backends divide in IEEE f32 and round half away from zero), scales
    // exact (max |x| / 127); a calibrated static scale that clamps some values; batch 1 and rows of odd width.
    struct QuantShape {
        std::int64_t m, k;
    };
    for (const auto& qs : std::vector<QuantShape>{{1, 784}, {256, 784}, {7, 13}, {300, 1000}})
        for (bool dynamic : {true, false})
            cases.push_back({"quantize_rows/f32/" + std::to_string(qs.m) + "x" + std::to_string(qs.k) +
                                 (dynamic ? "/dynamic" : "/static"),
                             Op::QuantizeRows, {DType::F32}, [qs, dynamic](Backend& be, DType d) {
                                 Tensor x = input(be, {qs.m, qs.k}, d, 40, -3.0f, 3.0f); // (M, K)
                                 Tensor xq = be.empty({qs.m, qs.k}, DType::I8);
                                 Tensor scale = dynamic ? be.empty({qs.m}) : be.upload(std::vector<float>{0.02f}, {1});
                                 be.quantizeRows(x, xq, scale, dynamic);
                                 Outputs o{out(be, "xq", xq)};
                                 if (dynamic) o.push_back(out(be, "scale", scale));
                                 return o;
                             }});

    // gemm_int8: the MLP's layers, batch 1, and K not a multiple of 4 (cuBLASLt has no int8 kernel there;
    // int8.cu's plain one runs). "acc" is y with unit scales, no bias and no activation, converted to i32:
    // the int32 sums themselves, exact (every |acc| < 2^24, which float holds exactly). "y" adds per-row and
    // per-channel scales, a bias and GELU (f32 tolerance: the two libm erff differ in the last ulp).
    struct Int8Shape {
        std::int64_t m, k, n;
    };
    const std::vector<Int8Shape> int8Shapes = {{1, 784, 256}, {256, 784, 256}, {256, 256, 128}, {256, 128, 10},
                                               {7, 17, 33},   {3, 5, 1},       {64, 4, 16}};
    for (const auto& is : int8Shapes)
        cases.push_back({"gemm_int8/i8/" + std::to_string(is.m) + "x" + std::to_string(is.k) + "x" +
                             std::to_string(is.n),
                         Op::Gemm, {DType::I8, DType::F32, DType::I32}, [is](Backend& be, DType) {
                             Tensor xq = input(be, {is.m, is.k}, DType::I8, 41, -127.0f, 127.0f); // (M, K)
                             Tensor w = input(be, {is.n, is.k}, DType::I8, 42, -127.0f, 127.0f);  // (N, K)
                             const Tensor packed = be.prepackInt8(w);
                             const Tensor one = be.upload(std::vector<float>{1.0f}, {1});
                             Tensor y = be.empty({is.m, is.n});
                             be.gemmInt8(xq, one, packed, one, nullptr, Activation::None, y);
                             Tensor acc = be.empty({is.m, is.n}, DType::I32);
                             be.convert(y, acc);
                             Tensor xScale = input(be, {is.m}, DType::F32, 43, 1e-3f, 5e-2f);
                             Tensor wScale = input(be, {is.n}, DType::F32, 44, 1e-3f, 2e-2f);
                             Tensor bias = input(be, {is.n}, DType::F32, 45);
                             Tensor yq = be.empty({is.m, is.n});
                             be.gemmInt8(xq, xScale, packed, wScale, &bias, Activation::Gelu, yq);
                             return Outputs{out(be, "acc", acc), out(be, "y", yq)};
                         },
                         {int8GemmDesc(), OpDesc::convert(DType::F32, DType::I32)}});

    // bias add / grad: a Linear's (N, C) and a conv's (N, C, H, W)
    for (DType dt : floats)
        for (const Shape& s : {Shape{64, 10}, Shape{8, 16, 5, 5}}) {
            cases.push_back({std::string("bias_add/") + dtypeName(dt) + "/" + shapeName(s), Op::BiasAdd, {dt},
                             [s](Backend& be, DType d) {
                                 Tensor x = input(be, s, d, 20);
                                 Tensor b = input(be, {s[1]}, d, 21);
                                 be.biasAdd(x, b);
                                 return Outputs{out(be, "x", x)};
                             }});
            for (bool acc : {false, true})
                cases.push_back({std::string("bias_grad/") + dtypeName(dt) + "/" + shapeName(s) +
                                     (acc ? "/accumulate" : "/overwrite"),
                                 Op::BiasGrad, {dt}, [s, acc](Backend& be, DType d) {
                                     Tensor dy = input(be, s, d, 22);
                                     Tensor db = input(be, {s[1]}, d, 23);
                                     be.biasGrad(dy, db, acc);
                                     return Outputs{out(be, "dbias", db)};
                                 }});
        }

    // elementwise family
    const std::vector<Shape> ewShapes = {{1000}, {64, 256}, {3, 5, 7}};
    for (DType dt : floats)
        for (const Shape& s : ewShapes) {
            const std::string suffix = std::string("/") + dtypeName(dt) + "/" + shapeName(s);
            cases.push_back({"add" + suffix, Op::Add, {dt}, [s](Backend& be, DType d) {
                                 Tensor a = input(be, s, d, 30), b = input(be, s, d, 31), o = be.empty(s, d);
                                 be.add(a, b, o);
                                 return Outputs{out(be, "out", o)};
                             }});
            cases.push_back({"mul" + suffix, Op::Mul, {dt}, [s](Backend& be, DType d) {
                                 Tensor a = input(be, s, d, 32), b = input(be, s, d, 33), o = be.empty(s, d);
                                 be.mul(a, b, o);
                                 return Outputs{out(be, "out", o)};
                             }});
            cases.push_back({"axpy" + suffix, Op::Axpy, {dt}, [s](Backend& be, DType d) {
                                 Tensor x = input(be, s, d, 34), y = input(be, s, d, 35);
                                 be.axpy(-0.3f, x, y);
                                 return Outputs{out(be, "y", y)};
                             }});
            cases.push_back({"scale" + suffix, Op::Scale, {dt}, [s](Backend& be, DType d) {
                                 Tensor x = input(be, s, d, 36);
                                 be.scale(x, 1.7f);
                                 return Outputs{out(be, "x", x)};
                             }});
            cases.push_back({"relu" + suffix, Op::Relu, {dt}, [s](Backend& be, DType d) {
                                 Tensor x = input(be, s, d, 37), y = be.empty(s, d);
                                 be.relu(x, y);
                                 return Outputs{out(be, "y", y)};
                             }});
            cases.push_back({"relu_backward" + suffix, Op::ReluBackward, {dt}, [s](Backend& be, DType d) {
                                 Tensor x = input(be, s, d, 38), dy = input(be, s, d, 39), dx = be.empty(s, d);
                                 be.reluBackward(x, dy, dx);
                                 return Outputs{out(be, "dx", dx)};
                             }});
            cases.push_back({"gelu" + suffix, Op::Gelu, {dt}, [s](Backend& be, DType d) {
                                 Tensor x = input(be, s, d, 40, -4.0f, 4.0f), y = be.empty(s, d);
                                 be.gelu(x, y);
                                 return Outputs{out(be, "y", y)};
                             }});
            cases.push_back({"gelu_backward" + suffix, Op::GeluBackward, {dt}, [s](Backend& be, DType d) {
                                 Tensor x = input(be, s, d, 41, -4.0f, 4.0f), dy = input(be, s, d, 42);
                                 Tensor dx = be.empty(s, d);
                                 be.geluBackward(x, dy, dx);
                                 return Outputs{out(be, "dx", dx)};
                             }});
            cases.push_back({"dropout" + suffix, Op::Dropout, {dt}, [s](Backend& be, DType d) {
                                 Tensor x = input(be, s, d, 43), y = be.empty(s, d), mask = be.empty(s, d);
                                 be.dropout(x, y, mask, 0.3f, 0x5eedull);
                                 return Outputs{out(be, "y", y), out(be, "mask", mask)};
                             }});
        }

    // row-wise: softmax, cross-entropy (forward loss and gradient in one op), argmax
    for (DType dt : floats)
        for (const Shape& s : {Shape{64, 10}, Shape{3, 3000}, Shape{1, 1}})
            cases.push_back({std::string("softmax/") + dtypeName(dt) + "/" + shapeName(s), Op::Softmax, {dt},
                             [s](Backend& be, DType d) {
                                 Tensor x = input(be, s, d, 50, -6.0f, 6.0f), y = be.empty(s, d);
                                 be.softmax(x, y);
                                 return Outputs{out(be, "y", y)};
                             }});
    for (const Shape& s : {Shape{64, 10}, Shape{5, 1000}})
        cases.push_back({"softmax_cross_entropy/f32/" + shapeName(s), Op::SoftmaxCrossEntropy, {DType::F32},
                         [s](Backend& be, DType) {
                             Tensor logits = input(be, s, DType::F32, 51, -5.0f, 5.0f);
                             Tensor lab = labels(be, s[0], static_cast<int>(s[1]), 52);
                             Tensor losses = be.empty({s[0]}), dlogits = be.empty(s);
                             be.softmaxCrossEntropy(logits, lab, losses, dlogits, 1.0f / static_cast<float>(s[0]));
                             return Outputs{out(be, "losses", losses), out(be, "dlogits", dlogits)};
                         }});
    for (const Shape& s : {Shape{64, 10}, Shape{5, 1000}})
        for (const float alpha : {0.0f, 0.7f})
            cases.push_back({"distillation_loss/f32/" + shapeName(s) + "/alpha" + std::to_string(alpha).substr(0, 3),
                             Op::DistillationLoss, {DType::F32}, [s, alpha](Backend& be, DType) {
                                 Tensor student = input(be, s, DType::F32, 54, -5.0f, 5.0f);
                                 Tensor teacher = input(be, s, DType::F32, 55, -8.0f, 8.0f);
                                 Tensor lab = labels(be, s[0], static_cast<int>(s[1]), 56);
                                 Tensor losses = be.empty({s[0]}), parts = be.empty({s[0], 2}), d = be.empty(s);
                                 be.distillationLoss(student, teacher, lab, 3.0f, alpha, losses, parts, d,
                                                     1.0f / static_cast<float>(s[0]));
                                 return Outputs{out(be, "losses", losses), out(be, "parts", parts), out(be, "dstudent", d)};
                             }});
    for (DType dt : floats)
        for (const Shape& s : {Shape{64, 10}, Shape{7, 2000}})
            cases.push_back({std::string("argmax_rows/") + dtypeName(dt) + "/" + shapeName(s), Op::ArgmaxRows, {dt},
                             [s](Backend& be, DType d) {
                                 Tensor x = input(be, s, d, 53);
                                 Tensor o = be.empty({s[0]}, DType::I32);
                                 be.argmaxRows(x, o);
                                 return Outputs{out(be, "index", o)};
                             }});

    // convolution: the CNN's first layer, a strided padded one, a 1x1; grouped ones (a batched GEMM over
    // the groups) and depthwise ones (direct kernels), with a channel multiplier and odd shapes
    auto geo = [](std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w, std::int64_t k, std::int64_t kh,
                  std::int64_t kw, std::int64_t s, std::int64_t p, std::int64_t groups = 1) {
        Conv2dGeometry g;
        g.batch = n, g.inChannels = c, g.height = h, g.width = w, g.outChannels = k, g.kernelH = kh, g.kernelW = kw;
        g.strideH = g.strideW = s;
        g.padH = g.padW = p;
        g.groups = groups;
        return g;
    };
    const std::vector<std::pair<std::string, Conv2dGeometry>> convs = {
        {"n2c1h28w28k8_5x5s1p2", geo(2, 1, 28, 28, 8, 5, 5, 1, 2)},
        {"n3c4h9w7k5_3x3s2p1", geo(3, 4, 9, 7, 5, 3, 3, 2, 1)},
        {"n2c3h8w8k4_1x1s1p0", geo(2, 3, 8, 8, 4, 1, 1, 1, 0)},
        {"n4c2h6w10k3_2x4s1p0", geo(4, 2, 6, 10, 3, 2, 4, 1, 0)},
        {"n2c4h7w6k6_3x3s1p1g2", geo(2, 4, 7, 6, 6, 3, 3, 1, 1, 2)},
        {"n3c6h9w7k9_3x2s2p0g3", geo(3, 6, 9, 7, 9, 3, 2, 2, 0, 3)},
        {"n64c16h14w14k16_3x3s1p1g16", geo(64, 16, 14, 14, 16, 3, 3, 1, 1, 16)}, // cnn-dws's depthwise layer
        {"n2c4h9w11k8_3x3s2p1g4", geo(2, 4, 9, 11, 8, 3, 3, 2, 1, 4)},
        {"n2c3h7w9k3_5x4s1p2g3", geo(2, 3, 7, 9, 3, 5, 4, 1, 2, 3)}};
    for (const auto& entry : convs) {
        const std::string gname = entry.first;
        const Conv2dGeometry g = entry.second;
        const Shape xs{g.batch, g.inChannels, g.height, g.width};
        const Shape ws{g.outChannels, g.inPerGroup(), g.kernelH, g.kernelW};
        const Shape ys{g.batch, g.outChannels, g.outH(), g.outW()};
        cases.push_back({"conv2d_forward/f32/" + gname, Op::Conv2dForward, {DType::F32},
                         [g, xs, ws, ys](Backend& be, DType) {
                             Tensor x = input(be, xs, DType::F32, 60), w = input(be, ws, DType::F32, 61);
                             Tensor y = be.empty(ys);
                             be.conv2dForward(x, w, y, g);
                             return Outputs{out(be, "y", y)};
                         }});
        cases.push_back({"conv2d_backward_data/f32/" + gname, Op::Conv2dBackwardData, {DType::F32},
                         [g, xs, ws, ys](Backend& be, DType) {
                             Tensor dy = input(be, ys, DType::F32, 62), w = input(be, ws, DType::F32, 63);
                             Tensor dx = input(be, xs, DType::F32, 64); // overwritten
                             be.conv2dBackwardData(dy, w, dx, g);
                             return Outputs{out(be, "dx", dx)};
                         }});
        // The quantized conv's GEMM over rows (groups 1 only): the patches as rows, and rows back to channels.
        if (g.groups == 1) {
            const Shape cs{g.batch * g.outH() * g.outW(), g.inChannels * g.kernelH * g.kernelW};
            cases.push_back({"im2col_rows/f32/" + gname, Op::Im2colRows, {DType::F32}, [g, xs, cs](Backend& be, DType) {
                                 Tensor x = input(be, xs, DType::F32, 68);
                                 Tensor cols = be.empty(cs);
                                 be.im2colRows(x, cols, g);
                                 return Outputs{out(be, "cols", cols)};
                             }});
            cases.push_back({"rows_to_channels/f32/" + gname, Op::RowsToChannels, {DType::F32},
                             [g, ys](Backend& be, DType) {
                                 Tensor rows = input(be, {g.batch * g.outH() * g.outW(), g.outChannels}, DType::F32, 69);
                                 Tensor y = be.empty(ys);
                                 be.rowsToChannels(rows, y, g.batch);
                                 return Outputs{out(be, "y", y)};
                             }});
        }
        for (bool acc : {false, true})
            cases.push_back({"conv2d_backward_weight/f32/" + gname + (acc ? "/accumulate" : "/overwrite"),
                             Op::Conv2dBackwardWeight, {DType::F32}, [g, xs, ws, ys, acc](Backend& be, DType) {
                                 Tensor x = input(be, xs, DType::F32, 65), dy = input(be, ys, DType::F32, 66);
                                 Tensor dw = input(be, ws, DType::F32, 67);
                                 be.conv2dBackwardWeight(x, dy, dw, g, acc);
                                 return Outputs{out(be, "dw", dw)};
                             }});
    }

    // max pooling: the CNN's 2x2/2 and an overlapping padded 3x3/2 (backward then sums windows)
    auto pgeo = [](std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w, std::int64_t k, std::int64_t s,
                   std::int64_t p) {
        Pool2dGeometry g;
        g.batch = n, g.channels = c, g.height = h, g.width = w;
        g.kernelH = g.kernelW = k;
        g.strideH = g.strideW = s;
        g.padH = g.padW = p;
        return g;
    };
    const std::vector<std::pair<std::string, Pool2dGeometry>> pools = {
        {"n2c3h8w8_2x2s2", pgeo(2, 3, 8, 8, 2, 2, 0)},
        {"n2c2h7w9_3x3s2p1", pgeo(2, 2, 7, 9, 3, 2, 1)},
        {"n1c4h28w28_2x2s2", pgeo(1, 4, 28, 28, 2, 2, 0)}};
    for (const auto& entry : pools) {
        const std::string pname = entry.first;
        const Pool2dGeometry g = entry.second;
        const Shape xs{g.batch, g.channels, g.height, g.width};
        const Shape ys{g.batch, g.channels, g.outH(), g.outW()};
        cases.push_back({"maxpool2d_forward/f32/" + pname, Op::MaxPool2dForward, {DType::F32},
                         [g, xs, ys](Backend& be, DType) {
                             Tensor x = input(be, xs, DType::F32, 70);
                             Tensor y = be.empty(ys), am = be.empty(ys, DType::I32);
                             be.maxPool2dForward(x, y, am, g);
                             return Outputs{out(be, "y", y), out(be, "argmax", am)};
                         }});
        cases.push_back({"maxpool2d_backward/f32/" + pname, Op::MaxPool2dBackward, {DType::F32},
                         [g, xs, ys](Backend& be, DType) {
                             Tensor x = input(be, xs, DType::F32, 71);
                             Tensor y = be.empty(ys), am = be.empty(ys, DType::I32);
                             be.maxPool2dForward(x, y, am, g);
                             Tensor dy = input(be, ys, DType::F32, 72);
                             Tensor dx = input(be, xs, DType::F32, 73); // overwritten
                             be.maxPool2dBackward(dy, am, dx, g);
                             return Outputs{out(be, "dx", dx)};
                         }});
    }

    // layer norm: small and wide rows; an offset mean checks the variance's stability
    for (const Shape& s : {Shape{16, 64}, Shape{5, 1000}, Shape{3, 7}}) {
        cases.push_back({"layernorm_forward/f32/" + shapeName(s), Op::LayerNormForward, {DType::F32},
                         [s](Backend& be, DType) {
                             Tensor x = input(be, s, DType::F32, 80, 2.0f, 5.0f);
                             Tensor gamma = input(be, {s[1]}, DType::F32, 81), beta = input(be, {s[1]}, DType::F32, 82);
                             Tensor y = be.empty(s), mean = be.empty({s[0]}), rstd = be.empty({s[0]});
                             be.layerNormForward(x, gamma, beta, y, mean, rstd, 1e-5f);
                             return Outputs{out(be, "y", y), out(be, "mean", mean), out(be, "rstd", rstd)};
                         }});
        for (bool acc : {false, true})
            cases.push_back({"layernorm_backward/f32/" + shapeName(s) + (acc ? "/accumulate" : "/overwrite"),
                             Op::LayerNormBackward, {DType::F32}, [s, acc](Backend& be, DType) {
                                 Tensor x = input(be, s, DType::F32, 83);
                                 Tensor gamma = input(be, {s[1]}, DType::F32, 84);
                                 Tensor beta = input(be, {s[1]}, DType::F32, 85);
                                 Tensor y = be.empty(s), mean = be.empty({s[0]}), rstd = be.empty({s[0]});
                                 be.layerNormForward(x, gamma, beta, y, mean, rstd, 1e-5f);
                                 Tensor dy = input(be, s, DType::F32, 86), dx = be.empty(s);
                                 Tensor dg = input(be, {s[1]}, DType::F32, 87), db = input(be, {s[1]}, DType::F32, 88);
                                 be.layerNormBackward(dy, x, gamma, mean, rstd, dx, dg, db, acc);
                                 return Outputs{out(be, "dx", dx), out(be, "dgamma", dg), out(be, "dbeta", db)};
                             }});
    }

    // batch norm over (N, C, H, W): training (batch statistics, running ones updated) and evaluation (running
    // statistics) forwards, and the backward; an offset mean checks the variance's stability, and (64, 8, 28, 28)
    // gives each channel's block 50,176 values to sum
    for (const Shape& s : {Shape{4, 6, 5, 7}, Shape{64, 8, 28, 28}, Shape{3, 16, 1, 1}}) {
        for (bool training : {true, false})
            cases.push_back({"batchnorm_forward/f32/" + shapeName(s) + (training ? "/train" : "/eval"),
                             Op::BatchNormForward, {DType::F32}, [s, training](Backend& be, DType) {
                                 const std::int64_t c = s[1];
                                 Tensor x = input(be, s, DType::F32, 140, 2.0f, 5.0f);
                                 Tensor gamma = input(be, {c}, DType::F32, 141), beta = input(be, {c}, DType::F32, 142);
                                 Tensor rm = input(be, {c}, DType::F32, 143, 2.0f, 4.0f);
                                 Tensor rv = input(be, {c}, DType::F32, 144, 0.5f, 2.0f);
                                 Tensor y = be.empty(s), mean = be.empty({c}), rstd = be.empty({c});
                                 BatchNormParams p;
                                 p.eps = 1e-3f;
                                 p.momentum = 0.3f;
                                 p.training = training;
                                 be.batchNormForward(x, gamma, beta, rm, rv, y, mean, rstd, p);
                                 return Outputs{out(be, "y", y), out(be, "mean", mean), out(be, "rstd", rstd),
                                                out(be, "running_mean", rm), out(be, "running_var", rv)};
                             }});
        for (bool acc : {false, true})
            cases.push_back({"batchnorm_backward/f32/" + shapeName(s) + (acc ? "/accumulate" : "/overwrite"),
                             Op::BatchNormBackward, {DType::F32}, [s, acc](Backend& be, DType) {
                                 const std::int64_t c = s[1];
                                 Tensor x = input(be, s, DType::F32, 145);
                                 Tensor gamma = input(be, {c}, DType::F32, 146), beta = input(be, {c}, DType::F32, 147);
                                 Tensor rm = be.zeros({c}), rv = be.zeros({c});
                                 Tensor y = be.empty(s), mean = be.empty({c}), rstd = be.empty({c});
                                 be.batchNormForward(x, gamma, beta, rm, rv, y, mean, rstd, BatchNormParams{});
                                 Tensor dy = input(be, s, DType::F32, 148), dx = be.empty(s);
                                 Tensor dg = input(be, {c}, DType::F32, 149), db = input(be, {c}, DType::F32, 150);
                                 be.batchNormBackward(dy, x, gamma, mean, rstd, dx, dg, db, acc);
                                 return Outputs{out(be, "dx", dx), out(be, "dgamma", dg), out(be, "dbeta", db)};
                             }});
    }

    // embedding: repeated ids make the backward scatter-add collide
    for (const auto& sizes : std::vector<std::array<std::int64_t, 3>>{{40, 50, 16}, {256, 7, 33}}) {
        const std::int64_t n = sizes[0], vocab = sizes[1], dim = sizes[2];
        const std::string sname = "n" + std::to_string(n) + "v" + std::to_string(vocab) + "d" + std::to_string(dim);
        cases.push_back({"embedding_forward/f32/" + sname, Op::EmbeddingForward, {DType::F32},
                         [n, vocab, dim](Backend& be, DType) {
                             Tensor ids = labels(be, n, static_cast<int>(vocab), 90);
                             Tensor table = input(be, {vocab, dim}, DType::F32, 91), y = be.empty({n, dim});
                             be.embeddingForward(ids, table, y);
                             return Outputs{out(be, "y", y)};
                         }});
        for (bool acc : {false, true})
            cases.push_back({"embedding_backward/f32/" + sname + (acc ? "/accumulate" : "/overwrite"),
                             Op::EmbeddingBackward, {DType::F32}, [n, vocab, dim, acc](Backend& be, DType) {
                                 Tensor ids = labels(be, n, static_cast<int>(vocab), 92);
                                 Tensor dy = input(be, {n, dim}, DType::F32, 93);
                                 Tensor dtable = input(be, {vocab, dim}, DType::F32, 94);
                                 be.embeddingBackward(ids, dy, dtable, acc);
                                 return Outputs{out(be, "dtable", dtable)};
                             }});
    }

    // optimizers: two steps each (the first step initialises the state differently)
    struct SgdCase {
        const char* name;
        SgdParams p;
    };
    for (const auto& sc : {SgdCase{"plain", {0.1f, 0.0f, 0.0f, false}}, SgdCase{"momentum", {0.05f, 0.9f, 0.01f, false}},
                           SgdCase{"nesterov", {0.05f, 0.9f, 0.0f, true}}})
        cases.push_back({std::string("sgd_step/f32/") + sc.name, Op::SgdStep, {DType::F32}, [sc](Backend& be, DType) {
                             const Shape s{300, 7};
                             Tensor w = input(be, s, DType::F32, 100), vel = be.zeros(s);
                             for (int step = 0; step < 2; ++step) {
                                 Tensor g = input(be, s, DType::F32, 101 + step);
                                 be.sgdStep(w, g, vel, sc.p, step == 0);
                             }
                             Outputs o{out(be, "param", w)};
                             if (sc.p.momentum != 0.0f) o.push_back(out(be, "velocity", vel));
                             return o;
                         }});
    struct AdamCase {
        const char* name;
        AdamParams p;
    };
    for (const auto& ac : {AdamCase{"adam", {1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, false}},
                           AdamCase{"adam_l2", {1e-2f, 0.8f, 0.99f, 1e-8f, 0.1f, false}},
                           AdamCase{"adamw", {1e-2f, 0.9f, 0.999f, 1e-6f, 0.05f, true}}})
        cases.push_back({std::string("adam_step/f32/") + ac.name, Op::AdamStep, {DType::F32},
                         [ac](Backend& be, DType) {
                             const Shape s{1000};
                             Tensor w = input(be, s, DType::F32, 110), m = be.zeros(s), v = be.zeros(s);
                             for (int step = 1; step <= 2; ++step) {
                                 Tensor g = input(be, s, DType::F32, 110 + step);
                                 be.adamStep(w, g, m, v, ac.p, step);
                             }
                             return Outputs{out(be, "param", w), out(be, "m", m), out(be, "v", v)};
                         }});

    // attention (issue 14): the fused kernel and the unfused reference path, each against the CPU, and the
    // backward; packed QKV (self-attention, several key tiles and query blocks), right-padding lengths (at least
    // one key each, so lse stays finite), a decoding step over a cache longer than the keys in use, head sizes
    // that fill one to four values per lane and one that does not divide 32.
    struct AttnCase {
        const char* name;
        std::int64_t n, tq, tk, heads, dh, capacity;
        bool causal, packed;
        std::vector<std::int32_t> lengths;
    };
    const std::vector<AttnCase> attnCases = {
        {"packed_causal_2x37_h4_d16", 2, 37, 37, 4, 16, 0, true, true, {}},
        {"packed_lengths_3x70_h2_d64", 3, 70, 70, 2, 64, 0, false, true, {70, 33, 1}},
        {"packed_causal_lengths_2x45_h3_d20", 2, 45, 45, 3, 20, 0, true, true, {45, 17}},
        {"decode_1_over_77_of_100_h3_d32", 2, 1, 77, 3, 32, 100, true, false, {}},
        {"block_5_over_40_h1_d128", 1, 5, 40, 1, 128, 64, true, false, {}},
    };
    for (const AttnCase& ac : attnCases) {
        // q, k, v (packed: one tensor) from fixed seeds, on `be`.
        auto make = [ac](Backend& be, Tensor& q, Tensor& k, Tensor& v, Tensor& lens, AttentionParams& p) {
            const std::int64_t d = ac.heads * ac.dh;
            p.heads = ac.heads;
            p.headDim = ac.dh;
            p.causal = ac.causal;
            if (ac.packed) {
                q = k = v = input(be, {ac.n, ac.tq, 3 * d}, DType::F32, 150, -2.0f, 2.0f);
                p.kOffset = d;
                p.vOffset = 2 * d;
            } else {
                q = input(be, {ac.n, ac.tq, d}, DType::F32, 151, -2.0f, 2.0f);
                k = input(be, {ac.n, ac.capacity, d}, DType::F32, 152, -2.0f, 2.0f);
                v = input(be, {ac.n, ac.capacity, d}, DType::F32, 153);
                p.keyLen = ac.tk;
            }
            if (!ac.lengths.empty()) lens = be.uploadI32(ac.lengths, {ac.n});
        };
        for (AttentionKernel kernel : {AttentionKernel::Fused, AttentionKernel::Unfused})
            cases.push_back({std::string("attention_forward/f32/") + (kernel == AttentionKernel::Fused ? "fused/" : "unfused/") +
                                 ac.name,
                             Op::AttentionForward, {DType::F32}, [ac, make, kernel](Backend& be, DType) {
                                 Tensor q, k, v, lens;
                                 AttentionParams p;
                                 make(be, q, k, v, lens, p);
                                 p.kernel = kernel;
                                 Tensor o = input(be, {ac.n, ac.tq, ac.heads * ac.dh}, DType::F32, 154); // overwritten
                                 Tensor lse = be.empty({ac.n, ac.heads, ac.tq});
                                 be.attentionForward(q, k, v, lens.defined() ? &lens : nullptr, o, lse, p);
                                 return Outputs{out(be, "out", o), out(be, "lse", lse)};
                             }});
        cases.push_back({std::string("attention_backward/f32/") + ac.name, Op::AttentionBackward, {DType::F32},
                         [ac, make](Backend& be, DType) {
                             Tensor q, k, v, lens;
                             AttentionParams p;
                             make(be, q, k, v, lens, p);
                             const Tensor* l = lens.defined() ? &lens : nullptr;
                             Tensor o = be.empty({ac.n, ac.tq, ac.heads * ac.dh}), lse = be.empty({ac.n, ac.heads, ac.tq});
                             be.attentionForward(q, k, v, l, o, lse, p);
                             Tensor dout = input(be, o.shape(), DType::F32, 155);
                             Tensor dq = be.zeros(q.shape());
                             Tensor dk = ac.packed ? dq : be.zeros(k.shape());
                             Tensor dv = ac.packed ? dq : be.zeros(v.shape());
                             be.attentionBackward(dout, q, k, v, l, o, lse, dq, dk, dv, p);
                             Outputs res{out(be, "dq", dq)};
                             if (!ac.packed) {
                                 res.push_back(out(be, "dk", dk));
                                 res.push_back(out(be, "dv", dv));
                             }
                             return res;
                         },
                         {OpDesc::uniform(Op::AttentionForward, DType::F32), OpDesc::uniform(Op::AttentionBackward, DType::F32)}});
    }
    // mean pooling over valid steps (a zero length included) and L2 normalisation, forward and backward
    cases.push_back({"mean_pool_forward/f32/4x33x96", Op::MeanPoolForward, {DType::F32}, [](Backend& be, DType) {
                         Tensor x = input(be, {4, 33, 96}, DType::F32, 160);
                         Tensor lens = be.uploadI32({33, 1, 0, 20}, {4});
                         Tensor y = input(be, {4, 96}, DType::F32, 161);
                         be.meanPoolForward(x, &lens, y);
                         return Outputs{out(be, "y", y)};
                     }});
    cases.push_back({"mean_pool_backward/f32/4x33x96", Op::MeanPoolBackward, {DType::F32}, [](Backend& be, DType) {
                         Tensor dy = input(be, {4, 96}, DType::F32, 162);
                         Tensor lens = be.uploadI32({33, 1, 0, 20}, {4});
                         Tensor dx = input(be, {4, 33, 96}, DType::F32, 163);
                         be.meanPoolBackward(dy, &lens, dx);
                         return Outputs{out(be, "dx", dx)};
                     }});
    cases.push_back({"l2_normalize_forward/f32/7x384", Op::L2NormalizeForward, {DType::F32}, [](Backend& be, DType) {
                         Tensor x = input(be, {7, 384}, DType::F32, 164);
                         Tensor y = be.empty({7, 384}), norm = be.empty({7});
                         be.l2NormalizeForward(x, y, norm, 1e-12f);
                         return Outputs{out(be, "y", y), out(be, "norm", norm)};
                     }});
    cases.push_back({"l2_normalize_backward/f32/7x384", Op::L2NormalizeBackward, {DType::F32}, [](Backend& be, DType) {
                         Tensor x = input(be, {7, 384}, DType::F32, 164);
                         Tensor y = be.empty({7, 384}), norm = be.empty({7});
                         be.l2NormalizeForward(x, y, norm, 1e-12f);
                         Tensor dx = input(be, {7, 384}, DType::F32, 166); // overwritten
                         be.l2NormalizeBackward(input(be, {7, 384}, DType::F32, 165), y, norm, dx, 1e-12f);
                         return Outputs{out(be, "dx", dx)};
                     },
                     {OpDesc::uniform(Op::L2NormalizeForward, DType::F32), OpDesc::uniform(Op::L2NormalizeBackward, DType::F32)}});
    return cases;
}

const std::vector<OpCase>& allCases() {
    static const std::vector<OpCase> cases = buildCases();
    return cases;
}

std::string unsupportedBy(const Backend& be, const OpCase& c) {
    const std::vector<OpDesc> descs =
        c.descs.empty() ? std::vector<OpDesc>{OpDesc::uniform(c.op, c.dtypes.front())} : c.descs;
    for (const OpDesc& d : descs)
        if (!be.supports(d)) return be.name() + " does not support " + d.toString();
    return {};
}

struct Backends {
    std::shared_ptr<Backend> cuda;
    std::shared_ptr<Backend> cpu;
};

// Both backends (made once, the comparison announced once), or the case is skipped (exit 77 when every
// case is) with the registry's reason.
const Backends& backendsOrSkip() {
    static std::string reason;
    static const Backends b = [] {
        Backends r{test::cudaBackendOrNull(&reason), nullptr};
        if (r.cuda) {
            r.cpu = cpuBackend();
            const DeviceInfo info = r.cuda->info();
            std::printf("comparing %s (%s, sm_%d%d) against %s\n", r.cuda->name().c_str(), info.name.c_str(),
                        info.computeCapabilityMajor, info.computeCapabilityMinor, r.cpu->name().c_str());
        }
        return r;
    }();
    if (!b.cuda) SKIP("no CUDA device: " + reason);
    return b;
}

// One op case against the CPU reference. A REQUIRE or FAIL ends this row only; the next rows still run.
// Prints one line per compared output: its measured error and the tolerance it is held to.
void compareRow(const Backends& be, const OpCase& c, int& notSupported) {
    // "Not supported" is its own outcome: reported with the reason, never as wrong.
    for (const Backend* b : {be.cpu.get(), be.cuda.get()})
        if (const auto why = unsupportedBy(*b, c); !why.empty()) {
            std::printf("  %-55s not supported: %s\n", c.name.c_str(), why.c_str());
            ++notSupported;
            return;
        }

    const DType primary = c.dtypes.front();
    Outputs ref, got;
    try {
        ref = c.run(*be.cpu, primary);
    } catch (const std::exception& e) {
        FAIL("cpu reference failed: " + std::string(e.what()));
    }
    try {
        got = c.run(*be.cuda, primary);
        be.cuda->synchronize();
    } catch (const std::exception& e) {
        FAIL("cuda failed: " + std::string(e.what()));
    }
    REQUIRE_MSG(got.size() == ref.size(),
                std::to_string(got.size()) + " outputs from cuda, " + std::to_string(ref.size()) + " from cpu");
    for (std::size_t k = 0; k < ref.size(); ++k) {
        const Output& r = ref[k];
        const Output& g = got[k];
        REQUIRE_MSG(g.values.size() == r.values.size(), r.name + ": " + std::to_string(g.values.size()) +
                                                            " values from cuda, " + std::to_string(r.values.size()) +
                                                            " from cpu");
        bool nonZero = false;
        for (float v : r.values) nonZero = nonZero || v != 0.0f;
        if (c.zeroOutput) {
            REQUIRE_MSG(!nonZero, "reference output " + r.name + " of a case that expects zeros is not all zeros");
            std::size_t bad = 0;
            for (float v : g.values) bad += v != 0.0f ? 1 : 0;
            std::printf("  %-55s %-8s %-6s %zu of %zu not zero (all zeros required)\n", c.name.c_str(),
                        r.name.c_str(), dtypeName(r.dtype), bad, g.values.size());
            REQUIRE_MSG(bad == 0, "wrong: " + r.name + ": " + std::to_string(bad) + " values not zero");
            continue;
        }
        REQUIRE_MSG(nonZero, "reference output " + r.name + " is all zeros: the case tests nothing");
        const Tolerance* row = toleranceFor(r.dtype);
        REQUIRE_MSG(row, "no tolerance row for " + std::string(dtypeName(r.dtype)) + " (output " + r.name +
                             "): add one to kTolerances, saying where its number comes from");
        const double tol = row->normalizedError;
        if (tol == 0.0) {
            std::size_t bad = 0, first = 0;
            for (std::size_t i = 0; i < r.values.size(); ++i)
                if (g.values[i] != r.values[i] && bad++ == 0) first = i;
            std::printf("  %-55s %-8s %-6s %zu of %zu differ (exact required)\n", c.name.c_str(), r.name.c_str(),
                        dtypeName(r.dtype), bad, r.values.size());
            REQUIRE_MSG(bad == 0, "wrong: " + r.name + ": " + std::to_string(bad) + " of " +
                                      std::to_string(r.values.size()) + " integers differ, first at " +
                                      std::to_string(first) + " (cuda " + std::to_string(g.values[first]) + ", cpu " +
                                      std::to_string(r.values[first]) + ")");
        } else {
            const double err = test::normalizedError(g.values, r.values);
            const double maxDiff = test::maxAbsDiff(g.values, r.values);
            std::printf("  %-55s %-8s %-6s normalized error %.3e %s %.1e  max |diff| %.3e\n", c.name.c_str(),
                        r.name.c_str(), dtypeName(r.dtype), err, err <= tol ? "<=" : "> ", tol, maxDiff);
            REQUIRE_MSG(err <= tol, "wrong: " + r.name + ": normalized error " + std::to_string(err) + " > " +
                                        std::to_string(tol) + " (" + dtypeName(r.dtype) + " tolerance: " + row->why +
                                        "), max |diff| " + std::to_string(maxDiff));
        }
    }
}

// exitReleasesTheBackendCleanly's child: use the registry's CUDA backend, then leave through exit() as main's
// return does, with the backend still registered.
const bool kExitChild = [] {
    if (!std::getenv("LATHE_TEST_EXIT_CHILD")) return false;
    { // what a caller holds is gone by the time main returns; only the registry's reference is left
        auto cuda = backendFor("cuda");
        Tensor a = cuda->upload(test::randomVector(256 * 256, 88), {256, 256}), c = cuda->empty({256, 256});
        cuda->gemm(a, Trans::No, a, Trans::Yes, c);
        (void)cuda->downloadF32(c);
    }
    std::exit(0);
}();

} // namespace

TEST_CASE(everyOpIsCovered) {
    backendsOrSkip();
    // A new Op added to the interface must get rows here.
    std::vector<bool> seen(static_cast<std::size_t>(Op::Count), false);
    for (const auto& c : allCases()) seen[static_cast<std::size_t>(c.op)] = true;
    for (std::size_t i = 0; i < seen.size(); ++i)
        REQUIRE_MSG(seen[i], std::string("no harness row for op ") + opName(static_cast<Op>(i)));
}

TEST_CASE(matchesCpu) {
    const Backends& be = backendsOrSkip();
    int notSupported = 0;
    for (const OpCase& c : allCases()) {
        ROW(c.name);
        try {
            compareRow(be, c, notSupported);
        } catch (const minitest::RequireFailed&) {
        } catch (const std::exception& e) {
            minitest::fail(__FILE__, __LINE__, std::string("unexpected exception: ") + e.what());
        }
    }
    std::printf("  %zu rows, %d not supported\n", allCases().size(), notSupported);
}

TEST_CASE(unsupportedPairThrows) {
    const Backends& be = backendsOrSkip();
    Tensor a = be.cuda->zeros({4, 4}, DType::I8);
    Tensor c = be.cuda->zeros({4, 4}, DType::I8);
    REQUIRE(!be.cuda->supports(OpDesc::uniform(Op::Gemm, DType::I8)));
    try {
        be.cuda->gemm(a, Trans::No, a, Trans::No, c);
        FAIL("gemm with i8 did not throw");
    } catch (const BackendError& e) {
        CHECK_EQ(std::string(e.what()), be.cuda->name() + " does not support gemm i8 x i8 -> i8 (acc i32)");
    }
    // Nothing is claimed for the formats that have no CUDA kernels yet; the W8A8 GEMM has them (ops_int8.cpp).
    REQUIRE(!be.cuda->supports(OpDesc::convert(DType::F32, DType::Q4_0)));
    REQUIRE(be.cuda->supports(int8GemmDesc()));
    REQUIRE(!be.cuda->supports(OpDesc::gemm(DType::I8, DType::I8, DType::I32, DType::I32)));
}

TEST_CASE(outOfRangeLabelsThrow) {
    const Backends& be = backendsOrSkip();
    Backend& cuda = *be.cuda;
    const std::pair<const char*, int> rows[] = {{"too large", 10}, {"negative", -1}};
    for (const auto& [label, badLabel] : rows) {
        ROW(label);
        try {
            auto lab = test::randomLabels(8, 10, 5);
            lab[6] = badLabel;
            Tensor logits = input(cuda, {8, 10}, DType::F32, 6);
            Tensor labelsT = cuda.uploadI32(lab, {8});
            Tensor losses = cuda.empty({8}), d = cuda.empty({8, 10});
            try {
                cuda.softmaxCrossEntropy(logits, labelsT, losses, d, 1.0f);
                FAIL("an out-of-range label did not throw");
            } catch (const BackendError& e) {
                const std::string msg = e.what();
                REQUIRE_MSG(msg.find("label " + std::to_string(badLabel)) != std::string::npos, msg);
                REQUIRE_MSG(msg.find("row 6") != std::string::npos, msg);
            }
            // The backend is still usable afterwards (the device-side check is not a sticky fault).
            lab[6] = 3;
            Tensor good = cuda.uploadI32(lab, {8});
            cuda.softmaxCrossEntropy(logits, good, losses, d, 1.0f);
            for (float l : cuda.downloadF32(losses)) REQUIRE(std::isfinite(l) && l > 0.0f);
        } catch (const minitest::RequireFailed&) {
        }
    }
}

TEST_CASE(outOfRangeIdsThrow) {
    Backend& cuda = *backendsOrSkip().cuda;
    Tensor table = input(cuda, {5, 3}, DType::F32, 7);
    Tensor ids = cuda.uploadI32({0, 4, 5, 1}, {4});
    Tensor y = cuda.empty({4, 3});
    try {
        cuda.embeddingForward(ids, table, y);
        FAIL("an out-of-range id did not throw");
    } catch (const BackendError& e) {
        const std::string msg = e.what();
        REQUIRE_MSG(msg.find("id 5") != std::string::npos && msg.find("position 2") != std::string::npos, msg);
    }
}

TEST_CASE(wrongDeviceTensorThrows) {
    const Backends& be = backendsOrSkip();
    Tensor onCpu = be.cpu->upload(test::randomVector(16, 8), {16});
    Tensor y = be.cuda->empty({16});
    CHECK_THROWS_AS(be.cuda->relu(onCpu, y), BackendError);
}

// Channels that groups do not divide, and a weight that is not (K, C/groups, KH, KW), are refused with the
// op and the shapes in the message, before anything is launched.
TEST_CASE(groupedConvShapeErrorsThrow) {
    Backend& cuda = *backendsOrSkip().cuda;
    struct Row {
        const char* label;
        std::int64_t c, k, groups, wIn;
        const char* expected;
    };
    const Row rows[] = {
        {"C not divisible", 6, 8, 4, 1, "groups=4 must divide both the input channels (C=6) and the output channels (K=8)"},
        {"K not divisible", 4, 6, 4, 1, "groups=4 must divide both the input channels (C=4) and the output channels (K=6)"},
        {"weight with all input channels", 4, 4, 2, 4, "expected f32[4, 2, 3, 3] (K, C/groups, KH, KW) for C=4, K=4, groups=2"},
        {"depthwise weight wrong", 3, 3, 3, 3, "expected f32[3, 1, 3, 3] (K, C/groups, KH, KW) for C=3, K=3, groups=3"}};
    for (const Row& r : rows) {
        ROW(r.label);
        Conv2dGeometry g;
        g.batch = 2, g.inChannels = r.c, g.height = 5, g.width = 5, g.outChannels = r.k, g.kernelH = g.kernelW = 3;
        g.padH = g.padW = 1;
        g.groups = r.groups;
        Tensor x = input(cuda, {2, r.c, 5, 5}, DType::F32, 70), w = input(cuda, {r.k, r.wIn, 3, 3}, DType::F32, 71);
        Tensor y = cuda.empty({2, r.k, 5, 5}), dx = cuda.empty({2, r.c, 5, 5});
        const std::vector<std::pair<std::string, std::function<void()>>> ops = {
            {"conv2d_forward", [&] { cuda.conv2dForward(x, w, y, g); }},
            {"conv2d_backward_data", [&] { cuda.conv2dBackwardData(y, w, dx, g); }},
            {"conv2d_backward_weight", [&] { cuda.conv2dBackwardWeight(x, y, w, g, false); }}};
        for (const auto& [op, call] : ops) {
            try {
                call();
                FAIL(op + " did not throw");
            } catch (const BackendError& e) {
                const std::string msg = e.what();
                CHECK_MSG(msg.find(op + ": ") != std::string::npos && msg.find(r.expected) != std::string::npos, msg);
            }
        }
    }
}

TEST_CASE(byteAccountingFollowsAllocations) {
    Backend& cuda = *backendsOrSkip().cuda;
    cuda.synchronize();
    const std::uint64_t before = cuda.currentAllocatedBytes();
    cuda.resetPeakAllocated();
    {
        Tensor big = cuda.empty({1 << 20}); // 4 MiB
        CHECK_EQ(cuda.currentAllocatedBytes(), before + (4u << 20));
        REQUIRE(cuda.peakAllocatedBytes() >= before + (4u << 20));
    }
    CHECK_EQ(cuda.currentAllocatedBytes(), before);
    REQUIRE(cuda.peakAllocatedBytes() >= before + (4u << 20));
}

TEST_CASE(outOfMemoryIsABackendError) {
    Backend& cuda = *backendsOrSkip().cuda;
    const DeviceInfo info = cuda.info();
    const std::size_t tooMuch = static_cast<std::size_t>(info.memoryTotalBytes) * 4;
    try {
        cuda.allocate(tooMuch);
        FAIL("allocating four times the device memory did not throw");
    } catch (const BackendError& e) {
        const std::string msg = e.what();
        REQUIRE_MSG(msg.find("out of device memory") != std::string::npos && msg.find("free") != std::string::npos,
                    msg);
    }
    Tensor ok = cuda.zeros({16}); // still usable
    CHECK_EQ(cuda.downloadF32(ok).size(), std::size_t{16});
}

TEST_CASE(timerMeasuresDeviceWork) {
    Backend& cuda = *backendsOrSkip().cuda;
    Tensor a = input(cuda, {512, 512}, DType::F32, 9), c = cuda.empty({512, 512});
    auto timer = cuda.createTimer();
    timer->start();
    for (int i = 0; i < 10; ++i) cuda.gemm(a, Trans::No, a, Trans::No, c);
    timer->stop();
    const double ms = timer->elapsedMs();
    std::printf("  10 gemm 512x512x512 f32: %.3f ms\n", ms);
    REQUIRE_MSG(ms > 0.0 && ms < 10000.0, std::to_string(ms));
}

TEST_CASE(infoDescribesTheDevice) {
    const DeviceInfo info = backendsOrSkip().cuda->info();
    CHECK_EQ(info.backend, std::string("cuda"));
    REQUIRE(info.available);
    REQUIRE(!info.name.empty());
    REQUIRE(info.memoryTotalBytes > 0 && info.memoryFreeBytes <= info.memoryTotalBytes);
    REQUIRE(info.computeCapabilityMajor >= 7);
    REQUIRE(!info.runtimeVersion.empty() && !info.driverVersion.empty() && !info.libraryVersion.empty());
}

// Geometry a backend cannot run is refused with the op named, before anything divides by a stride (stride 0
// was a SIGFPE on the GPU path): kernel or stride 0, negative padding, an input smaller than the kernel.
TEST_CASE(badGeometryThrows) {
    Backend& cuda = *backendsOrSkip().cuda;
    struct Row {
        const char* label;
        std::int64_t kernel, stride, pad, size;
    };
    const Row rows[] = {{"stride 0", 3, 0, 1, 6}, {"kernel 0", 0, 1, 0, 6}, {"negative padding", 3, 1, -1, 6},
                        {"input smaller than the kernel", 5, 2, 0, 3}};
    for (const Row& r : rows) {
        ROW(r.label);
        Conv2dGeometry g;
        g.batch = 1, g.inChannels = 2, g.height = g.width = r.size, g.outChannels = 3;
        g.kernelH = g.kernelW = r.kernel, g.strideH = g.strideW = r.stride, g.padH = g.padW = r.pad;
        Pool2dGeometry pg;
        pg.batch = 1, pg.channels = 2, pg.height = pg.width = r.size;
        pg.kernelH = pg.kernelW = r.kernel, pg.strideH = pg.strideW = r.stride, pg.padH = pg.padW = r.pad;
        Tensor x = input(cuda, {1, 2, r.size, r.size}, DType::F32, 80), w = cuda.empty({3, 2, 3, 3});
        Tensor y = cuda.empty({1, 3, 4, 4}), cols = cuda.empty({16, 18}), am = cuda.empty({1, 2, 2, 2}, DType::I32);
        Tensor py = cuda.empty({1, 2, 2, 2});
        const std::vector<std::tuple<std::string, std::string, std::function<void()>>> ops = {
            {"conv2d_forward", "convolution", [&] { cuda.conv2dForward(x, w, y, g); }},
            {"conv2d_backward_data", "convolution", [&] { cuda.conv2dBackwardData(y, w, x, g); }},
            {"conv2d_backward_weight", "convolution", [&] { cuda.conv2dBackwardWeight(x, y, w, g, false); }},
            {"im2col_rows", "convolution", [&] { cuda.im2colRows(x, cols, g); }},
            {"maxpool2d_forward", "pooling", [&] { cuda.maxPool2dForward(x, py, am, pg); }},
            {"maxpool2d_backward", "pooling", [&] { cuda.maxPool2dBackward(py, am, x, pg); }}};
        for (const auto& [op, kind, call] : ops) {
            try {
                call();
                FAIL(op + " did not throw");
            } catch (const BackendError& e) {
                const std::string msg = e.what();
                CHECK_MSG(msg.find(op + ": invalid " + kind + " geometry") != std::string::npos, msg);
            }
        }
    }
    cuda.synchronize(); // nothing was launched, nothing faulted
}

// A NaN anywhere in a pooling window wins, the window's first one, as on the CPU (and in PyTorch).
TEST_CASE(maxPoolPropagatesNaN) {
    const Backends& be = backendsOrSkip();
    Pool2dGeometry g;
    g.batch = 2, g.channels = 3, g.height = g.width = 8; // 2x2 windows, stride 2
    const std::int64_t n = 2 * 3 * 8 * 8;
    auto v = test::randomVector(static_cast<std::size_t>(n), 81);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (std::int64_t i = 0; i < n; i += 7) v[static_cast<std::size_t>(i)] = nan; // first, second, ... in windows
    std::vector<std::vector<float>> ys, ams;
    for (Backend* b : {be.cpu.get(), be.cuda.get()}) {
        Tensor x = b->upload(v, {2, 3, 8, 8}), y = b->empty({2, 3, 4, 4}), am = b->empty({2, 3, 4, 4}, DType::I32);
        b->maxPool2dForward(x, y, am, g);
        ys.push_back(b->downloadF32(y));
        ams.push_back(b->downloadF32(am));
    }
    int nans = 0;
    for (std::size_t i = 0; i < ys[0].size(); ++i) {
        CHECK_MSG(std::isnan(ys[0][i]) == std::isnan(ys[1][i]), "window " + std::to_string(i) + ": cpu " +
                                                                     std::to_string(ys[0][i]) + ", cuda " +
                                                                     std::to_string(ys[1][i]));
        CHECK_MSG(ams[0][i] == ams[1][i], "window " + std::to_string(i) + " argmax: cpu " + std::to_string(ams[0][i]) +
                                              ", cuda " + std::to_string(ams[1][i]));
        nans += std::isnan(ys[0][i]) ? 1 : 0;
    }
    std::printf("  %d of %zu windows hold a NaN; both backends agree on each\n", nans, ys[0].size());
    REQUIRE(nans > 10);
}

// With bad rows all over a large batch (many blocks racing), the error names the first one, every time.
TEST_CASE(firstBadRowIsReported) {
    Backend& cuda = *backendsOrSkip().cuda;
    const std::int64_t rows = 8192;
    auto lab = test::randomLabels(static_cast<std::size_t>(rows), 10, 82);
    for (std::int64_t r : {8000, 4096, 517, 6000}) lab[static_cast<std::size_t>(r)] = 10 + static_cast<int>(r % 7);
    Tensor logits = input(cuda, {rows, 10}, DType::F32, 83), labelsT = cuda.uploadI32(lab, {rows});
    Tensor losses = cuda.empty({rows}), d = cuda.empty({rows, 10});
    for (int attempt = 0; attempt < 5; ++attempt) {
        try {
            cuda.softmaxCrossEntropy(logits, labelsT, losses, d, 1.0f);
            FAIL("out-of-range labels did not throw");
        } catch (const BackendError& e) {
            const std::string msg = e.what();
            REQUIRE_MSG(msg.find("label 16 at row 517 ") != std::string::npos, msg); // 10 + 517 % 7
        }
    }
    std::vector<std::int32_t> ids(20000, 1);
    ids[19999] = -3, ids[12345] = 99, ids[777] = 50;
    Tensor idsT = cuda.uploadI32(ids, {20000}), table = input(cuda, {50, 4}, DType::F32, 84);
    Tensor y = cuda.empty({20000, 4});
    try {
        cuda.embeddingForward(idsT, table, y);
        FAIL("out-of-range ids did not throw");
    } catch (const BackendError& e) {
        const std::string msg = e.what();
        REQUIRE_MSG(msg.find("id 50 at position 777 ") != std::string::npos, msg);
    }
}

// A bad id is refused before the gradient is touched: dtable stays as it was, accumulated into or not.
TEST_CASE(embeddingBackwardLeavesGradientOnBadIds) {
    Backend& cuda = *backendsOrSkip().cuda;
    Tensor ids = cuda.uploadI32({0, 3, 7, 1}, {4}), dy = input(cuda, {4, 5}, DType::F32, 85);
    for (bool accumulate : {false, true}) {
        ROW(accumulate ? "accumulate" : "overwrite");
        Tensor dtable = input(cuda, {6, 5}, DType::F32, 86);
        const auto before = cuda.downloadF32(dtable);
        CHECK_THROWS_AS(cuda.embeddingBackward(ids, dy, dtable, accumulate), BackendError);
        CHECK(cuda.downloadF32(dtable) == before);
    }
}

// Shapes and settings the CPU refuses are refused on the GPU too, never run silently.
TEST_CASE(emptyClassesAndNesterovWithoutMomentumThrow) {
    const Backends& be = backendsOrSkip();
    for (Backend* b : {be.cpu.get(), be.cuda.get()}) {
        ROW(b->name());
        Tensor x = b->empty({4, 0}), am = b->empty({4}, DType::I32), labelsT = b->uploadI32({0, 0, 0, 0}, {4});
        Tensor losses = b->empty({4}), d = b->empty({4, 0}), parts = b->empty({4, 2});
        CHECK_THROWS_AS(b->argmaxRows(x, am), BackendError);
        CHECK_THROWS_AS(b->softmaxCrossEntropy(x, labelsT, losses, d, 1.0f), BackendError);
        CHECK_THROWS_AS(b->distillationLoss(x, x, labelsT, 2.0f, 0.5f, losses, parts, d, 1.0f), BackendError);
        Tensor w = b->upload({1, 2, 3}, {3}), g = b->upload({1, 1, 1}, {3}), vel = b->zeros({3});
        SgdParams p;
        p.nesterov = true; // momentum 0
        CHECK_THROWS_AS(b->sgdStep(w, g, vel, p, true), BackendError);
    }
}

// copyFromHost must not read the source after it returns: callers overwrite or free it at once. 40 MiB (ten
// staging chunks) and a small upload, each source scribbled over and freed straight after the call.
TEST_CASE(uploadDoesNotReadTheSourceAfterReturning) {
    Backend& cuda = *backendsOrSkip().cuda;
    for (std::size_t count : {std::size_t{10} << 20, std::size_t{1000}}) {
        ROW(std::to_string(count) + " floats");
        const auto expected = test::randomVector(count, 87);
        std::vector<Tensor> kept;
        for (int round = 0; round < 3; ++round) {
            auto* src = new std::vector<float>(expected);
            Tensor t = cuda.empty({static_cast<std::int64_t>(count)});
            cuda.copyFromHost(t, src->data());
            std::fill(src->begin(), src->end(), -1.0f);
            delete src;
            kept.push_back(t);
        }
        for (const Tensor& t : kept) REQUIRE(cuda.downloadF32(t) == expected);
    }
}

TEST_CASE(timerRestartForgetsTheLastStop) {
    Backend& cuda = *backendsOrSkip().cuda;
    auto timer = cuda.createTimer();
    timer->start();
    timer->stop();
    REQUIRE(timer->elapsedMs() >= 0.0);
    timer->start();
    CHECK_THROWS_AS(timer->elapsedMs(), BackendError); // not stopped since the restart
    timer->stop();
    REQUIRE(timer->elapsedMs() >= 0.0);
}

// A program that uses the registry's CUDA backend and returns from main must release it while the CUDA runtime
// still runs: the child (this executable again) exits 0 and prints no error on the way out.
TEST_CASE(exitReleasesTheBackendCleanly) {
    backendsOrSkip();
    int pipeFds[2];
    REQUIRE(pipe(pipeFds) == 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipeFds[1], 2);
    posix_spawn_file_actions_addclose(&actions, pipeFds[0]);
    char self[] = "/proc/self/exe";
    char* argv[] = {self, nullptr};
    std::vector<std::string> envStore = {"LATHE_TEST_EXIT_CHILD=1"};
    for (char** e = environ; *e; ++e) envStore.emplace_back(*e);
    std::vector<char*> envp;
    for (auto& e : envStore) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv, envp.data());
    posix_spawn_file_actions_destroy(&actions);
    close(pipeFds[1]);
    REQUIRE_MSG(rc == 0, std::string("posix_spawn: ") + std::strerror(rc));
    std::string err;
    char buf[512];
    for (ssize_t got; (got = read(pipeFds[0], buf, sizeof buf)) > 0;) err.append(buf, static_cast<std::size_t>(got));
    close(pipeFds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status " + std::to_string(status) + ": " + err);
    CHECK_MSG(err.empty(), "the child printed on exit: " + err);
}

// Work recorded as a CUDA graph computes what the ops compute when called, and a replay picks up new input
// written into the same buffer; temporaries made and dropped inside the recording are freed inside it.
TEST_CASE(capturedWorkReplaysOnNewInput) {
    const Backends& be = backendsOrSkip();
    REQUIRE(be.cpu->capture([] { return std::vector<Tensor>{}; }) == nullptr); // nothing to record on the CPU
    Backend& cuda = *be.cuda;
    Tensor x = input(cuda, {4, 64}, DType::F32, 90), w = input(cuda, {32, 64}, DType::F32, 91);
    auto forward = [&] {
        Tensor y = cuda.empty({4, 32});
        cuda.gemm(x, Trans::No, w, Trans::Yes, y);
        Tensor z = cuda.empty({4, 32});
        cuda.relu(y, z); // y is dropped inside the recording
        return std::vector<Tensor>{z};
    };
    (void)forward();
    cuda.synchronize();
    const std::uint64_t before = cuda.currentAllocatedBytes();
    {
        auto work = cuda.capture(forward);
        REQUIRE(work && work->outputs().size() == 1);
        CHECK(cuda.downloadF32(work->outputs()[0]) == cuda.downloadF32(forward()[0]));
        for (std::uint64_t seed : {92, 93, 94}) {
            const auto fresh = test::randomVector(4 * 64, seed);
            cuda.copyFromHost(x, fresh.data());
            work->replay();
            const auto replayed = cuda.downloadF32(work->outputs()[0]);
            CHECK(replayed == cuda.downloadF32(forward()[0]));
        }
    }
    cuda.synchronize();
    CHECK_EQ(cuda.currentAllocatedBytes(), before);
}

MINI_TEST_MAIN()

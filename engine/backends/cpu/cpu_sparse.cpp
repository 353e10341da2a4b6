// CPU sparse-weight products: y (N, out) = x (N, in) @ W^T with W in compressed sparse rows or in the 2:4
// format (the pruned Linear's inference paths). One kernel serves both, over each format's view of a row's
// stored weights as (value, column) pairs: small batches gather x per stored weight; larger ones transpose
// x once so that each stored weight is an axpy over a contiguous tile of the batch.
#include "engine/backends/cpu/cpu_backend_impl.h"

#include "engine/backends/sparse24.h"
#include "engine/core/errors.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace lathe::cpu {
namespace {

// Batch columns per tile of the transposed path: 16 floats are one cache line of x^T per nonzero and
// two AVX registers of accumulator. Measured on the 784 -> 256 layer at b256 (one thread): 16 ran 2-5x
// faster than 8, 24, 32, 64 or 128, whose accumulators no longer stay in registers.
constexpr std::int64_t kTile = 16;
// Up to this batch the gather path runs: the transpose of x costs more than it saves on a few rows.
// (Four partial sums per row instead of one were measured no faster at b1: the gathers bound it.)
constexpr std::int64_t kGatherMaxBatch = 4;
// Multiply-adds a task should get at least, so thread wake-ups stay small against the work.
constexpr std::int64_t kMinTaskMacs = 1 << 15;

void checkCsr(const std::int32_t* rowPtr, std::int64_t out, const std::int32_t* col, std::int64_t nnz,
              std::int64_t in) {
    if (rowPtr[0] != 0 || rowPtr[out] != nnz)
        throw BackendError("cpu spmm_csr: rowPtr must run from 0 to nnz (" + std::to_string(nnz) + "), got " +
                           std::to_string(rowPtr[0]) + " .. " + std::to_string(rowPtr[out]));
    for (std::int64_t o = 0; o < out; ++o)
        if (rowPtr[o + 1] < rowPtr[o])
            throw BackendError("cpu spmm_csr: rowPtr decreases at row " + std::to_string(o));
    for (std::int64_t i = 0; i < nnz; ++i)
        if (col[i] < 0 || col[i] >= in)
            throw BackendError("cpu spmm_csr: colIdx[" + std::to_string(i) + "] = " + std::to_string(col[i]) +
                               " is outside [0, " + std::to_string(in) + ")");
}

// Positions 0..3 name columns of the matrix in every full group; in a last, partial group of width
// in % 4 they must stay below that width (the kernel reads x without bounds checks).
void checkSparse24Tail(const std::uint8_t* meta, std::int64_t out, std::int64_t metaPerRow, std::int64_t in) {
    const std::int64_t width = in % Sparse24Layout::kGroup, last = sparse24Groups(in) - 1;
    if (width == 0) return;
    for (std::int64_t o = 0; o < out; ++o) {
        const int nibble = (meta[o * metaPerRow + last / 2] >> (4 * (last % 2))) & 0xf;
        if ((nibble & 3) >= width || (nibble >> 2) >= width)
            throw BackendError("cpu spmm_24: row " + std::to_string(o) + ", group " + std::to_string(last) +
                               " names a position past the last column (" + std::to_string(in) + " columns)");
    }
}

// Each format visits row o's stored weights as f(value, column of x), in storage order.
struct CsrWeights {
    const std::int32_t* rp; // (out + 1)
    const std::int32_t* ci; // (nnz)
    const float* pv;        // (nnz)
    template <class F>
    __attribute__((always_inline)) void forRow(std::int64_t o, F&& f) const {
        for (std::int32_t k = rp[o]; k < rp[o + 1]; ++k) f(pv[k], std::int64_t{ci[k]});
    }
};

// The 2:4 format (sparse24.h): one metadata byte holds the positions of two groups (four stored values),
// so a row is walked a byte at a time, an odd last group alone.
struct Sparse24Weights {
    const float* pv;        // (out, kept)
    const std::uint8_t* pm; // (out, metaPerRow)
    std::int64_t kept, metaPerRow;
    template <class F>
    __attribute__((always_inline)) void forRow(std::int64_t o, F&& f) const {
        const float* v = pv + o * kept;           // (kept)
        const std::uint8_t* m = pm + o * metaPerRow; // (metaPerRow)
        const std::int64_t fullBytes = kept / 4;
        for (std::int64_t j = 0; j < fullBytes; ++j, v += 4) {
            const unsigned b = m[j];
            const std::int64_t c = 8 * j;
            f(v[0], c + (b & 3));
            f(v[1], c + ((b >> 2) & 3));
            f(v[2], c + 4 + ((b >> 4) & 3));
            f(v[3], c + 4 + (b >> 6));
        }
        if (kept % 4) { // an odd number of groups: the last one sits in the low nibble
            const unsigned b = m[fullBytes];
            f(v[0], 8 * fullBytes + (b & 3));
            f(v[1], 8 * fullBytes + ((b >> 2) & 3));
        }
    }
};

// Eight floats: one AVX register in the AVX2 build, two SSE registers in the baseline one.
using Float8 = float __attribute__((vector_size(32)));

template <class Weights>
inline __attribute__((always_inline)) void rowsTiled(const Weights& w, const float* xT, std::int64_t n,
                                                     std::int64_t out, std::int64_t b, std::int64_t e, float* py) {
    static_assert(kTile == 16, "a full tile is two Float8 accumulators");
    alignas(64) float acc[kTile];
    for (std::int64_t t0 = 0; t0 < n; t0 += kTile) {
        const std::int64_t len = std::min(kTile, n - t0);
        for (std::int64_t o = b; o < e; ++o) {
            if (len == kTile) {
                // Written with vector types: left to the auto-vectorizer, the 2:4 instantiation of this
                // loop came out as 16 scalar FMAs and ran 3-5x slower than the CSR one at b256.
                Float8 lo = {}, hi = {};
                w.forRow(o, [&](float v, std::int64_t c) __attribute__((always_inline)) {
                    const float* xc = xT + c * n + t0; // (kTile)
                    Float8 x0, x1;
                    std::memcpy(&x0, xc, sizeof x0);
                    std::memcpy(&x1, xc + 8, sizeof x1);
                    lo += v * x0;
                    hi += v * x1;
                });
                std::memcpy(acc, &lo, sizeof lo);
                std::memcpy(acc + 8, &hi, sizeof hi);
            } else {
                std::fill(acc, acc + kTile, 0.0f);
                w.forRow(o, [&](float v, std::int64_t c) __attribute__((always_inline)) {
                    const float* xc = xT + c * n + t0; // (len)
                    for (std::int64_t t = 0; t < len; ++t) acc[t] += v * xc[t];
                });
            }
            for (std::int64_t t = 0; t < len; ++t) py[(t0 + t) * out + o] = acc[t];
        }
    }
}

// The build targets baseline x86-64 (SSE2); the same loop compiled for AVX2 + FMA ran 1.3-1.7x faster
// where the CPU has them, so it is picked at run time.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
template <class Weights>
__attribute__((target("avx2,fma"))) void rowsTiledAvx2(const Weights& w, const float* xT, std::int64_t n,
                                                       std::int64_t out, std::int64_t b, std::int64_t e, float* py) {
    rowsTiled(w, xT, n, out, b, e, py);
}
bool haveAvx2() {
    static const bool have = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return have;
}
#endif

template <class Weights>
void rowsTiledBest(const Weights& w, const float* xT, std::int64_t n, std::int64_t out, std::int64_t b,
                   std::int64_t e, float* py) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (haveAvx2()) return rowsTiledAvx2(w, xT, n, out, b, e, py);
#endif
    rowsTiled(w, xT, n, out, b, e, py);
}

} // namespace

// y (N, out) from x (N, in) and one format's stored weights: gather for a few rows, else transpose + tiles.
template <class Weights>
void CpuBackend::sparseProduct(const Weights& w, const Tensor& x, std::int64_t macsPerRow, Tensor& y) {
    const std::int64_t n = x.dim(0), in = x.dim(1), out = y.dim(1);
    if (n == 0 || out == 0) return;
    const float* px = x.ptr<const float>();
    float* py = y.ptr<float>();
    const std::int64_t rowsPerTask = std::max<std::int64_t>(1, kMinTaskMacs / std::max<std::int64_t>(1, macsPerRow));

    if (n <= kGatherMaxBatch) {
        // y[r, o] = sum over row o's stored weights of v * x[r, col]: x's rows are short enough to stay cached.
        forEach(out, [&](std::int64_t b, std::int64_t e) {
            for (std::int64_t r = 0; r < n; ++r) {
                const float* xr = px + r * in; // (in)
                float* yr = py + r * out;      // (out)
                for (std::int64_t o = b; o < e; ++o) {
                    float acc = 0.0f;
                    w.forRow(o, [&](float v, std::int64_t c) __attribute__((always_inline)) { acc += v * xr[c]; });
                    yr[o] = acc;
                }
            }
        }, rowsPerTask);
        return;
    }

    // xT (in, N): each stored weight (o, c) then adds v * xT[c, tile] to a contiguous accumulator.
    std::vector<float> xT(static_cast<std::size_t>(in * n));
    forEach(in, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t r0 = 0; r0 < n; r0 += kTile) { // blocked so that x's rows are read in cache lines
            const std::int64_t r1 = std::min(n, r0 + kTile);
            for (std::int64_t c = b; c < e; ++c)
                for (std::int64_t r = r0; r < r1; ++r) xT[static_cast<std::size_t>(c * n + r)] = px[r * in + c];
        }
    }, std::max<std::int64_t>(1, kInlineElements / 2 / n));

    forEach(out, [&](std::int64_t b, std::int64_t e) { rowsTiledBest(w, xT.data(), n, out, b, e, py); }, rowsPerTask);
}

void CpuBackend::spmmCsr(const Tensor& x, const Tensor& rowPtr, const Tensor& colIdx, const Tensor& values,
                         Tensor& y) {
    const char* op = "spmm_csr";
    checkCpu(x, op, "x");
    checkCpu(rowPtr, op, "rowPtr");
    checkCpu(colIdx, op, "colIdx");
    checkCpu(values, op, "values");
    checkCpu(y, op, "y");
    require(OpDesc::uniform(Op::SpmmCsr, x.dtype()));
    checkDType(values, x.dtype(), op, "values");
    checkDType(y, x.dtype(), op, "y");
    checkDType(rowPtr, DType::I32, op, "rowPtr");
    checkDType(colIdx, DType::I32, op, "colIdx");
    if (x.rank() != 2 || rowPtr.rank() != 1 || rowPtr.numel() < 1)
        throw BackendError("cpu spmm_csr: expects x (N, in) and rowPtr (out + 1), got " + x.describe() + ", " +
                           rowPtr.describe());
    const std::int64_t n = x.dim(0), in = x.dim(1), out = rowPtr.numel() - 1, nnz = colIdx.numel();
    checkShape(colIdx, {nnz}, op, "colIdx");
    checkShape(values, {nnz}, op, "values");
    checkShape(y, {n, out}, op, "y");
    const auto* rp = rowPtr.ptr<const std::int32_t>();
    const auto* ci = colIdx.ptr<const std::int32_t>();
    checkCsr(rp, out, ci, nnz, in);
    if (out == 0) return;
    sparseProduct(CsrWeights{rp, ci, values.ptr<const float>()}, x, std::max<std::int64_t>(1, nnz / out) * n, y);
}

void CpuBackend::spmm24(const Tensor& x, const Tensor& values, const Tensor& meta, Tensor& y) {
    const char* op = "spmm_24";
    checkCpu(x, op, "x");
    checkCpu(values, op, "values");
    checkCpu(meta, op, "meta");
    checkCpu(y, op, "y");
    require(OpDesc::uniform(Op::Spmm24, x.dtype()));
    checkDType(values, x.dtype(), op, "values");
    checkDType(y, x.dtype(), op, "y");
    checkDType(meta, DType::U8, op, "meta");
    if (x.rank() != 2 || values.rank() != 2)
        throw BackendError("cpu spmm_24: expects x (N, in) and values (out, 2 * groups), got " + x.describe() +
                           ", " + values.describe());
    const std::int64_t n = x.dim(0), in = x.dim(1), out = values.dim(0);
    const std::int64_t kept = Sparse24Layout::kKept * sparse24Groups(in), metaPerRow = sparse24MetaBytesPerRow(in);
    checkShape(values, {out, kept}, op, "values");
    checkShape(meta, {out, metaPerRow}, op, "meta");
    checkShape(y, {n, out}, op, "y");
    const auto* pm = meta.ptr<const std::uint8_t>();
    checkSparse24Tail(pm, out, metaPerRow, in);
    sparseProduct(Sparse24Weights{values.ptr<const float>(), pm, kept, metaPerRow}, x, kept * n, y);
}

} // namespace lathe::cpu

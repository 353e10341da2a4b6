// The CUDA backend's weight-only quantized GEMM: y (M, N) = act(x (M, K) @ W^T + bias), W in quant_matrix.h's
// group-wise formats. Up to kGemvMaxBatch rows of x the fused dequantize-GEMV of weight_only.cu reads each code
// once per four rows; above, W is dequantized tile by tile into a scratch f32 buffer, multiplied by cuBLAS
// into the tile's columns of y, and the bias + activation epilogue runs on the tile.
#include "engine/backends/cuda/cuda_backend_impl.h"
#include "engine/backends/cuda/cuda_kernels.h"

#include "engine/core/errors.h"

#include <algorithm>

namespace lathe::cuda {
namespace {

// The GEMV re-reads W once per four rows of x; cuBLAS on a dequantized W reads it once in f32 (4-8x the
// bytes) but runs at tensor-pipe speed. Where they cross has not been measured on a GPU yet: 8 is where the
// GEMV has read the codes twice, still fewer bytes than one f32 copy of W.
constexpr std::int64_t kGemvMaxBatch = 8;
// Scratch f32 bytes for the dequantized tile: the whole of a 4096 x 4096 layer in one tile.
constexpr std::int64_t kScratchBytes = std::int64_t{64} << 20;

} // namespace

void CudaBackend::gemmWeightOnly(const Tensor& x, const QuantizedWeights& w, const Tensor* bias, Activation act,
                                 Tensor& y) {
    const char* op = "gemm_weight_only";
    const bool hasZeros = w.spec.format == WeightFormat::Int4 && !w.spec.symmetric;
    if (hasZeros && !w.zeros.defined())
        throw BackendError("gemm_weight_only: asymmetric int4 weights need zeros, got none");
    const bool doubleQuant = w.spec.format == WeightFormat::Nf4 && w.spec.doubleQuant;
    const Tensor& scaleTensor = doubleQuant ? w.scaleCodes : w.scales;
    if (bias) begin(weightOnlyGemmDesc(w.spec.format), {&x, &w.packed, &scaleTensor, &y, bias});
    else begin(weightOnlyGemmDesc(w.spec.format), {&x, &w.packed, &scaleTensor, &y});
    if (hasZeros) checkOnDevice(w.zeros, op, "zeros");
    if (x.rank() != 2 || x.dtype() != DType::F32)
        throw BackendError("gemm_weight_only: x must be f32 (M, K), got " + x.describe());
    if (w.spec.group < 1)
        throw BackendError("gemm_weight_only: the weights' group must be at least 1, got " +
                           std::to_string(w.spec.group));
    if (w.cols != x.dim(1))
        throw BackendError("gemm_weight_only: x is " + x.describe() + " but the weights have K = " +
                           std::to_string(w.cols) + " columns");
    const std::int64_t m = x.dim(0), n = w.rows, k = w.cols, groups = quantGroups(k, w.spec.group);
    const std::int64_t rowBytes = packedRowBytes(w.spec.format, k);
    checkShape(w.packed, {n, rowBytes}, packedDType(w.spec.format), op, "packed");
    Tensor decoded; // (N, groups): double-quantized nf4's absmax, decoded before the kernels read them
    if (doubleQuant) {
        checkShape(w.scaleCodes, {n, groups}, DType::U8, op, "scale_codes");
        checkShape(w.scaleAbsmax, {(n * groups + kDoubleQuantBlock - 1) / kDoubleQuantBlock}, DType::F32, op,
                   "scale_absmax");
        checkShape(w.scaleOffset, {1}, DType::F32, op, "scale_offset");
        if (!m_dynamicMap.defined()) {
            const auto& map = dynamicMap8();
            m_dynamicMap = upload(std::vector<float>(map.begin(), map.end()), {256});
        }
        decoded = empty({n, groups});
        launchDoubleQuantScales(w.scaleCodes.ptr<std::uint8_t>(), w.scaleAbsmax.ptr<float>(), w.scaleOffset.ptr<float>(),
                                m_dynamicMap.ptr<float>(), n * groups, decoded.ptr<float>(), stream());
    } else {
        checkShape(w.scales, {n, groups}, DType::F32, op, "scales");
    }
    if (hasZeros) checkShape(w.zeros, {n, groups}, DType::U8, op, "zeros");
    checkShape(y, {m, n}, DType::F32, op, "y");
    if (bias) checkShape(*bias, {n}, DType::F32, op, "bias");
    if (m == 0 || n == 0) return;

    const WeightOnlyView view{w.spec.format, w.packed.ptr<std::uint8_t>(),
                              doubleQuant ? decoded.ptr<float>() : w.scales.ptr<float>(),
                              hasZeros ? w.zeros.ptr<std::uint8_t>() : nullptr, n, k, w.spec.group, groups, rowBytes};
    const float* pb = bias ? bias->ptr<float>() : nullptr; // (N)
    if (m <= kGemvMaxBatch || k == 0) { // K = 0: the GEMV writes act(bias) and needs no scratch
        launchWeightOnlyGemv(x.ptr<float>(), view, pb, act, y.ptr<float>(), m, stream()); // (M, N)
        return;
    }
    const std::int64_t tileRows = std::clamp<std::int64_t>(kScratchBytes / (k * std::int64_t{sizeof(float)}), 1, n);
    Tensor scratch = empty({tileRows, k}); // (tileRows, K), stream-ordered: reused by each tile in turn
    for (std::int64_t n0 = 0; n0 < n; n0 += tileRows) {
        const std::int64_t rows = std::min(tileRows, n - n0);
        launchWeightOnlyDequant(view, n0, rows, scratch.ptr<float>(), stream());
        // y[:, n0 : n0 + rows] (M, rows), row stride N = x (M, K) @ tile^T
        m_gemm.run(DType::F32, Trans::No, Trans::Yes, m, rows, k, 1.0f, x.ptr<float>(), k, scratch.ptr<float>(), k,
                   0.0f, y.ptr<float>() + n0, n);
        launchBiasActivation(y.ptr<float>() + n0, m, rows, n, pb ? pb + n0 : nullptr, act, stream());
    }
}

} // namespace lathe::cuda

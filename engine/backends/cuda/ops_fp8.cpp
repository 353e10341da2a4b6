// The CUDA backend's FP8 GEMM (Backend::gemmFp8): x's per-tensor absmax and its E4M3 bytes (fp8.cu), cuBLASLt's
// FP8 GEMM with x's scale as its B scale pointer, then W's per-channel scales, the bias and the activation in one
// pass (fp8.cu). Emulated, and for shapes cuBLASLt's FP8 GEMM does not take (K not a multiple of 16, a 10-class
// head's 16-byte alignment), the same numerics run through the fp8 weight-only kernels: x's E4M3 values in f32,
// W's scales times sx.
#include "engine/backends/cuda/cuda_backend_impl.h"
#include "engine/backends/cuda/cuda_kernels.h"

#include "engine/core/errors.h"

namespace lathe::cuda {

void CudaBackend::gemmFp8(const Tensor& x, const QuantizedWeights& w, const Tensor* bias, Activation act, Fp8Mode mode,
                          Tensor& y) {
    const char* op = "gemm_fp8";
    if (bias) begin(fp8GemmDesc(mode), {&x, &w.packed, &w.scales, &y, bias});
    else begin(fp8GemmDesc(mode), {&x, &w.packed, &w.scales, &y});
    if (w.spec.format != WeightFormat::Fp8 || w.spec.group < w.cols)
        throw BackendError(std::string("cuda gemm_fp8: W must be fp8 with one scale per row, got ") +
                           weightFormatName(w.spec.format) + " group " + std::to_string(w.spec.group));
    if (x.rank() != 2 || x.dtype() != DType::F32 || x.dim(1) != w.cols)
        throw BackendError("cuda gemm_fp8: x must be f32 (M, " + std::to_string(w.cols) + "), got " + x.describe());
    const std::int64_t m = x.dim(0), n = w.rows, k = w.cols;
    checkShape(w.packed, {n, k}, DType::F8E4M3, op, "packed");
    checkShape(w.scales, {n, 1}, DType::F32, op, "scales");
    checkShape(y, {m, n}, DType::F32, op, "y");
    if (bias) checkShape(*bias, {n}, DType::F32, op, "bias");
    if (m == 0 || n == 0) return;

    Tensor amax = empty({1}), sx = empty({1});
    launchFp8Absmax(x.ptr<float>(), x.numel(), amax.ptr<float>(), stream()); // (M, K) -> (1)
    if (mode == Fp8Mode::Native) {
        Tensor xq = empty({m, k}, DType::F8E4M3); // (M, K)
        launchFp8Quantize(x.ptr<float>(), x.numel(), amax.ptr<float>(), xq.ptr<std::uint8_t>(), nullptr,
                          sx.ptr<float>(), stream());
        if (m_gemm.runFp8(m, n, k, xq.data(), w.packed.data(), sx.ptr<float>(), y.ptr<float>())) {
            launchFp8Epilogue(y.ptr<float>(), m, n, w.scales.ptr<float>(), bias ? bias->ptr<float>() : nullptr, act,
                              stream()); // (M, N)
            return;
        }
    }
    Tensor xValues = empty({m, k}); // (M, K): e4m3(x / sx) as f32
    launchFp8Quantize(x.ptr<float>(), x.numel(), amax.ptr<float>(), nullptr, xValues.ptr<float>(), sx.ptr<float>(),
                      stream());
    QuantizedWeights scaled = w;
    scaled.scales = empty({n, 1}); // (N, 1): W's scales times sx
    launchFp8ScaleBy(w.scales.ptr<float>(), sx.ptr<float>(), n, scaled.scales.ptr<float>(), stream());
    gemmWeightOnly(xValues, scaled, bias, act, y);
}

} // namespace lathe::cuda

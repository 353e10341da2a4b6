// The CUDA backend's W8A8 ops: quantize_rows (int8.cu); the weight kept as given, I8 (N, K) row-major, which
// cuBLASLt's int8 GEMM reads as the transposed operand of its "TN" layout; gemm_int8: the exact int32 product
// into a workspace (cuBLASLt, or int8.cu's plain kernel where cuBLASLt has none), then the epilogue kernel.
#include "engine/backends/cuda/cuda_backend_impl.h"
#include "engine/backends/cuda/cuda_kernels.h"

#include "engine/core/errors.h"

namespace lathe::cuda {
namespace {

// Largest K for which every int32 sum is exact whatever the int8 codes: K * 128 * 128 <= 2^31 - 1 (as on the CPU).
constexpr std::int64_t kMaxK = 2147483647LL / (128 * 128);

void checkDTypeOf(const Tensor& t, DType dt, const char* op, const char* what) {
    if (t.dtype() != dt)
        throw BackendError(std::string(op) + ": " + what + " is " + t.describe() + ", expected " + dtypeName(dt));
}

// A scale of `extent` values, or one for the whole tensor.
void checkScale(const Tensor& s, std::int64_t extent, const char* op, const char* what) {
    checkDTypeOf(s, DType::F32, op, what);
    if (s.shape() != Shape{extent} && s.shape() != Shape{1})
        throw BackendError(std::string(op) + ": " + what + " is " + s.describe() + ", expected (" +
                           std::to_string(extent) + ") or (1)");
}

} // namespace

void CudaBackend::quantizeRows(const Tensor& x, Tensor& xq, Tensor& scale, bool dynamic) {
    const char* op = "quantize_rows";
    begin(OpDesc::uniform(Op::QuantizeRows, x.dtype()), {&x, &xq, &scale});
    checkRank(x, 2, op, "x");
    const std::int64_t m = x.dim(0), k = x.dim(1);
    checkShape(xq, {m, k}, DType::I8, op, "xq");
    checkShape(scale, dynamic ? Shape{m} : Shape{1}, DType::F32, op, "scale");
    // x (M, K) -> xq (M, K), scale (M) or (1)
    launchQuantizeRows(x.ptr<float>(), xq.ptr<std::int8_t>(), scale.ptr<float>(), m, k, dynamic, stream());
}

Tensor CudaBackend::prepackInt8(const Tensor& wq) {
    const char* op = "prepack_int8";
    begin(int8GemmDesc(), {&wq});
    checkRank(wq, 2, op, "wq");
    checkDTypeOf(wq, DType::I8, op, "wq");
    if (wq.dim(1) > kMaxK)
        throw BackendError(std::string(op) + ": wq is " + wq.describe() + "; K above " + std::to_string(kMaxK) +
                           " could overflow the int32 sums");
    // A copy, so that the caller may reuse wq: (N, K) I8.
    Tensor packed = empty(wq.shape(), DType::I8);
    copy(wq, packed);
    return packed;
}

void CudaBackend::gemmInt8(const Tensor& xq, const Tensor& xScale, const Tensor& packedW, const Tensor& wScale,
                           const Tensor* bias, Activation act, Tensor& y) {
    const char* op = "gemm_int8";
    begin(int8GemmDesc(), {&xq, &xScale, &packedW, &wScale, &y});
    if (bias) checkOnDevice(*bias, op, "bias");
    checkRank(xq, 2, op, "xq");
    checkDTypeOf(xq, DType::I8, op, "xq");
    checkRank(packedW, 2, op, "packedW");
    checkDTypeOf(packedW, DType::I8, op, "packedW");
    const std::int64_t m = xq.dim(0), k = xq.dim(1), n = packedW.dim(0);
    if (packedW.dim(1) != k)
        throw BackendError(std::string(op) + ": xq is " + xq.describe() + " but packedW is " + packedW.describe() +
                           ": their K differ");
    checkScale(xScale, m, op, "xScale");
    checkScale(wScale, n, op, "wScale");
    if (bias) checkShape(*bias, {n}, DType::F32, op, "bias");
    checkShape(y, {m, n}, DType::F32, op, "y");
    if (m == 0 || n == 0) return;
    Tensor acc = empty({m, n}, DType::I32); // (M, N) the exact sums
    if (!m_gemm.runInt8(m, n, k, xq.data(), packedW.data(), acc.data()))
        launchInt8GemmNaive(xq.ptr<std::int8_t>(), packedW.ptr<std::int8_t>(), acc.ptr<std::int32_t>(), m, n, k,
                            stream());
    // acc (M, N) -> y (M, N)
    launchInt8Epilogue(acc.ptr<std::int32_t>(), xScale.ptr<float>(), xScale.numel() == m, wScale.ptr<float>(),
                       wScale.numel() == n, bias ? bias->ptr<float>() : nullptr, act, y.ptr<float>(), m, n, stream());
}

} // namespace lathe::cuda

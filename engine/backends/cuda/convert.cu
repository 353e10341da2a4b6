// Dtype conversion kernels between F32, F16, BF16 and I32. Float -> int rounds half away from zero
// and saturates, exactly like the host traits (dtype.cpp), so CPU and GPU store the same integers.
#include "engine/backends/cuda/cuda_device.cuh"
#include "engine/backends/cuda/cuda_kernels.h"

namespace lathe::cuda {
namespace {

struct I32Tag {};

template <class T> __device__ __forceinline__ float loadF(const T* p, std::int64_t i) { return toF(p[i]); }
template <> __device__ __forceinline__ float loadF<std::int32_t>(const std::int32_t* p, std::int64_t i) {
    return static_cast<float>(p[i]);
}
template <class T> __device__ __forceinline__ void storeF(T* p, std::int64_t i, float v) { p[i] = fromF<T>(v); }
template <> __device__ __forceinline__ void storeF<std::int32_t>(std::int32_t* p, std::int64_t i, float f) {
    double v = static_cast<double>(f);
    v = v < -2147483648.0 ? -2147483648.0 : (v > 2147483647.0 ? 2147483647.0 : v);
    p[i] = static_cast<std::int32_t>(v < 0 ? v - 0.5 : v + 0.5);
}

template <class S, class D>
__global__ void convert_kernel(const S* src, D* dst, std::int64_t n) {
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x)
        storeF<D>(dst, i, loadF<S>(src, i));
}

template <class F>
void dispatchConvertible(DType dt, F&& f) {
    if (dt == DType::I32) {
        f(std::int32_t{});
        return;
    }
    dispatchFloat(dt, "convert", f);
}

} // namespace

void launchConvert(const void* src, DType srcDt, void* dst, DType dstDt, std::int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    dispatchConvertible(srcDt, [&](auto srcTag) {
        dispatchConvertible(dstDt, [&](auto dstTag) {
            using S = decltype(srcTag);
            using D = decltype(dstTag);
            convert_kernel<S, D><<<gridFor(n), kBlock, 0, stream>>>(static_cast<const S*>(src), static_cast<D*>(dst),
                                                                     n); // (n)
            LATHE_CUDA_CHECK_LAUNCH("convert_kernel");
        });
    });
}

} // namespace lathe::cuda

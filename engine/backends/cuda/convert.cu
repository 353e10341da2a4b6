// Dtype conversion kernels between F32, F16, BF16, I32, I8 and U8. Float -> int rounds half away from zero
// and saturates, exactly like the host traits (dtype.cpp), so CPU and GPU store the same integers.
#include "engine/backends/cuda/cuda_device.cuh"
#include "engine/backends/cuda/cuda_kernels.h"

#include <limits>
#include <type_traits>

namespace lathe::cuda {
namespace {

template <class T> __device__ __forceinline__ float loadF(const T* p, std::int64_t i) {
    if constexpr (std::is_integral_v<T>)
        return static_cast<float>(p[i]);
    else
        return toF(p[i]);
}
template <class T> __device__ __forceinline__ void storeF(T* p, std::int64_t i, float f) {
    if constexpr (std::is_integral_v<T>) {
        constexpr double lo = static_cast<double>(std::numeric_limits<T>::min());
        constexpr double hi = static_cast<double>(std::numeric_limits<T>::max());
        double v = static_cast<double>(f);
        v = v < lo ? lo : (v > hi ? hi : v);
        p[i] = static_cast<T>(v < 0 ? v - 0.5 : v + 0.5);
    } else {
        p[i] = fromF<T>(f);
    }
}

template <class S, class D>
__global__ void convert_kernel(const S* src, D* dst, std::int64_t n) {
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x)
        storeF<D>(dst, i, loadF<S>(src, i));
}

template <class F>
void dispatchConvertible(DType dt, F&& f) {
    switch (dt) {
    case DType::I32: f(std::int32_t{}); return;
    case DType::I8: f(std::int8_t{}); return;
    case DType::U8: f(std::uint8_t{}); return;
    default: break;
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

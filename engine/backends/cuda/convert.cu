// Dtype conversion kernels between F32, F16, BF16, I32, I8 and U8, and between F32 and the two formats paged KV
// blocks are stored in besides those: Q8_0 (32 values, an fp16 scale) and FP8 E4M3. Float -> int rounds half away
// from zero and saturates, exactly like the host traits (dtype.cpp, quant_blocks.cpp), so CPU and GPU store the
// same integers and codes.
#include "engine/backends/cuda/cuda_device.cuh"
#include "engine/backends/cuda/cuda_kernels.h"

#include "engine/core/quant_blocks.h"

#include <cuda_fp8.h>
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

// One thread per 32-value group: d = max|x| / 127 stored as fp16, q = round(x / d) with the f32 d (as
// quantizeRowQ8_0), and back q * fp16(d) (as dequantizeRowQ8_0).
__global__ void f32_to_q8_0_kernel(const float* __restrict__ x, BlockQ8_0* __restrict__ y, std::int64_t groups) {
    for (std::int64_t g = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; g < groups;
         g += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
        const float* v = x + g * BlockQ8_0::kValues;
        float amax = 0.0f;
        for (int j = 0; j < BlockQ8_0::kValues; ++j) amax = fmaxf(amax, fabsf(v[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[g].d = __half_as_ushort(__float2half_rn(d));
        for (int j = 0; j < BlockQ8_0::kValues; ++j) y[g].qs[j] = static_cast<std::int8_t>(roundf(v[j] * id));
    }
}
__global__ void q8_0_to_f32_kernel(const BlockQ8_0* __restrict__ x, float* __restrict__ y, std::int64_t n) {
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
        const BlockQ8_0& b = x[i / BlockQ8_0::kValues];
        y[i] = static_cast<float>(b.qs[i % BlockQ8_0::kValues]) * __half2float(__ushort_as_half(b.d));
    }
}
// E4M3 round to nearest even with saturation to +-448 (floatToFp8E4M3); NaN stays NaN.
__global__ void f32_to_fp8_kernel(const float* __restrict__ x, __nv_fp8_storage_t* __restrict__ y, std::int64_t n) {
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x)
        y[i] = __nv_cvt_float_to_fp8(x[i], __NV_SATFINITE, __NV_E4M3);
}
__global__ void fp8_to_f32_kernel(const __nv_fp8_storage_t* __restrict__ x, float* __restrict__ y, std::int64_t n) {
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x)
        y[i] = __half2float(__half(__nv_cvt_fp8_to_halfraw(x[i], __NV_E4M3)));
}

// The block and FP8 formats convert to and from F32 only; true when (src, dst) was such a pair and is launched.
bool launchStorageConvert(const void* src, DType srcDt, void* dst, DType dstDt, std::int64_t n, cudaStream_t stream) {
    if (srcDt == DType::F32 && dstDt == DType::Q8_0) {
        const std::int64_t groups = n / BlockQ8_0::kValues;
        f32_to_q8_0_kernel<<<gridFor(groups), kBlock, 0, stream>>>(static_cast<const float*>(src),
                                                                    static_cast<BlockQ8_0*>(dst), groups); // (groups)
        LATHE_CUDA_CHECK_LAUNCH("f32_to_q8_0_kernel");
    } else if (srcDt == DType::Q8_0 && dstDt == DType::F32) {
        q8_0_to_f32_kernel<<<gridFor(n), kBlock, 0, stream>>>(static_cast<const BlockQ8_0*>(src), static_cast<float*>(dst),
                                                               n); // (n)
        LATHE_CUDA_CHECK_LAUNCH("q8_0_to_f32_kernel");
    } else if (srcDt == DType::F32 && dstDt == DType::F8E4M3) {
        f32_to_fp8_kernel<<<gridFor(n), kBlock, 0, stream>>>(static_cast<const float*>(src),
                                                              static_cast<__nv_fp8_storage_t*>(dst), n); // (n)
        LATHE_CUDA_CHECK_LAUNCH("f32_to_fp8_kernel");
    } else if (srcDt == DType::F8E4M3 && dstDt == DType::F32) {
        fp8_to_f32_kernel<<<gridFor(n), kBlock, 0, stream>>>(static_cast<const __nv_fp8_storage_t*>(src),
                                                              static_cast<float*>(dst), n); // (n)
        LATHE_CUDA_CHECK_LAUNCH("fp8_to_f32_kernel");
    } else {
        return false;
    }
    return true;
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
    if (launchStorageConvert(src, srcDt, dst, dstDt, n, stream)) return;
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

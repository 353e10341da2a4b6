// Elementwise kernels: fill, add, mul, axpy, scale, ReLU, exact GELU, dropout and the bias broadcast.
// Every kernel computes in float and stores in the tensor's dtype (F32, F16, BF16).
#include "engine/backends/cuda/cuda_device.cuh"
#include "engine/backends/cuda/cuda_kernels.h"
#include "engine/core/rng.h"

namespace lathe::cuda {
namespace {

#define LATHE_GRID_STRIDE(i, n) \
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < (n); \
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x)

// Fills with one element's bit pattern (1, 2 or 4 bytes), encoded on the host by the dtype traits,
// so every dtype stores exactly what the CPU backend stores.
template <class U>
__global__ void fill_pattern_kernel(U* x, std::int64_t n, U pattern) {
    LATHE_GRID_STRIDE(i, n) x[i] = pattern;
}

template <class T>
__global__ void add_kernel(const T* a, const T* b, T* out, std::int64_t n) {
    LATHE_GRID_STRIDE(i, n) out[i] = fromF<T>(toF(a[i]) + toF(b[i]));
}

template <class T>
__global__ void mul_kernel(const T* a, const T* b, T* out, std::int64_t n) {
    LATHE_GRID_STRIDE(i, n) out[i] = fromF<T>(toF(a[i]) * toF(b[i]));
}

template <class T>
__global__ void axpy_kernel(float alpha, const T* x, T* y, std::int64_t n) {
    LATHE_GRID_STRIDE(i, n) y[i] = fromF<T>(fmaf(alpha, toF(x[i]), toF(y[i])));
}

template <class T>
__global__ void scale_kernel(T* x, float s, std::int64_t n) {
    LATHE_GRID_STRIDE(i, n) x[i] = fromF<T>(toF(x[i]) * s);
}

// c (rows, cols) with row stride ld: c = beta * c, and zeros where beta is 0 (c is then not read, as BLAS does).
template <class T>
__global__ void scale_matrix_kernel(T* c, std::int64_t rows, std::int64_t cols, std::int64_t ld, float beta) {
    LATHE_GRID_STRIDE(i, rows * cols) {
        T& v = c[(i / cols) * ld + i % cols];
        v = fromF<T>(beta == 0.0f ? 0.0f : toF(v) * beta);
    }
}

template <class T>
__global__ void relu_kernel(const T* x, T* y, std::int64_t n) {
    LATHE_GRID_STRIDE(i, n) {
        const float v = toF(x[i]);
        y[i] = fromF<T>(v > 0.0f ? v : 0.0f);
    }
}

template <class T>
__global__ void relu_backward_kernel(const T* x, const T* dy, T* dx, std::int64_t n) {
    LATHE_GRID_STRIDE(i, n) dx[i] = fromF<T>(toF(x[i]) > 0.0f ? toF(dy[i]) : 0.0f);
}

// Exact GELU: x * Phi(x), Phi(x) = 0.5 * (1 + erf(x / sqrt(2))) (PyTorch's approximate='none').
constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;

template <class T>
__global__ void gelu_kernel(const T* x, T* y, std::int64_t n) {
    LATHE_GRID_STRIDE(i, n) {
        const float v = toF(x[i]);
        y[i] = fromF<T>(0.5f * v * (1.0f + erff(v * kInvSqrt2)));
    }
}

// d/dx [x Phi(x)] = Phi(x) + x phi(x)
template <class T>
__global__ void gelu_backward_kernel(const T* x, const T* dy, T* dx, std::int64_t n) {
    LATHE_GRID_STRIDE(i, n) {
        const float v = toF(x[i]);
        const float cdf = 0.5f * (1.0f + erff(v * kInvSqrt2));
        const float pdf = kInvSqrt2Pi * expf(-0.5f * v * v);
        dx[i] = fromF<T>(toF(dy[i]) * (cdf + v * pdf));
    }
}

// The mask comes from hashUniform(seed, i), the same function the CPU backend uses, so masks match.
template <class T>
__global__ void dropout_kernel(const T* x, T* y, T* mask, std::int64_t n, float p, float keepScale,
                               std::uint64_t seed) {
    LATHE_GRID_STRIDE(i, n) {
        const float m = hashUniform(seed, static_cast<std::uint64_t>(i)) >= p ? keepScale : 0.0f;
        mask[i] = fromF<T>(m);
        y[i] = fromF<T>(toF(x[i]) * m);
    }
}

// x (outer, C, inner) += bias (C)
template <class T>
__global__ void bias_add_kernel(T* x, const T* bias, std::int64_t n, std::int64_t channels, std::int64_t inner) {
    LATHE_GRID_STRIDE(i, n) {
        const std::int64_t c = (i / inner) % channels;
        x[i] = fromF<T>(toF(x[i]) + toF(bias[c]));
    }
}

} // namespace

void launchFill(void* x, DType dt, std::int64_t n, float value, cudaStream_t stream) {
    if (n == 0) return;
    const DTypeTraits& tr = traits(dt);
    if (tr.blockSize != 1) throw BackendError(std::string("cuda: fill has no kernel for block format ") + tr.name);
    std::uint64_t pattern = 0;
    tr.fromFloat(&value, &pattern, 1); // little-endian: the element's bytes are the low bytes
    switch (tr.bytesPerBlock) {
    case 1:
        fill_pattern_kernel<<<gridFor(n), kBlock, 0, stream>>>(static_cast<std::uint8_t*>(x), n,
                                                                static_cast<std::uint8_t>(pattern)); // (n)
        break;
    case 2:
        fill_pattern_kernel<<<gridFor(n), kBlock, 0, stream>>>(static_cast<std::uint16_t*>(x), n,
                                                                static_cast<std::uint16_t>(pattern)); // (n)
        break;
    case 4:
        fill_pattern_kernel<<<gridFor(n), kBlock, 0, stream>>>(static_cast<std::uint32_t*>(x), n,
                                                                static_cast<std::uint32_t>(pattern)); // (n)
        break;
    case 8:
        fill_pattern_kernel<<<gridFor(n), kBlock, 0, stream>>>(static_cast<std::uint64_t*>(x), n, pattern); // (n)
        break;
    default: throw BackendError(std::string("cuda: fill has no kernel for ") + tr.name);
    }
    LATHE_CUDA_CHECK_LAUNCH("fill_pattern_kernel");
}

void launchAdd(const void* a, const void* b, void* out, DType dt, std::int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    dispatchFloat(dt, "add", [&](auto tag) {
        using T = decltype(tag);
        add_kernel<T><<<gridFor(n), kBlock, 0, stream>>>(static_cast<const T*>(a), static_cast<const T*>(b),
                                                          static_cast<T*>(out), n);
        LATHE_CUDA_CHECK_LAUNCH("add_kernel");
    });
}

void launchMul(const void* a, const void* b, void* out, DType dt, std::int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    dispatchFloat(dt, "mul", [&](auto tag) {
        using T = decltype(tag);
        mul_kernel<T><<<gridFor(n), kBlock, 0, stream>>>(static_cast<const T*>(a), static_cast<const T*>(b),
                                                          static_cast<T*>(out), n);
        LATHE_CUDA_CHECK_LAUNCH("mul_kernel");
    });
}

void launchAxpy(float alpha, const void* x, void* y, DType dt, std::int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    dispatchFloat(dt, "axpy", [&](auto tag) {
        using T = decltype(tag);
        axpy_kernel<T><<<gridFor(n), kBlock, 0, stream>>>(alpha, static_cast<const T*>(x), static_cast<T*>(y), n);
        LATHE_CUDA_CHECK_LAUNCH("axpy_kernel");
    });
}

void launchScale(void* x, float s, DType dt, std::int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    dispatchFloat(dt, "scale", [&](auto tag) {
        using T = decltype(tag);
        scale_kernel<T><<<gridFor(n), kBlock, 0, stream>>>(static_cast<T*>(x), s, n);
        LATHE_CUDA_CHECK_LAUNCH("scale_kernel");
    });
}

void launchScaleMatrix(void* c, DType dt, std::int64_t rows, std::int64_t cols, std::int64_t ld, float beta,
                       cudaStream_t stream) {
    if (rows * cols == 0) return;
    dispatchFloat(dt, "scale_matrix", [&](auto tag) {
        using T = decltype(tag);
        scale_matrix_kernel<T><<<gridFor(rows * cols), kBlock, 0, stream>>>(static_cast<T*>(c), rows, cols, ld, beta);
        LATHE_CUDA_CHECK_LAUNCH("scale_matrix_kernel");
    });
}

void launchRelu(const void* x, void* y, DType dt, std::int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    dispatchFloat(dt, "relu", [&](auto tag) {
        using T = decltype(tag);
        relu_kernel<T><<<gridFor(n), kBlock, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(y), n);
        LATHE_CUDA_CHECK_LAUNCH("relu_kernel");
    });
}

void launchReluBackward(const void* x, const void* dy, void* dx, DType dt, std::int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    dispatchFloat(dt, "relu_backward", [&](auto tag) {
        using T = decltype(tag);
        relu_backward_kernel<T><<<gridFor(n), kBlock, 0, stream>>>(
            static_cast<const T*>(x), static_cast<const T*>(dy), static_cast<T*>(dx), n);
        LATHE_CUDA_CHECK_LAUNCH("relu_backward_kernel");
    });
}

void launchGelu(const void* x, void* y, DType dt, std::int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    dispatchFloat(dt, "gelu", [&](auto tag) {
        using T = decltype(tag);
        gelu_kernel<T><<<gridFor(n), kBlock, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(y), n);
        LATHE_CUDA_CHECK_LAUNCH("gelu_kernel");
    });
}

void launchGeluBackward(const void* x, const void* dy, void* dx, DType dt, std::int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    dispatchFloat(dt, "gelu_backward", [&](auto tag) {
        using T = decltype(tag);
        gelu_backward_kernel<T><<<gridFor(n), kBlock, 0, stream>>>(
            static_cast<const T*>(x), static_cast<const T*>(dy), static_cast<T*>(dx), n);
        LATHE_CUDA_CHECK_LAUNCH("gelu_backward_kernel");
    });
}

void launchDropout(const void* x, void* y, void* mask, DType dt, std::int64_t n, float p, std::uint64_t seed,
                   cudaStream_t stream) {
    if (n == 0) return;
    // p >= 1 drops everything (PyTorch returns zeros); 1 / (1 - p) would be infinite.
    const float keepScale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    dispatchFloat(dt, "dropout", [&](auto tag) {
        using T = decltype(tag);
        dropout_kernel<T><<<gridFor(n), kBlock, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(y),
                                                              static_cast<T*>(mask), n, p, keepScale, seed);
        LATHE_CUDA_CHECK_LAUNCH("dropout_kernel");
    });
}

void launchBiasAdd(void* x, const void* bias, DType dt, std::int64_t outer, std::int64_t channels,
                   std::int64_t inner, cudaStream_t stream) {
    const std::int64_t n = outer * channels * inner;
    if (n == 0) return;
    dispatchFloat(dt, "bias_add", [&](auto tag) {
        using T = decltype(tag);
        bias_add_kernel<T><<<gridFor(n), kBlock, 0, stream>>>(static_cast<T*>(x), static_cast<const T*>(bias), n,
                                                               channels, inner); // (outer, C, inner)
        LATHE_CUDA_CHECK_LAUNCH("bias_add_kernel");
    });
}

} // namespace lathe::cuda

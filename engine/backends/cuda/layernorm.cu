// Layer normalisation over the last dimension, forward and backward (PyTorch's biased variance).
// Rows get a block each; the parameter gradients are column sums with a fixed order.
#include "engine/backends/cuda/cuda_device.cuh"
#include "engine/backends/cuda/cuda_kernels.h"

namespace lathe::cuda {
namespace {

// x, y (N, D); gamma, beta (D); mean, rstd (N); blockIdx.x = row. Two passes over the row keep the
// variance accurate when the mean is large.
__global__ void layer_norm_forward_kernel(const float* x, const float* gamma, const float* beta, float* y,
                                          float* mean, float* rstd, std::int64_t dim, float eps) {
    __shared__ float scratch[32];
    const float* row = x + blockIdx.x * dim;
    float* out = y + blockIdx.x * dim;
    float s = 0.0f;
    for (std::int64_t d = threadIdx.x; d < dim; d += blockDim.x) s += row[d];
    const float mu = blockSum(s, scratch) / static_cast<float>(dim);
    float q = 0.0f;
    for (std::int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
        const float c = row[d] - mu;
        q += c * c;
    }
    const float var = blockSum(q, scratch) / static_cast<float>(dim);
    const float r = 1.0f / sqrtf(var + eps);
    for (std::int64_t d = threadIdx.x; d < dim; d += blockDim.x) out[d] = (row[d] - mu) * r * gamma[d] + beta[d];
    if (threadIdx.x == 0) {
        mean[blockIdx.x] = mu;
        rstd[blockIdx.x] = r;
    }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma; blockIdx.x = row.
__global__ void layer_norm_backward_data_kernel(const float* dy, const float* x, const float* gamma,
                                                const float* mean, const float* rstd, float* dx, std::int64_t dim) {
    __shared__ float scratch[32];
    const std::int64_t off = blockIdx.x * dim;
    const float mu = mean[blockIdx.x], r = rstd[blockIdx.x];
    float a = 0.0f, b = 0.0f;
    for (std::int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
        const float g = dy[off + d] * gamma[d];
        a += g;
        b += g * (x[off + d] - mu) * r;
    }
    a = blockSum(a, scratch) / static_cast<float>(dim);
    b = blockSum(b, scratch) / static_cast<float>(dim);
    for (std::int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
        const float xhat = (x[off + d] - mu) * r;
        dx[off + d] = r * (dy[off + d] * gamma[d] - a - xhat * b);
    }
}

// dgamma (D) (+)= sum_n dy * xhat, dbeta (D) (+)= sum_n dy; 32 columns x 8 row lanes per block.
__global__ void layer_norm_backward_params_kernel(const float* dy, const float* x, const float* mean,
                                                  const float* rstd, float* dgamma, float* dbeta, std::int64_t rows,
                                                  std::int64_t dim, bool accumulate) {
    __shared__ float pg[8][33];
    __shared__ float pb[8][33];
    const std::int64_t d = blockIdx.x * 32 + threadIdx.x;
    float sg = 0.0f, sb = 0.0f;
    if (d < dim)
        for (std::int64_t n = threadIdx.y; n < rows; n += 8) {
            const float g = dy[n * dim + d];
            sg += g * (x[n * dim + d] - mean[n]) * rstd[n];
            sb += g;
        }
    pg[threadIdx.y][threadIdx.x] = sg;
    pb[threadIdx.y][threadIdx.x] = sb;
    __syncthreads();
    if (threadIdx.y == 0 && d < dim) {
        float tg = 0.0f, tb = 0.0f;
        for (int k = 0; k < 8; ++k) {
            tg += pg[k][threadIdx.x];
            tb += pb[k][threadIdx.x];
        }
        dgamma[d] = accumulate ? dgamma[d] + tg : tg;
        dbeta[d] = accumulate ? dbeta[d] + tb : tb;
    }
}

} // namespace

void launchLayerNormForward(const float* x, const float* gamma, const float* beta, float* y, float* mean,
                            float* rstd, std::int64_t rows, std::int64_t dim, float eps, cudaStream_t stream) {
    if (rows == 0 || dim == 0) return;
    layer_norm_forward_kernel<<<static_cast<unsigned>(rows), rowBlock(dim), 0, stream>>>(x, gamma, beta, y, mean,
                                                                                         rstd, dim, eps); // (N, D)
    LATHE_CUDA_CHECK_LAUNCH("layer_norm_forward_kernel");
}

void launchLayerNormBackward(const float* dy, const float* x, const float* gamma, const float* mean,
                             const float* rstd, float* dx, float* dgamma, float* dbeta, std::int64_t rows,
                             std::int64_t dim, bool accumulate, cudaStream_t stream) {
    if (dim == 0) return;
    if (rows > 0) {
        layer_norm_backward_data_kernel<<<static_cast<unsigned>(rows), rowBlock(dim), 0, stream>>>(
            dy, x, gamma, mean, rstd, dx, dim); // (N, D)
        LATHE_CUDA_CHECK_LAUNCH("layer_norm_backward_data_kernel");
    }
    layer_norm_backward_params_kernel<<<static_cast<unsigned>((dim + 31) / 32), dim3(32, 8), 0, stream>>>(
        dy, x, mean, rstd, dgamma, dbeta, rows, dim, accumulate); // (D)
    LATHE_CUDA_CHECK_LAUNCH("layer_norm_backward_params_kernel");
}

} // namespace lathe::cuda

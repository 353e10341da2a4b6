// Private to the CUDA backend: the camelCase launchers of the .cu kernels, one block per op family.
// Pointers are device pointers, every launch goes to `stream` and is followed by a last-error check.
// Tensors are contiguous row-major; shapes are given in the comments.
#pragma once

#include "engine/backends/backend.h"
#include "engine/core/dtype.h"

#include <cuda_runtime_api.h>

#include <cstdint>

namespace lathe::cuda {

// ---- elementwise.cu (F32, F16, BF16; fill takes every plain dtype). n elements each.
void launchFill(void* x, DType dt, std::int64_t n, float value, cudaStream_t stream);
void launchAdd(const void* a, const void* b, void* out, DType dt, std::int64_t n, cudaStream_t stream);
void launchMul(const void* a, const void* b, void* out, DType dt, std::int64_t n, cudaStream_t stream);
void launchAxpy(float alpha, const void* x, void* y, DType dt, std::int64_t n, cudaStream_t stream);
void launchScale(void* x, float s, DType dt, std::int64_t n, cudaStream_t stream);
// c (rows, cols), row stride ld: c = beta * c, zeros where beta == 0 (a GEMM with K = 0).
void launchScaleMatrix(void* c, DType dt, std::int64_t rows, std::int64_t cols, std::int64_t ld, float beta,
                       cudaStream_t stream);
void launchRelu(const void* x, void* y, DType dt, std::int64_t n, cudaStream_t stream);
void launchReluBackward(const void* x, const void* dy, void* dx, DType dt, std::int64_t n, cudaStream_t stream);
void launchGelu(const void* x, void* y, DType dt, std::int64_t n, cudaStream_t stream);
void launchGeluBackward(const void* x, const void* dy, void* dx, DType dt, std::int64_t n, cudaStream_t stream);
void launchDropout(const void* x, void* y, void* mask, DType dt, std::int64_t n, float p, std::uint64_t seed,
                   cudaStream_t stream);
// x (outer, C, inner) += bias (C)
void launchBiasAdd(void* x, const void* bias, DType dt, std::int64_t outer, std::int64_t channels,
                   std::int64_t inner, cudaStream_t stream);

// ---- convert.cu: dst = src between F32, F16, BF16, I32, I8, U8 (rounded, saturated like the host traits).
void launchConvert(const void* src, DType srcDt, void* dst, DType dstDt, std::int64_t n, cudaStream_t stream);

// ---- softmax.cu
// x, y (N, C), row-wise.
void launchSoftmax(const void* x, void* y, DType dt, std::int64_t rows, std::int64_t cols, cudaStream_t stream);
// logits (N, C) F32, labels (N) I32 -> losses (N), dlogits (N, C). errorFlag (2 ints, preset to -1)
// receives the first bad row and its label.
void launchSoftmaxCrossEntropy(const float* logits, const std::int32_t* labels, float* losses, float* dlogits,
                               std::int64_t rows, std::int64_t cols, float gradScale, int* errorFlag,
                               cudaStream_t stream);
// student, teacher (N, C) F32, labels (N) I32 -> losses (N), parts (N, 2) = (soft, hard), dstudent (N, C):
// Backend::distillationLoss. errorFlag as above.
void launchDistillationLoss(const float* student, const float* teacher, const std::int32_t* labels, float* losses,
                            float* parts, float* dstudent, std::int64_t rows, std::int64_t cols, float temperature,
                            float alpha, float gradScale, int* errorFlag, cudaStream_t stream);

// ---- reduce.cu
// dbias (C) (+)= sum over outer and inner of dy (outer, C, inner)
void launchBiasGrad(const void* dy, void* dbias, DType dt, std::int64_t outer, std::int64_t channels,
                    std::int64_t inner, bool accumulate, cudaStream_t stream);
// x (N, C) -> out (N) I32, index of the first maximum.
void launchArgmaxRows(const void* x, DType dt, std::int32_t* out, std::int64_t rows, std::int64_t cols,
                      cudaStream_t stream);

// ---- conv.cu (F32). Columns are laid out (C*KH*KW, nb*OH*OW): image-major inside a row, so one
// GEMM covers a whole chunk of nb images (one per group: group i owns rows [i, i+1) * (C/G)*KH*KW).
// x (N, C, H, W), images [n0, n0 + nb) -> col (C*KH*KW, nb*OH*OW)
void launchIm2col(const float* x, float* col, const Conv2dGeometry& g, std::int64_t n0, std::int64_t nb,
                  cudaStream_t stream);
// col (C*KH*KW, nb*OH*OW) -> dx (N, C, H, W) images [n0, n0 + nb), overwritten (gathered, no atomics)
// x (N, C, H, W) -> cols (N * OH * OW, C*KH*KW): one row per output position (Backend::im2colRows, groups 1).
void launchIm2colRows(const float* x, float* cols, const Conv2dGeometry& g, cudaStream_t stream);
// rows (N * P, K) -> y (N, K, P) (Backend::rowsToChannels).
void launchRowsToChannels(const float* rows, float* y, std::int64_t images, std::int64_t positions,
                          std::int64_t channels, cudaStream_t stream);
void launchCol2im(const float* col, float* dx, const Conv2dGeometry& g, std::int64_t n0, std::int64_t nb,
                  cudaStream_t stream);
// Depthwise (g.groups == C, K = C * multiplier): output channel k reads input channel k / (K/C).
// x (N, C, H, W), w (K, 1, KH, KW) -> y (N, K, OH, OW)
void launchDepthwiseForward(const float* x, const float* w, float* y, const Conv2dGeometry& g, cudaStream_t stream);
// dy (N, K, OH, OW), w (K, 1, KH, KW) -> dx (N, C, H, W), overwritten (gathered, no atomics)
void launchDepthwiseBackwardData(const float* dy, const float* w, float* dx, const Conv2dGeometry& g,
                                 cudaStream_t stream);
// x (N, C, H, W), dy (N, K, OH, OW) -> dw (K, 1, KH, KW) (+)= gradient (one block per weight, fixed order)
void launchDepthwiseBackwardWeight(const float* x, const float* dy, float* dw, const Conv2dGeometry& g,
                                   bool accumulate, cudaStream_t stream);
// src (A, B, P) -> dst (B, A, P)
void launchPermute012To102(const float* src, float* dst, std::int64_t a, std::int64_t b, std::int64_t p,
                           cudaStream_t stream);

// ---- sparse24.cu (F32), our own kernel (no cuSPARSELt): Backend::spmm24.
// x (N, in), values (out, 2 * groups), meta (out, ceil(groups / 2)) in sparse24.h's layout -> y (N, out)
void launchSpmm24(const float* x, const float* values, const std::uint8_t* meta, float* y, std::int64_t n,
                  std::int64_t in, std::int64_t out, cudaStream_t stream);

// ---- weight_only.cu (F32 activations), W (N, K) as quant_matrix.h lays it out: Backend::gemmWeightOnly.
struct WeightOnlyView {
    WeightFormat format;
    const std::uint8_t* codes;  // (N, rowBytes)
    const float* scales;        // (N, groups)
    const std::uint8_t* zeros;  // (N, groups), or null: int4 symmetric (zero 8), int8, nf4
    std::int64_t rows, k, group, groups, rowBytes;
};
// y (M, N) = act(x (M, K) @ W^T + bias), bias (N) or null: the fused dequantize-GEMV (each code decoded once
// per four rows of x), for small M.
void launchWeightOnlyGemv(const float* x, const WeightOnlyView& w, const float* bias, Activation act, float* y,
                          std::int64_t m, cudaStream_t stream);
// out (rows, K) = W's rows [n0, n0 + rows) in f32, exactly dequantizeMatrix's values.
void launchWeightOnlyDequant(const WeightOnlyView& w, std::int64_t n0, std::int64_t rows, float* out,
                             cudaStream_t stream);
// y (rows, cols), row stride ldy: y = act(y + bias), bias (cols) or null.
void launchBiasActivation(float* y, std::int64_t rows, std::int64_t cols, std::int64_t ldy, const float* bias,
                          Activation act, cudaStream_t stream);
// ---- fp8.cu: around cuBLASLt's FP8 GEMM (Backend::gemmFp8), and double-quantized nf4 absmax.
// amax (1) = max |x (n)|.
void launchFp8Absmax(const float* x, std::int64_t n, float* amax, cudaStream_t stream);
// sx (1) = fp8TensorScale(amax); xq (n) = e4m3(x / sx) as bytes (or null), xValues (n) their f32 values (or null).
void launchFp8Quantize(const float* x, std::int64_t n, const float* amax, std::uint8_t* xq, float* xValues, float* sx,
                       cudaStream_t stream);
// out (n) = scales (n) * sx (1).
void launchFp8ScaleBy(const float* scales, const float* sx, std::int64_t n, float* out, cudaStream_t stream);
// y (rows, cols) = act(y * colScale[c] + bias[c]), bias (cols) or null.
void launchFp8Epilogue(float* y, std::int64_t rows, std::int64_t cols, const float* colScale, const float* bias,
                       Activation act, cudaStream_t stream);
// absmax (n) = map[codes[i]] * blockAbsmax[i / 256] + offset (1), map: dynamicMap8() (256) on the device.
void launchDoubleQuantScales(const std::uint8_t* codes, const float* blockAbsmax, const float* offset, const float* map,
                             std::int64_t n, float* absmax, cudaStream_t stream);
// ---- int8.cu: the W8A8 ops (Backend::quantizeRows, Backend::gemmInt8).
// x (M, K) F32 -> xq (M, K) I8; dynamic: scale (M) written (one block per row), else scale (1) read on the device.
void launchQuantizeRows(const float* x, std::int8_t* xq, float* scale, std::int64_t rows, std::int64_t cols,
                        bool dynamic, cudaStream_t stream);
// acc (M, N) I32 = x (M, K) I8 @ w^T, w (N, K) I8: exact, one thread per output (shapes cuBLASLt refuses).
void launchInt8GemmNaive(const std::int8_t* x, const std::int8_t* w, std::int32_t* acc, std::int64_t m,
                         std::int64_t n, std::int64_t k, cudaStream_t stream);
// y (M, N) F32 = act(fma(float(acc) * xScale[m or 0], wScale[n or 0], bias[n] or 0)); acc (M, N) I32,
// xScale (M) or (1), wScale (N) or (1), bias (N) or null.
void launchInt8Epilogue(const std::int32_t* acc, const float* xScale, bool xPerRow, const float* wScale,
                        bool wPerColumn, const float* bias, Activation act, float* y, std::int64_t m, std::int64_t n,
                        cudaStream_t stream);

// ---- pool.cu (F32)
// x (N, C, H, W) -> y, argmax (N, C, OH, OW)
void launchMaxPool2dForward(const float* x, float* y, std::int32_t* argmax, const Pool2dGeometry& g,
                            cudaStream_t stream);
// dy, argmax (N, C, OH, OW) -> dx (N, C, H, W) overwritten
void launchMaxPool2dBackward(const float* dy, const std::int32_t* argmax, float* dx, const Pool2dGeometry& g,
                             cudaStream_t stream);

// ---- layernorm.cu (F32)
// x (N, D), gamma, beta (D) -> y (N, D), mean, rstd (N)
void launchLayerNormForward(const float* x, const float* gamma, const float* beta, float* y, float* mean,
                            float* rstd, std::int64_t rows, std::int64_t dim, float eps, cudaStream_t stream);
// dy, x (N, D) -> dx (N, D); dgamma, dbeta (D) (+)=
void launchLayerNormBackward(const float* dy, const float* x, const float* gamma, const float* mean,
                             const float* rstd, float* dx, float* dgamma, float* dbeta, std::int64_t rows,
                             std::int64_t dim, bool accumulate, cudaStream_t stream);

// ---- batchnorm.cu (F32)
// x (N, C, inner), gamma, beta (C) -> y (N, C, inner), mean, rstd (C); training updates runningMean/Var (C)
void launchBatchNormForward(const float* x, const float* gamma, const float* beta, float* runningMean,
                            float* runningVar, float* y, float* mean, float* rstd, std::int64_t batch,
                            std::int64_t channels, std::int64_t inner, const BatchNormParams& p, cudaStream_t stream);
// dy, x (N, C, inner) -> dx (N, C, inner); dgamma, dbeta (C) (+)=
void launchBatchNormBackward(const float* dy, const float* x, const float* gamma, const float* mean,
                             const float* rstd, float* dx, float* dgamma, float* dbeta, std::int64_t batch,
                             std::int64_t channels, std::int64_t inner, bool accumulate, cudaStream_t stream);

// ---- embedding.cu (F32 tables, I32 ids)
// Reports the first id of ids (N) outside [0, vocab) in errorFlag (as for cross-entropy); writes nothing else.
void launchEmbeddingCheck(const std::int32_t* ids, std::int64_t n, std::int64_t vocab, int* errorFlag,
                          cudaStream_t stream);
// ids (N), table (V, D) -> y (N, D); errorFlag as for cross-entropy
void launchEmbeddingForward(const std::int32_t* ids, const float* table, float* y, std::int64_t n,
                            std::int64_t vocab, std::int64_t dim, int* errorFlag, cudaStream_t stream);
// dtable (V, D) += scatter of dy (N, D) at ids (atomic adds; ids already validated by forward or here)
void launchEmbeddingBackward(const std::int32_t* ids, const float* dy, float* dtable, std::int64_t n,
                             std::int64_t vocab, std::int64_t dim, int* errorFlag, cudaStream_t stream);

// ---- optim.cu (F32), PyTorch semantics
void launchSgdStep(float* param, const float* grad, float* velocity, std::int64_t n, const SgdParams& p,
                   bool firstStep, cudaStream_t stream);
// biasCorrection1/2 = 1 - beta^step, computed on the host in double.
void launchAdamStep(float* param, const float* grad, float* m, float* v, std::int64_t n, const AdamParams& p,
                    float biasCorrection1, float biasCorrection2, cudaStream_t stream);

// ---- attention.cu (F32). q, k, v laid out as AttentionParams describes (backend.h), checked by checkAttention.
using AttentionLaunch = AttentionGeometry;
// The fused forward: out (N, Tq, H * Dh), lse (N, H, Tq); lens I32 (N) or null. Head size up to 128.
void launchAttentionForwardFused(const float* q, const float* k, const float* v, const std::int32_t* lens, float* out,
                                 float* lse, const AttentionLaunch& a, cudaStream_t stream);
// The unfused path's masked softmax, in place over the scores (H, Tq, Tk) of sequence n (scaled already);
// lse (H, Tq) of that sequence.
void launchAttentionMaskedSoftmax(float* scores, float* lse, const std::int32_t* lens, std::int64_t n,
                                  const AttentionLaunch& a, cudaStream_t stream);
// dq, dk, dv (layouts of q, k, v; only the heads' columns written) from dout and the forward's out and lse;
// delta (N, H, Tq) is scratch. Head size up to 128.
void launchAttentionBackward(const float* q, const float* k, const float* v, const std::int32_t* lens,
                             const float* dout, const float* out, const float* lse, float* delta, float* dq, float* dk,
                             float* dv, const AttentionLaunch& a, cudaStream_t stream);
// x (N, T, D) -> y (N, D), mean over the valid steps; and its backward (dx overwritten).
void launchMeanPoolForward(const float* x, const std::int32_t* lens, float* y, std::int64_t n, std::int64_t t,
                           std::int64_t d, cudaStream_t stream);
void launchMeanPoolBackward(const float* dy, const std::int32_t* lens, float* dx, std::int64_t n, std::int64_t t,
                            std::int64_t d, cudaStream_t stream);
// x, y (N, D), norm (N): y = x / max(||x||, eps); and its backward (dx overwritten).
void launchL2NormalizeForward(const float* x, float* y, float* norm, std::int64_t n, std::int64_t d, float eps,
                              cudaStream_t stream);
void launchL2NormalizeBackward(const float* dy, const float* y, const float* norm, float* dx, std::int64_t n,
                               std::int64_t d, float eps, cudaStream_t stream);

} // namespace lathe::cuda

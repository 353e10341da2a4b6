// The Backend interface: memory, transfers and the ops every layer is built from.
// A backend says which op descriptors (op + input/output dtypes, op_desc.h) it supports; calling an
// unsupported one throws BackendError naming the descriptor, it is never emulated silently. Shapes
// are in the comments; all tensors are contiguous and live on this backend's device unless stated.
#pragma once

#include "engine/backends/op_desc.h"
#include "engine/core/quant_matrix.h"
#include "engine/core/tensor.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace lathe {

enum class Trans : std::uint8_t { No, Yes };

// NCHW convolution geometry (dilation = 1). Groups as PyTorch's nn.Conv2d(groups=G): C and K are both
// divisible by G, the weight is (K, C/G, KH, KW), and output channel k reads the input channels
// [(k / (K/G)) * (C/G), (k / (K/G) + 1) * (C/G)). G == C is a depthwise convolution.
struct Conv2dGeometry {
    std::int64_t batch = 1, inChannels = 1, height = 1, width = 1;
    std::int64_t outChannels = 1, kernelH = 1, kernelW = 1;
    std::int64_t strideH = 1, strideW = 1, padH = 0, padW = 0;
    std::int64_t groups = 1;
    std::int64_t outH() const { return (height + 2 * padH - kernelH) / strideH + 1; }
    std::int64_t outW() const { return (width + 2 * padW - kernelW) / strideW + 1; }
    std::int64_t inPerGroup() const { return inChannels / groups; }   // C/G
    std::int64_t outPerGroup() const { return outChannels / groups; } // K/G
    bool depthwise() const { return groups > 1 && groups == inChannels; }
};

struct Pool2dGeometry {
    std::int64_t batch = 1, channels = 1, height = 1, width = 1;
    std::int64_t kernelH = 2, kernelW = 2, strideH = 2, strideW = 2, padH = 0, padW = 0;
    std::int64_t outH() const { return (height + 2 * padH - kernelH) / strideH + 1; }
    std::int64_t outW() const { return (width + 2 * padW - kernelW) / strideW + 1; }
};

// The geometry checks every backend runs before anything divides by a stride: throw BackendError naming `op`
// unless kernel and stride are at least 1, padding at least 0, the padded input at least one kernel wide (a
// non-empty output), and the channel counts positive with the groups dividing C and K. Pooling also keeps the
// padding at most half the kernel, as torch.nn.MaxPool2d does.
void checkConvGeometry(const Conv2dGeometry& g, const std::string& op);
void checkPoolGeometry(const Pool2dGeometry& g, const std::string& op);

// torch.nn.BatchNorm2d's settings for one forward (training: batch statistics, tracked into the running ones).
struct BatchNormParams {
    float eps = 1e-5f;
    float momentum = 0.1f; // running = (1 - momentum) * running + momentum * batch statistic
    bool training = true;
};

// What a GEMM-based op applies to each output element after the bias, in the same pass over the output.
enum class Activation : std::uint8_t { None, Relu, Gelu }; // Gelu: exact (erf)

// A weight-only quantized matrix W (rows N, cols K) on a backend, laid out as quant_matrix.h describes:
// packed I8 (N, K) for Int8, U8 (N, ceil(K / 2)) for Int4 and Nf4, U8 (N, K) E4M3 bytes for Fp8; scales F32
// (N, groups); zeros U8 (N, groups) for asymmetric Int4, undefined otherwise. Double-quantized Nf4
// (spec.doubleQuant) has no f32 scales: scaleCodes U8 (N, groups), scaleAbsmax F32 (ceil(N * groups / 256)) and
// scaleOffset F32 (1) instead, decoded by the kernel.
struct QuantizedWeights {
    QuantSpec spec;
    std::int64_t rows = 0, cols = 0;
    Tensor packed, scales, zeros;
    Tensor scaleCodes, scaleAbsmax, scaleOffset;
};
// How an FP8 GEMM runs: on FP8 matrix units (cuBLASLt, compute capability 8.9 and up), or its numerics
// emulated by f32 arithmetic (E4M3 values decoded exactly, so the sums are those of an f32-accumulating FP8
// GEMM up to summation order), which times nothing an FP8 unit would do.
enum class Fp8Mode : std::uint8_t { Native, Emulated };
// The descriptor of the weight-only GEMM over f32 activations: "gemm f32 x u8 -> f32 [int4 group-wise weights]".
OpDesc weightOnlyGemmDesc(WeightFormat format);
// The FP8 GEMM: "gemm f8e4m3 x f8e4m3 -> f32", and "... [fp8 emulated in f32]" for Fp8Mode::Emulated.
OpDesc fp8GemmDesc(Fp8Mode mode);
// The descriptor of the W8A8 GEMM: "gemm i8 x i8 -> i32 (dequant f32)".
OpDesc int8GemmDesc();

// Which CUDA attention kernel runs (the CPU has one path, the unfused reference's arithmetic).
enum class AttentionKernel : std::uint8_t {
    Fused,   // one kernel: tiles of keys in shared memory, online softmax (FlashAttention-style)
    Unfused, // the reference: scores by GEMM, a masked softmax, then a second GEMM
};

// Multi-head scaled-dot-product attention over sequences laid out as rows of time steps. Tensor q is
// (N, Tq', Sq), k (N, Tk', Sk), v (N, Tk', Sv): head h of time t of sequence n is the headDim values at
// q[n][t][qOffset + h * headDim ...] (likewise k, v). Rows t >= queryLen (keyLen) of a tensor are not read,
// so a preallocated KV cache (N, capacity, D) serves with keyLen = the tokens cached so far. q, k and v may
// be one tensor: a fused QKV projection's output (N, T, 3 * H * Dh) with offsets 0, H * Dh, 2 * H * Dh.
struct AttentionParams {
    std::int64_t heads = 1, headDim = 1;
    std::int64_t queryLen = 0, keyLen = 0; // 0: q.dim(1), k.dim(1)
    std::int64_t qOffset = 0, kOffset = 0, vOffset = 0;
    // Query i sits at position keyLen - queryLen + i and sees the keys at positions up to its own (with a
    // KV cache, the new tokens' queries see every cached key).
    bool causal = false;
    float scale = 0.0f; // 0: 1 / sqrt(headDim)
    AttentionKernel kernel = AttentionKernel::Fused;
    float effectiveScale() const;
    std::int64_t width() const { return heads * headDim; } // D = H * Dh
};

// The geometry of one attention call once checked: batch N, the rows each tensor holds (Tq', Tk') and its row
// length (S), the resolved lengths and scale.
struct AttentionGeometry {
    std::int64_t batch = 0, heads = 0, headDim = 0, queryLen = 0, keyLen = 0;
    std::int64_t qRows = 0, kRows = 0, vRows = 0;       // Tq', Tk' (dim 1 of each tensor)
    std::int64_t qStride = 0, kStride = 0, vStride = 0; // S: elements per time step
    std::int64_t qOffset = 0, kOffset = 0, vOffset = 0;
    float scale = 1.0f;
    bool causal = false;
    std::int64_t width() const { return heads * headDim; }
};
// The checks both backends make before an attention op (F32 tensors of rank 3 with one batch, every head's
// columns inside the rows, lengths inside the tensors, keyLengths I32 (N), out (N, Tq, H * Dh) and lse
// (N, H, Tq) where given); throws BackendError naming `op` and the tensor.
AttentionGeometry checkAttention(const std::string& op, const Tensor& q, const Tensor& k, const Tensor& v,
                                 const Tensor* keyLengths, const AttentionParams& p, const Tensor* out = nullptr,
                                 const Tensor* lse = nullptr);
// The checks of the pooling ops: x or dx (N, T, D), y or dy (N, D), lengths I32 (N) or null.
void checkMeanPool(const std::string& op, const Tensor& seq, const Tensor* lengths, const Tensor& pooled);

struct SgdParams {
    float lr = 0.01f, momentum = 0.0f, weightDecay = 0.0f;
    bool nesterov = false;
};

struct AdamParams {
    float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weightDecay = 0.0f;
    bool decoupled = false; // true: AdamW
};

// What a backend tells about itself (shown by `lathe-cli devices` and the GUI).
struct DeviceInfo {
    std::string backend;       // "cpu", "cuda"
    std::string name;          // "AMD EPYC 7B13 (2 threads)", "NVIDIA H100 80GB HBM3"
    Device device;
    bool available = true;
    std::string reason;        // why not available
    std::uint64_t memoryTotalBytes = 0;
    std::uint64_t memoryFreeBytes = 0;
    int computeCapabilityMajor = 0, computeCapabilityMinor = 0;
    int threads = 0;           // CPU worker threads
    std::string runtimeVersion; // CUDA runtime / OpenBLAS config
    std::string driverVersion;
    std::string libraryVersion; // cuBLAS version
};

// Times a region of device work: device events on the GPU, a monotonic clock on the CPU.
class DeviceTimer {
public:
    virtual ~DeviceTimer() = default;
    virtual void start() = 0;   // recorded on the backend's stream
    virtual void stop() = 0;
    virtual double elapsedMs() = 0; // waits for stop() to complete
};

// Device work recorded once and replayed with one launch (a CUDA graph): every replay() runs the recorded
// kernels again on the same buffers. The tensors the recorded work left alive (its outputs) are held here, at
// fixed addresses, and rewritten by each replay; they are valid once capture() has returned (it replays once).
class CapturedWork {
public:
    virtual ~CapturedWork() = default;
    virtual void replay() = 0; // enqueued on the backend's stream; returns without waiting
    virtual const std::vector<Tensor>& outputs() const = 0;
};

class Backend {
public:
    virtual ~Backend() = default;

    virtual std::string name() const = 0; // "cpu", "cuda:0"
    virtual Device device() const = 0;
    virtual DeviceInfo info() const = 0;
    // Whether this backend runs the whole op as described (from its table of implemented descriptors).
    virtual bool supports(const OpDesc& desc) const = 0;
    // Every descriptor it supports, in op order (for `lathe-cli devices` and tests).
    virtual std::vector<OpDesc> supportedOps() const = 0;

    // ---- memory and transfers
    virtual std::shared_ptr<Storage> allocate(std::size_t bytes) = 0;
    Tensor empty(const Shape& shape, DType dtype = DType::F32);
    Tensor zeros(const Shape& shape, DType dtype = DType::F32);
    // dst.bytes() are copied; src is host memory.
    virtual void copyFromHost(Tensor& dst, const void* src) = 0;
    virtual void copyToHost(const Tensor& src, void* dst) = 0;
    // Copies between tensors of this backend (same dtype, same numel).
    virtual void copy(const Tensor& src, Tensor& dst) = 0;
    virtual void synchronize() = 0;
    // Peak bytes allocated through this backend since the last reset.
    virtual std::uint64_t peakAllocatedBytes() const = 0;
    virtual void resetPeakAllocated() = 0;
    virtual std::uint64_t currentAllocatedBytes() const = 0;
    virtual std::unique_ptr<DeviceTimer> createTimer() = 0;
    // Records the device work `body` enqueues, and the tensors it returns, for replay: launch overhead (a few
    // microseconds a kernel) is the whole cost of small models at batch 1. nullptr where the backend has
    // nothing to record (the CPU runs every op as it is called). body must not synchronise or read results
    // back to the host, and should have run once before (so plans and workspaces exist); a backend that cannot
    // record what it does throws BackendError saying why.
    virtual std::unique_ptr<CapturedWork> capture(const std::function<std::vector<Tensor>()>& body) {
        (void)body;
        return nullptr;
    }

    // Another backend on the same device with its own queue of work (on CUDA a stream of its own, with its own
    // cuBLAS handles), so that two threads each driving one run their work at the same time. It reads this
    // backend's tensors (the device is the same) once the work enqueued here before the call has completed,
    // which the call waits for; what it allocates is its own. nullptr where the backend needs none: the CPU
    // backend's ops are re-entrant, several threads may call one CPU backend at once.
    virtual std::shared_ptr<Backend> makeInstance() { return nullptr; }

    // Host <-> backend helpers built on the virtual transfers.
    Tensor upload(const Tensor& hostTensor);
    Tensor upload(const std::vector<float>& values, const Shape& shape);
    Tensor uploadI32(const std::vector<std::int32_t>& values, const Shape& shape);
    Tensor uploadU8(const std::vector<std::uint8_t>& values, const Shape& shape);
    Tensor download(const Tensor& t);               // to a host tensor of the same dtype
    std::vector<float> downloadF32(const Tensor& t); // converted through the dtype traits

    // ---- ops
    // x[...] = value (F32; I32 stores the rounded value).
    virtual void fill(Tensor& x, float value) = 0;
    // dst = src converted between dtypes (the pairs in supportedOps(); block formats in whole blocks).
    virtual void convert(const Tensor& src, Tensor& dst) = 0;

    // c (M, N) = alpha * op(a) @ op(b) + beta * c. op(a) is (M, K), op(b) is (K, N).
    // a, b, c share one dtype: F32, F16 or BF16 (F16/BF16 accumulate in F32).
    virtual void gemm(const Tensor& a, Trans ta, const Tensor& b, Trans tb, Tensor& c,
                      float alpha = 1.0f, float beta = 0.0f) = 0;

    // y (N, out) = x (N, in) @ W^T, W (out, in) held in compressed sparse rows: rowPtr I32 (out + 1),
    // colIdx I32 (nnz), values (nnz) of x's dtype. Row o's nonzeros are values[rowPtr[o] .. rowPtr[o + 1])
    // in the columns colIdx[...]. out = rowPtr.numel() - 1, in = x.dim(1); y is overwritten. Shapes that
    // disagree throw BackendError; the CPU backend also checks the index contents (row pointers from 0
    // to nnz, non-decreasing; columns in [0, in)), the CUDA backend trusts them (checking would sync).
    virtual void spmmCsr(const Tensor& x, const Tensor& rowPtr, const Tensor& colIdx, const Tensor& values,
                         Tensor& y) = 0;
    // y (N, out) = x (N, in) @ W^T, W (out, in) held in the 2:4 format of sparse24.h: values (out, 2 * groups)
    // of x's dtype, meta U8 (out, ceil(groups / 2)), groups = ceil(in / 4); out = values.dim(0), in = x.dim(1);
    // y is overwritten. Shapes that disagree throw BackendError; the CPU backend also checks that the
    // positions of each row's last, partial group stay inside the matrix, the CUDA backend skips any that
    // do not (checking would sync).
    virtual void spmm24(const Tensor& x, const Tensor& values, const Tensor& meta, Tensor& y) = 0;

    // y (M, N) = act(x (M, K) @ W^T + bias): a float Linear with the bias and the activation applied to each
    // tile of y in the GEMM's epilogue, instead of a bias pass and an activation pass over y after it. W (N, K)
    // as a Linear stores it; bias (N) or null; act as the relu / gelu ops compute it (GELU exact, erf).
    // Descriptor OpDesc::uniform(Op::GemmBiasAct, dt); the default throws BackendError naming it.
    virtual void gemmBiasAct(const Tensor& x, const Tensor& w, const Tensor* bias, Activation act, Tensor& y);
    // The backend's execution layout of a float weight W (N, K) for gemmBiasActPacked, built once for many
    // inference products (as an inference session lays its weights out when it loads a model) instead of on every
    // call; opaque (its dtype and shape are the backend's own), and a copy: W edited later is not seen in it. W is
    // F32, or F16 / BF16 where the backend multiplies those by widening them to f32 (the CPU: its layout keeps the
    // 16-bit elements and widens them in registers). An undefined tensor where the backend has no such layout for
    // W (the default; CUDA's GEMMs read W as stored).
    virtual Tensor prepackGemmWeight(const Tensor& w);
    // y (M, N) F32 = act(x (M, K) F32 @ W^T + bias) from W as stored and its prepacked layout (what
    // prepackGemmWeight returned for this W, undefined included): the backend reads whichever suits the shape (the
    // CPU: an f32 W's layout from 2 rows of x up, W itself for one row). With a 16-bit W it computes what a 16-bit
    // Linear does after rounding its input: y = act(round(x widen(W)^T) + bias), the f32 sums of x as given and the
    // widened weight rounded once to W's format, then the bias and the activation in f32, all in the epilogue. act
    // may be None. The default runs gemmBiasAct(x, w, ...), for an f32 W.
    virtual void gemmBiasActPacked(const Tensor& x, const Tensor& w, const Tensor& packedW, const Tensor* bias,
                                   Activation act, Tensor& y);

    // ---- quantized linear algebra (descriptors in supportedOps(); the defaults throw BackendError naming it)
    // y (M, N) = act(x (M, K) @ W^T + bias), W weight-only quantized (QuantizedWeights): dequantized inside
    // the kernel, summed in f32. bias F32 (N) or null. Batch 1 reads each code once (a fused dequantize-GEMV);
    // larger batches dequantize W tile by tile into the f32 GEMM.
    virtual void gemmWeightOnly(const Tensor& x, const QuantizedWeights& w, const Tensor* bias, Activation act,
                                Tensor& y);
    // FP8 GEMM: y (M, N) F32 = act(sx * sum_k e4m3(x[m][k] / sx) * Wq[n][k] * scale[n] + bias[n]), x F32 (M, K)
    // quantized to E4M3 with one dynamic per-tensor scale sx = max|x| / 448 (1 for a zero x), W Fp8 with one
    // group per row (QuantizedWeights, scales (N, 1)). Descriptor fp8GemmDesc(mode).
    virtual void gemmFp8(const Tensor& x, const QuantizedWeights& w, const Tensor* bias, Activation act, Fp8Mode mode,
                         Tensor& y);
    // Activation quantization for the W8A8 GEMM: xq (M, K) I8 = clamp(round(x / s), -127, 127), rounding half
    // away from zero. dynamic: per row, scale F32 (M) is written with s = max|x row| / 127 (0 for a zero row,
    // whose codes are 0). Static: scale F32 (1) is read (a calibrated s > 0).
    virtual void quantizeRows(const Tensor& x, Tensor& xq, Tensor& scale, bool dynamic);
    // The backend's execution layout of an I8 weight (N, K) for gemmInt8, built once per weight (the
    // returned tensor is opaque: its dtype and shape are the backend's own).
    virtual Tensor prepackInt8(const Tensor& wq);
    // W8A8: y (M, N) F32 = act(acc * xScale[m] * wScale[n] + bias[n]) with acc the exact I32 sum over k of
    // xq (M, K) I8 times W[n][k] (W as given to prepackInt8, packed). xScale F32 (M) or (1); wScale F32 (N)
    // or (1); bias F32 (N) or null.
    virtual void gemmInt8(const Tensor& xq, const Tensor& xScale, const Tensor& packedW, const Tensor& wScale,
                          const Tensor* bias, Activation act, Tensor& y);

    // A convolution as a GEMM over rows, for the quantized conv (groups 1): cols (N * OH * OW, C * KH * KW) F32
    // holds, in row n * OH * OW + oh * OW + ow, the input patch under that output position in the weight's
    // (c, kh, kw) order, zero where the patch reaches into the padding.
    virtual void im2colRows(const Tensor& x, Tensor& cols, const Conv2dGeometry& g);
    // y (N, K, P...) = the per-image transpose of rows (N * P, K): y[n][k][p] = rows[n * P + p][k]; N = images.
    virtual void rowsToChannels(const Tensor& rows, Tensor& y, std::int64_t images);

    // x (outer, C, inner...) += bias (C): C = x.dim(1); inner = product of dims after 1 (1 for 2-D).
    virtual void biasAdd(Tensor& x, const Tensor& bias) = 0;
    // dbias (C) (+)= sum of dy (outer, C, inner...) over outer and inner.
    virtual void biasGrad(const Tensor& dy, Tensor& dbias, bool accumulate) = 0;

    virtual void add(const Tensor& a, const Tensor& b, Tensor& out) = 0; // elementwise, same shape
    virtual void mul(const Tensor& a, const Tensor& b, Tensor& out) = 0; // elementwise, same shape
    virtual void axpy(float alpha, const Tensor& x, Tensor& y) = 0;      // y += alpha * x
    virtual void scale(Tensor& x, float s) = 0;                         // x *= s

    virtual void relu(const Tensor& x, Tensor& y) = 0;
    virtual void reluBackward(const Tensor& x, const Tensor& dy, Tensor& dx) = 0; // x: the forward input
    virtual void gelu(const Tensor& x, Tensor& y) = 0;                           // exact (erf) GELU
    virtual void geluBackward(const Tensor& x, const Tensor& dy, Tensor& dx) = 0;
    // mask = (hashUniform(seed, i) >= p) / (1 - p); y = x * mask. Same mask on every backend.
    virtual void dropout(const Tensor& x, Tensor& y, Tensor& mask, float p, std::uint64_t seed) = 0;

    // Row-wise softmax: x, y (N, C).
    virtual void softmax(const Tensor& x, Tensor& y) = 0;
    // logits (N, C), labels I32 (N) -> losses (N) (per-row -log softmax[label]),
    // dlogits (N, C) = (softmax - onehot) * gradScale. Labels out of range throw.
    virtual void softmaxCrossEntropy(const Tensor& logits, const Tensor& labels, Tensor& losses,
                                     Tensor& dlogits, float gradScale) = 0;
    // Knowledge distillation (Hinton et al. 2015) per row, student and teacher logits (N, C), labels I32 (N):
    //   soft = T^2 * KL(softmax(teacher / T) || softmax(student / T)), hard = -log softmax(student)[label],
    //   parts (N, 2) = (soft, hard), losses (N) = alpha * soft + (1 - alpha) * hard,
    //   dstudent (N, C) = gradScale * (alpha * T * (softmax(student / T) - softmax(teacher / T))
    //                                  + (1 - alpha) * (softmax(student) - onehot)).
    // The hard part is softmaxCrossEntropy's arithmetic, so alpha = 0 gives its results bit for bit.
    // temperature > 0 and alpha in [0, 1], else BackendError; labels out of range throw.
    virtual void distillationLoss(const Tensor& student, const Tensor& teacher, const Tensor& labels,
                                  float temperature, float alpha, Tensor& losses, Tensor& parts, Tensor& dstudent,
                                  float gradScale) = 0;
    // x (N, C) -> out I32 (N): index of the first maximum.
    virtual void argmaxRows(const Tensor& x, Tensor& out) = 0;

    // x (N, C, H, W), w (K, C/G, KH, KW) -> y (N, K, OH, OW), G = g.groups. Bias is a separate biasAdd.
    // Channels not divisible by G, or a w whose shape is not (K, C/G, KH, KW), throw BackendError.
    virtual void conv2dForward(const Tensor& x, const Tensor& w, Tensor& y, const Conv2dGeometry& g) = 0;
    // dy (N, K, OH, OW), w -> dx (N, C, H, W) (overwritten).
    virtual void conv2dBackwardData(const Tensor& dy, const Tensor& w, Tensor& dx, const Conv2dGeometry& g) = 0;
    // x, dy -> dw (K, C/G, KH, KW) (+)= gradient.
    virtual void conv2dBackwardWeight(const Tensor& x, const Tensor& dy, Tensor& dw, const Conv2dGeometry& g,
                                      bool accumulate) = 0;

    // x (N, C, H, W) -> y (N, C, OH, OW), argmax I32 (N, C, OH, OW): flat index into x's (H, W) plane.
    virtual void maxPool2dForward(const Tensor& x, Tensor& y, Tensor& argmax, const Pool2dGeometry& g) = 0;
    // dx (N, C, H, W) = scatter of dy through argmax (overwritten).
    virtual void maxPool2dBackward(const Tensor& dy, const Tensor& argmax, Tensor& dx, const Pool2dGeometry& g) = 0;

    // x (N, D), gamma, beta (D) -> y (N, D), mean (N), rstd (N).
    virtual void layerNormForward(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& y,
                                  Tensor& mean, Tensor& rstd, float eps) = 0;
    // dx (N, D) (overwritten), dgamma, dbeta (D) (+)= gradients.
    virtual void layerNormBackward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                   const Tensor& rstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta,
                                   bool accumulate) = 0;

    // Batch normalization over the channel dimension, as torch.nn.BatchNorm2d: x, y (N, C, inner...) with
    // C = x.dim(1) and M = N * inner values per channel; gamma, beta, runningMean, runningVar, mean, rstd (C).
    // Training: normalizes with the batch's mean and biased variance, writes them as mean and
    // rstd = 1 / sqrt(var + eps), and updates runningMean and runningVar with the momentum, the variance taken
    // unbiased (var * M / (M - 1)); M must exceed 1, else BackendError (as PyTorch refuses one value per channel).
    // Evaluation: normalizes with the running statistics, which stay as they are; mean and rstd receive them.
    virtual void batchNormForward(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& runningMean,
                                  Tensor& runningVar, Tensor& y, Tensor& mean, Tensor& rstd,
                                  const BatchNormParams& p) = 0;
    // The gradient of a training forward (mean, rstd as it wrote them): with xhat = (x - mean) * rstd,
    // dx (overwritten) = gamma * rstd * (dy - mean_M(dy) - xhat * mean_M(dy * xhat)),
    // dgamma (+)= sum_M dy * xhat, dbeta (+)= sum_M dy.
    virtual void batchNormBackward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                   const Tensor& rstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta, bool accumulate) = 0;

    // ids I32 (N), table (V, D) -> y (N, D). Ids out of range throw.
    virtual void embeddingForward(const Tensor& ids, const Tensor& table, Tensor& y) = 0;
    // dtable (V, D) (+)= scatter-add of dy (N, D) at ids.
    virtual void embeddingBackward(const Tensor& ids, const Tensor& dy, Tensor& dtable, bool accumulate) = 0;

    // ---- transformers (AttentionParams above; the defaults throw BackendError naming the op)
    // out (N, Tq, H * Dh) = softmax(scale * q k^T + mask) v per sequence and head; lse F32 (N, H, Tq) receives
    // each row's log-sum-exp of the scaled, masked scores (what the backward needs). keyLengths I32 (N) or
    // null: sequence n's keys at positions >= keyLengths[n] are masked out (right padding); a row that sees
    // no key at all gets out = 0 and lse = -inf. Queries at padded positions are computed like the others.
    virtual void attentionForward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* keyLengths,
                                  Tensor& out, Tensor& lse, const AttentionParams& p);
    // The gradients of attentionForward from dout (N, Tq, H * Dh) and the forward's out and lse: dq, dk, dv have
    // the layouts of q, k, v (the same tensor for a fused QKV) and only their heads' columns of the rows
    // t < queryLen (keyLen) are written (overwritten).
    virtual void attentionBackward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                   const Tensor* keyLengths, const Tensor& out, const Tensor& lse, Tensor& dq,
                                   Tensor& dk, Tensor& dv, const AttentionParams& p);
    // y (N, D) = mean of x (N, T, D) over the first lengths[n] time steps (all T when lengths is null; a
    // length of 0 gives zeros). lengths I32 (N), clamped to [0, T].
    virtual void meanPoolForward(const Tensor& x, const Tensor* lengths, Tensor& y);
    // dx (N, T, D) (overwritten) = dy[n] / lengths[n] on the valid steps, 0 on the padding.
    virtual void meanPoolBackward(const Tensor& dy, const Tensor* lengths, Tensor& dx);
    // y (N, D) = x / max(||x row||, eps) (torch.nn.functional.normalize), norm (N) = ||x row||.
    virtual void l2NormalizeForward(const Tensor& x, Tensor& y, Tensor& norm, float eps);
    // dx (N, D) (overwritten) from dy, the forward's y and norm: (dy - y (y . dy)) / norm where norm > eps,
    // dy / eps where the row was clamped.
    virtual void l2NormalizeBackward(const Tensor& dy, const Tensor& y, const Tensor& norm, Tensor& dx, float eps);

    // PyTorch semantics (torch.optim.SGD / Adam / AdamW). step counts from 1.
    virtual void sgdStep(Tensor& param, const Tensor& grad, Tensor& velocity, const SgdParams& p,
                         bool firstStep) = 0;
    virtual void adamStep(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamParams& p,
                          std::int64_t step) = 0;

protected:
    // Throws BackendError "<backend> does not support <descriptor>" unless supports(desc).
    void require(const OpDesc& desc) const;
    // require(OpDesc::uniform(op, dtype)): for the ops whose tensors all share one dtype.
    void require(Op op, DType dtype) const { require(OpDesc::uniform(op, dtype)); }
};

} // namespace lathe

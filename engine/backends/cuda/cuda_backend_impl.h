// Private to the CUDA backend: the CudaBackend class, its shared per-device context (stream, byte
// accounting) and the cuBLAS/cuBLASLt GEMM engine. Only engine/backends/cuda/*.cpp include this;
// cuda_backend.cpp holds the plumbing, ops_<family>.cpp the ops, one family per file.
#pragma once

#include "engine/backends/backend.h"
#include "engine/backends/cuda/cuda_check.h"
#include "engine/core/errors.h"

#include <atomic>
#include <cstring>
#include <functional>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

namespace lathe::cuda {

// Makes `index` the calling thread's current device for the guard's lifetime.
class DeviceGuard {
public:
    explicit DeviceGuard(int index);
    ~DeviceGuard();
    DeviceGuard(const DeviceGuard&) = delete;
    DeviceGuard& operator=(const DeviceGuard&) = delete;

private:
    int m_previous = -1;
    int m_index;
};

// State that device buffers and timers share with the backend: they may outlive it (a tensor held
// after the backend is gone), so the stream lives until the last of them is destroyed.
struct CudaContext {
    int index = 0;
    cudaStream_t stream = nullptr;
    bool streamOrderedAlloc = false; // cudaMallocAsync from the device pool (when supported)
    std::atomic<std::uint64_t> currentBytes{0};
    std::atomic<std::uint64_t> peakBytes{0};

    explicit CudaContext(int deviceIndex);
    ~CudaContext();
    CudaContext(const CudaContext&) = delete;
    CudaContext& operator=(const CudaContext&) = delete;

    void addBytes(std::uint64_t n);
    void subBytes(std::uint64_t n) { currentBytes.fetch_sub(n, std::memory_order_relaxed); }
};

// Row-major GEMMs on the backend's stream: cublasSgemm for F32 (IEEE FP32 math, no TF32 unless
// LATHE_CUDA_ALLOW_TF32=1), cuBLASLt with F32 accumulation for F16/BF16, with I32 for the int8 GEMM.
class GemmEngine {
public:
    GemmEngine(std::shared_ptr<CudaContext> ctx, int ccMajor);
    ~GemmEngine();
    GemmEngine(const GemmEngine&) = delete;
    GemmEngine& operator=(const GemmEngine&) = delete;

    // c (M, N) = alpha * op(a) @ op(b) + beta * c; lda/ldb/ldc are row-major row lengths.
    void run(DType dt, Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
             const void* a, std::int64_t lda, const void* b, std::int64_t ldb, float beta, void* c,
             std::int64_t ldc);
    // F32 only: `batch` GEMMs c_i (M, N) = alpha * op(a_i) @ op(b_i) + beta * c_i, where a_i = a + i * strideA
    // (elements), and likewise b_i and c_i (a grouped convolution's per-group products).
    void runStridedBatched(Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                           const float* a, std::int64_t lda, std::int64_t strideA, const float* b, std::int64_t ldb,
                           std::int64_t strideB, float beta, float* c, std::int64_t ldc, std::int64_t strideC,
                           std::int64_t batch);
    // acc (M, N) I32 = x (M, K) I8 @ w^T, w (N, K) I8 row-major, through cuBLASLt's int8 GEMM (32-bit integer
    // compute, exact). Returns false, launching nothing, where cuBLASLt has no kernel: its int8 GEMM reads K in
    // groups of 4 (K a multiple of 4, pointers 4-byte aligned).
    bool runInt8(std::int64_t m, std::int64_t n, std::int64_t k, const void* x, const void* w, void* acc);
    // acc (M, N) F32 = xScale * (x (M, K) E4M3 @ w^T), w (N, K) E4M3 row-major, xScale a device F32 (1), through
    // cuBLASLt's FP8 GEMM (compute capability 8.9+, f32 sums, the scale as its B scale pointer). Returns false,
    // launching nothing, where cuBLASLt has no kernel (its FP8 GEMM wants K a multiple of 16, 16-byte alignment).
    bool runFp8(std::int64_t m, std::int64_t n, std::int64_t k, const void* x, const void* w, const float* xScale,
                float* acc);
    // y (M, N) F32 = x (M, K) @ w^T + bias, w (N, K) row-major, bias (N) or null, through cuBLASLt with the
    // bias (and, for relu, the ReLU) in its epilogue: CUBLASLT_EPILOGUE_DEFAULT / BIAS / RELU / RELU_BIAS.
    // Returns false, launching nothing, where cuBLASLt offers no algorithm for the shape and alignment.
    bool runF32Epilogue(std::int64_t m, std::int64_t n, std::int64_t k, const float* x, const float* w,
                        const float* bias, bool relu, float* y);
    bool tf32() const { return m_tf32; }

private:
    struct LtPlan;
    // Runs the plan once with a candidate algorithm on the call's operands; false if it refused them.
    using Trial = std::function<bool(const cublasLtMatmulAlgo_t&)>;
    // The fastest cuBLASLt algorithm for the plan's descriptors at operand alignment `align`, if there is one:
    // the heuristic's first, or with a trial the fastest of its first eight as timed on the device;
    // f32Reduction (F16/BF16 outputs) admits only split-K reductions in the F32 compute type.
    void pickAlgo(LtPlan& plan, std::uint32_t align, bool f32Reduction, const Trial& trial);
    void ensureWorkspace();
    std::unique_ptr<LtPlan> tnPlan(cublasComputeType_t compute, cudaDataType_t scaleType, cudaDataType_t operands,
                                   cudaDataType_t out, std::int64_t m, std::int64_t n, std::int64_t k);
    using PlanKey = std::tuple<int, int, int, std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                               std::int64_t, int>;
    void runLt(DType dt, Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
               const void* a, std::int64_t lda, const void* b, std::int64_t ldb, float beta, void* c,
               std::int64_t ldc);

    std::shared_ptr<CudaContext> m_ctx;
    cublasHandle_t m_cublas = nullptr;
    cublasLtHandle_t m_lt = nullptr;
    void* m_ltWorkspace = nullptr;
    std::size_t m_ltWorkspaceBytes;
    bool m_tf32 = false;
    bool m_trials = true; // LATHE_CUDA_GEMM_TRIALS=0 turns the plan-time trials off
    std::map<PlanKey, std::unique_ptr<LtPlan>> m_plans;
};

// DeviceInfo for one device (name, memory, capability, versions); shared by the probe and info().
DeviceInfo describeDevice(int index);

// One device, one stream. Every op checks its descriptor against the table (cuda_backend.cpp), its
// tensors' device and shapes, then launches on the stream; nothing synchronises unless it must read
// a result back (error flags, copyToHost).
class CudaBackend final : public Backend {
public:
    explicit CudaBackend(int index);
    ~CudaBackend() override;

    std::string name() const override { return "cuda:" + std::to_string(m_ctx->index); }
    Device device() const override { return Device{DeviceKind::Cuda, m_ctx->index}; }
    DeviceInfo info() const override;
    bool supports(const OpDesc& desc) const override { return m_ops.contains(desc); }
    std::vector<OpDesc> supportedOps() const override { return m_ops.all(); }

    // cuda_backend.cpp: memory and transfers
    std::shared_ptr<Storage> allocate(std::size_t bytes) override;
    void copyFromHost(Tensor& dst, const void* src) override;
    void copyToHost(const Tensor& src, void* dst) override;
    void copy(const Tensor& src, Tensor& dst) override;
    void synchronize() override;
    std::uint64_t peakAllocatedBytes() const override { return m_ctx->peakBytes.load(); }
    void resetPeakAllocated() override { m_ctx->peakBytes.store(m_ctx->currentBytes.load()); }
    std::uint64_t currentAllocatedBytes() const override { return m_ctx->currentBytes.load(); }
    std::unique_ptr<DeviceTimer> createTimer() override;
    std::unique_ptr<CapturedWork> capture(const std::function<std::vector<Tensor>()>& body) override;
    std::shared_ptr<Backend> makeInstance() override;

    // ops_convert.cpp
    void fill(Tensor& x, float value) override;
    void convert(const Tensor& src, Tensor& dst) override;
    // ops_gemm.cpp
    void gemm(const Tensor& a, Trans ta, const Tensor& b, Trans tb, Tensor& c, float alpha, float beta) override;
    void gemmBiasAct(const Tensor& x, const Tensor& w, const Tensor* bias, Activation act, Tensor& y) override;
    // ops_sparse.cpp (cuSPARSE)
    void spmmCsr(const Tensor& x, const Tensor& rowPtr, const Tensor& colIdx, const Tensor& values,
                 Tensor& y) override;
    // ops_sparse.cpp (our own kernel, sparse24.cu)
    void spmm24(const Tensor& x, const Tensor& values, const Tensor& meta, Tensor& y) override;
    // ops_weight_only.cpp (our own kernels, weight_only.cu, and cuBLAS for larger batches)
    void gemmWeightOnly(const Tensor& x, const QuantizedWeights& w, const Tensor* bias, Activation act,
                        Tensor& y) override;
    // ops_fp8.cpp (fp8.cu, cuBLASLt's FP8 GEMM)
    void gemmFp8(const Tensor& x, const QuantizedWeights& w, const Tensor* bias, Activation act, Fp8Mode mode,
                 Tensor& y) override;
    // ops_int8.cpp (int8.cu, cuBLASLt)
    void quantizeRows(const Tensor& x, Tensor& xq, Tensor& scale, bool dynamic) override;
    Tensor prepackInt8(const Tensor& wq) override;
    void gemmInt8(const Tensor& xq, const Tensor& xScale, const Tensor& packedW, const Tensor& wScale,
                  const Tensor* bias, Activation act, Tensor& y) override;
    // ops_elementwise.cpp
    void biasAdd(Tensor& x, const Tensor& bias) override;
    void biasGrad(const Tensor& dy, Tensor& dbias, bool accumulate) override;
    void add(const Tensor& a, const Tensor& b, Tensor& out) override;
    void mul(const Tensor& a, const Tensor& b, Tensor& out) override;
    void axpy(float alpha, const Tensor& x, Tensor& y) override;
    void scale(Tensor& x, float s) override;
    void relu(const Tensor& x, Tensor& y) override;
    void reluBackward(const Tensor& x, const Tensor& dy, Tensor& dx) override;
    void gelu(const Tensor& x, Tensor& y) override;
    void geluBackward(const Tensor& x, const Tensor& dy, Tensor& dx) override;
    void dropout(const Tensor& x, Tensor& y, Tensor& mask, float p, std::uint64_t seed) override;
    // ops_softmax.cpp
    void softmax(const Tensor& x, Tensor& y) override;
    void softmaxCrossEntropy(const Tensor& logits, const Tensor& labels, Tensor& losses, Tensor& dlogits,
                             float gradScale) override;
    void distillationLoss(const Tensor& student, const Tensor& teacher, const Tensor& labels, float temperature,
                          float alpha, Tensor& losses, Tensor& parts, Tensor& dstudent, float gradScale) override;
    void argmaxRows(const Tensor& x, Tensor& out) override;
    // ops_conv.cpp (convolution and pooling)
    void conv2dForward(const Tensor& x, const Tensor& w, Tensor& y, const Conv2dGeometry& g) override;
    void im2colRows(const Tensor& x, Tensor& cols, const Conv2dGeometry& g) override;
    void rowsToChannels(const Tensor& rows, Tensor& y, std::int64_t images) override;
    void conv2dBackwardData(const Tensor& dy, const Tensor& w, Tensor& dx, const Conv2dGeometry& g) override;
    void conv2dBackwardWeight(const Tensor& x, const Tensor& dy, Tensor& dw, const Conv2dGeometry& g,
                              bool accumulate) override;
    void maxPool2dForward(const Tensor& x, Tensor& y, Tensor& argmax, const Pool2dGeometry& g) override;
    void maxPool2dBackward(const Tensor& dy, const Tensor& argmax, Tensor& dx, const Pool2dGeometry& g) override;
    // ops_norm_embed.cpp
    void layerNormForward(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& y, Tensor& mean,
                          Tensor& rstd, float eps) override;
    void layerNormBackward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                           const Tensor& rstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta, bool accumulate) override;
    void batchNormForward(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& runningMean,
                          Tensor& runningVar, Tensor& y, Tensor& mean, Tensor& rstd, const BatchNormParams& p) override;
    void batchNormBackward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                           const Tensor& rstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta, bool accumulate) override;
    void embeddingForward(const Tensor& ids, const Tensor& table, Tensor& y) override;
    void embeddingBackward(const Tensor& ids, const Tensor& dy, Tensor& dtable, bool accumulate) override;
    // ops_attention.cpp (attention.cu, cuBLAS for the unfused path's GEMMs)
    void attentionForward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* keyLengths, Tensor& out,
                          Tensor& lse, const AttentionParams& p) override;
    void attentionBackward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                           const Tensor* keyLengths, const Tensor& out, const Tensor& lse, Tensor& dq, Tensor& dk,
                           Tensor& dv, const AttentionParams& p) override;
    void meanPoolForward(const Tensor& x, const Tensor* lengths, Tensor& y) override;
    void meanPoolBackward(const Tensor& dy, const Tensor* lengths, Tensor& dx) override;
    void l2NormalizeForward(const Tensor& x, Tensor& y, Tensor& norm, float eps) override;
    void l2NormalizeBackward(const Tensor& dy, const Tensor& y, const Tensor& norm, Tensor& dx, float eps) override;
    // ops_optim.cpp
    void sgdStep(Tensor& param, const Tensor& grad, Tensor& velocity, const SgdParams& p, bool firstStep) override;
    void adamStep(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamParams& p,
                  std::int64_t step) override;

private:
    // The descriptors this backend runs today (cuda_backend.cpp).
    static OpTable buildOpTable();

    cudaStream_t stream() const { return m_ctx->stream; }
    cudaError_t allocRaw(void** p, std::size_t bytes);

    // Every op starts here: the descriptor must be supported, the tensors must live on this device,
    // and this device must be current for the launches that follow.
    void begin(const OpDesc& desc, std::initializer_list<const Tensor*> tensors);
    void begin(Op op, DType dt, std::initializer_list<const Tensor*> tensors) {
        begin(OpDesc::uniform(op, dt), tensors);
    }

    // Argument checks; each throws BackendError naming the op and the tensor.
    void checkOnDevice(const Tensor& t, const char* op, const char* what) const;
    static void checkSame(const char* op, std::initializer_list<const Tensor*> tensors);
    static void checkRank(const Tensor& t, int rank, const char* op, const char* what);
    static void checkShape(const Tensor& t, const Shape& shape, DType dt, const char* op, const char* what);
    static void checkBias(const Tensor& x, const Tensor& bias, const char* op);
    // Also checks the groups: C and K divisible by them, w (K, C/groups, KH, KW).
    static void checkConv(const Conv2dGeometry& g, const Tensor& x, const Tensor& w, const Tensor& y, const char* op,
                          const char* yName, const char* wName = "w");
    static void checkPool(const Pool2dGeometry& g, const Tensor& x, const Tensor& y, const Tensor& argmax,
                          const char* op);
    // Images per im2col chunk, so the columns stay under their byte budget (ops_conv.cpp).
    std::int64_t chunkImages(const Conv2dGeometry& g) const;

    void resetErrorFlag();
    // Frees the error flag and the staging buffers (destructor, and a constructor that throws).
    void releaseBuffers();
    // copyFromHost's two pinned staging buffers and the events of their last transfers; false where pinned
    // memory cannot be had (copyFromHost then copies and waits).
    bool allocateStaging();
    static constexpr std::size_t kStagingBytes = std::size_t{4} << 20;
    // Reads the device-side error flag back (a synchronisation point) and throws with `describe(row, value)`.
    template <class F>
    void throwIfFlagged(F&& describe) {
        LATHE_CUDA_CHECK(cudaMemcpyAsync(m_errorHost, m_errorFlag, 2 * sizeof(int), cudaMemcpyDeviceToHost, stream()));
        LATHE_CUDA_CHECK(cudaStreamSynchronize(stream()));
        std::uint64_t packed = 0; // (row << 32 | value), all ones when nothing was reported (reportBadIndex)
        std::memcpy(&packed, m_errorHost, sizeof packed);
        if (packed != ~std::uint64_t{0})
            throw BackendError(describe(static_cast<int>(packed >> 32),
                                        static_cast<int>(static_cast<std::uint32_t>(packed & 0xffffffffu))));
    }

    std::shared_ptr<CudaContext> m_ctx;
    DeviceInfo m_info;
    GemmEngine m_gemm;
    OpTable m_ops;
    Tensor m_dynamicMap; // dynamicMap8() (256) on this device, uploaded at the first double-quantized nf4 GEMM
    int* m_errorFlag = nullptr;  // device, 8 bytes: the first bad row and its value (reportBadIndex)
    int* m_errorHost = nullptr;  // pinned mirror
    void* m_staging[2] = {nullptr, nullptr};
    cudaEvent_t m_stagingDone[2] = {nullptr, nullptr};
    int m_stagingNext = 0;
    std::mutex m_stagingMutex;

    // cuSPARSE handle and SpMM workspace, created by the first sparse op (ops_sparse.cpp), so a
    // backend that never runs one never initialises cuSPARSE.
    struct SparseState;
    struct SparseStateDeleter {
        void operator()(SparseState* s) const;
    };
    std::unique_ptr<SparseState, SparseStateDeleter> m_sparse;
};

} // namespace lathe::cuda

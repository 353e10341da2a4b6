// The CPU backend's class, shared by the files that implement its ops (one family per file).
// Internal to engine/backends/cpu: other code creates it through makeCpuBackend().
#pragma once

#include "engine/backends/backend.h"
#include "engine/backends/cpu/cpu_backend.h"
#include "engine/backends/cpu/host_pool.h"
#include "engine/backends/cpu/thread_pool.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

namespace lathe::cpu {

// Below this many elements an element-wise loop runs on the calling thread: waking a worker
// costs a few microseconds, more than the loop itself (this keeps batch-1 latency low).
constexpr std::int64_t kInlineElements = 1 << 15;
// GEMMs below this many multiply-adds run as one OpenBLAS call on the calling thread.
constexpr double kParallelGemmMacs = 1 << 20;
// Narrowest GEMM panel given to one task (see CpuBackend::sgemm).
constexpr std::int64_t kGemmPanel = 128;

constexpr float kInvSqrt2 = 0.70710678118654752440f;
// The exact (erf) GELU of one value: the gelu op and the int8 GEMM's epilogue share it, so the fused and
// the separate activation agree bit for bit.
inline float geluExact(float v) { return 0.5f * v * (1.0f + std::erf(v * kInvSqrt2)); }

// What a GEMM applies to each panel of c right after writing it, while the panel is in cache:
// c[i][j] = act(c[i][j] + bias[j]) (applyBiasActivation, cpu_weight_only.h). bias (N) or null.
struct GemmEpilogue {
    const float* bias = nullptr;
    Activation act = Activation::None;
    bool empty() const { return !bias && act == Activation::None; }
};

class CpuBackend final : public Backend {
public:
    explicit CpuBackend(int threads);

    std::string name() const override { return "cpu"; }
    Device device() const override { return Device{DeviceKind::Cpu, 0}; }
    DeviceInfo info() const override;
    bool supports(const OpDesc& desc) const override;
    std::vector<OpDesc> supportedOps() const override;

    std::shared_ptr<Storage> allocate(std::size_t bytes) override;
    void copyFromHost(Tensor& dst, const void* src) override;
    void copyToHost(const Tensor& src, void* dst) override;
    void copy(const Tensor& src, Tensor& dst) override;
    void synchronize() override {}
    std::uint64_t peakAllocatedBytes() const override { return m_pool->peakBytes(); }
    void resetPeakAllocated() override { m_pool->resetPeak(); }
    std::uint64_t currentAllocatedBytes() const override { return m_pool->currentBytes(); }
    std::unique_ptr<DeviceTimer> createTimer() override;

    void fill(Tensor& x, float value) override;
    void convert(const Tensor& src, Tensor& dst) override;
    void gemm(const Tensor& a, Trans ta, const Tensor& b, Trans tb, Tensor& c, float alpha, float beta) override;
    void gemmBiasAct(const Tensor& x, const Tensor& w, const Tensor* bias, Activation act, Tensor& y) override;
    // (panels, K, 32) of W's dtype (f32, f16 or bf16): W's 32-column panels as the own GEMM reads them
    // (cpu_sgemm.h), a 16-bit one widened in registers; undefined where that kernel is not enabled.
    Tensor prepackGemmWeight(const Tensor& w) override;
    void gemmBiasActPacked(const Tensor& x, const Tensor& w, const Tensor& packedW, const Tensor* bias,
                           Activation act, Tensor& y) override;
    // cpu_sparse.cpp
    void spmmCsr(const Tensor& x, const Tensor& rowPtr, const Tensor& colIdx, const Tensor& values,
                 Tensor& y) override;
    void spmm24(const Tensor& x, const Tensor& values, const Tensor& meta, Tensor& y) override;
    // cpu_weight_only.cpp
    void gemmWeightOnly(const Tensor& x, const QuantizedWeights& w, const Tensor* bias, Activation act,
                        Tensor& y) override;
    void gemmFp8(const Tensor& x, const QuantizedWeights& w, const Tensor* bias, Activation act, Fp8Mode mode,
                 Tensor& y) override;
    // cpu_int8.cpp
    void quantizeRows(const Tensor& x, Tensor& xq, Tensor& scale, bool dynamic) override;
    Tensor prepackInt8(const Tensor& wq) override;
    void gemmInt8(const Tensor& xq, const Tensor& xScale, const Tensor& packedW, const Tensor& wScale,
                  const Tensor* bias, Activation act, Tensor& y) override;
    CpuInt8Path int8Path() const { return m_int8Path; }
    void setInt8Path(CpuInt8Path path); // BackendError when this CPU lacks it

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
    void softmax(const Tensor& x, Tensor& y) override;
    void softmaxCrossEntropy(const Tensor& logits, const Tensor& labels, Tensor& losses, Tensor& dlogits,
                             float gradScale) override;
    void distillationLoss(const Tensor& student, const Tensor& teacher, const Tensor& labels, float temperature,
                          float alpha, Tensor& losses, Tensor& parts, Tensor& dstudent, float gradScale) override;
    void argmaxRows(const Tensor& x, Tensor& out) override;

    void conv2dForward(const Tensor& x, const Tensor& w, Tensor& y, const Conv2dGeometry& g) override;
    void im2colRows(const Tensor& x, Tensor& cols, const Conv2dGeometry& g) override;
    void rowsToChannels(const Tensor& rows, Tensor& y, std::int64_t images) override;
    void conv2dBackwardData(const Tensor& dy, const Tensor& w, Tensor& dx, const Conv2dGeometry& g) override;
    void conv2dBackwardWeight(const Tensor& x, const Tensor& dy, Tensor& dw, const Conv2dGeometry& g,
                              bool accumulate) override;
    void maxPool2dForward(const Tensor& x, Tensor& y, Tensor& argmax, const Pool2dGeometry& g) override;
    void maxPool2dBackward(const Tensor& dy, const Tensor& argmax, Tensor& dx, const Pool2dGeometry& g) override;

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

    // cpu_attention.cpp
    void attentionForward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* keyLengths, Tensor& out,
                          Tensor& lse, const AttentionParams& p) override;
    void attentionBackward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                           const Tensor* keyLengths, const Tensor& out, const Tensor& lse, Tensor& dq, Tensor& dk,
                           Tensor& dv, const AttentionParams& p) override;
    void meanPoolForward(const Tensor& x, const Tensor* lengths, Tensor& y) override;
    void meanPoolBackward(const Tensor& dy, const Tensor* lengths, Tensor& dx) override;
    void l2NormalizeForward(const Tensor& x, Tensor& y, Tensor& norm, float eps) override;
    void l2NormalizeBackward(const Tensor& dy, const Tensor& y, const Tensor& norm, Tensor& dx, float eps) override;

    void sgdStep(Tensor& param, const Tensor& grad, Tensor& velocity, const SgdParams& p, bool firstStep) override;
    void adamStep(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamParams& p,
                  std::int64_t step) override;

    ThreadPool& pool() { return m_threads; }
    // Row-major f32 GEMM split over the pool (see cpu_backend.cpp); the epilogue runs on each panel of c.
    void sgemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
               std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc,
               GemmEpilogue epilogue = {});

private:
    // Element-wise loop over [0, n), inline for small n.
    template <class F>
    void forEach(std::int64_t n, F&& f, std::int64_t minPerTask = kInlineElements / 2) {
        if (n < 2 * minPerTask) {
            f(std::int64_t{0}, n);
            return;
        }
        m_threads.parallelFor(n, minPerTask, f);
    }

    // cpu_sparse.cpp: y = x @ W^T over one sparse format's view of W's rows (spmmCsr, spmm24).
    template <class Weights>
    void sparseProduct(const Weights& w, const Tensor& x, std::int64_t macsPerRow, Tensor& y);

    static OpTable buildOpTable();

    // The W8A8 kernels in use (cpu_int8.cpp); m_int8PathError is set when LATHE_CPU_INT8_PATH asked for
    // one this CPU cannot run (the int8 ops then throw it, the rest of the backend works).
    CpuInt8Path checkedInt8Path(const char* op) const;

    ThreadPool m_threads;
    std::shared_ptr<HostPool> m_pool;
    OpTable m_ops;
    std::string m_int8PathError; // before m_int8Path: initialInt8Path writes it
    CpuInt8Path m_int8Path;
};

// Argument checks shared by the op files; each throws BackendError naming the op and the tensor.
void checkCpu(const Tensor& t, const char* op, const char* what);
void checkShape(const Tensor& t, const Shape& expected, const char* op, const char* what);
void checkSameShape(const Tensor& a, const Tensor& b, const char* op, const char* whatA, const char* whatB);
void checkDType(const Tensor& t, DType expected, const char* op, const char* what);

// The W8A8 path the CPU backend starts with: LATHE_CPU_INT8_PATH when set (read once), else the best this
// CPU runs. error receives why the variable's path cannot be used ("" when it can).
CpuInt8Path initialInt8Path(std::string& error);

// One single-threaded OpenBLAS call on row-major pointers (GEMV when one side is a vector).
void sgemmRowMajor(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
                   std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc);

} // namespace lathe::cpu

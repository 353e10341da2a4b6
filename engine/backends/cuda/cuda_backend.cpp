// The CUDA backend's plumbing: context, device buffers from the stream-ordered pool, transfers, the
// table of supported op descriptors and the argument checks. Ops live in ops_<family>.cpp, kernels in
// the .cu files (one op family each), the cuBLAS/cuBLASLt engine in cuda_gemm.cpp.
#include "engine/backends/cuda/cuda_backend.h"
#include "engine/backends/cuda/cuda_backend_impl.h"
#include "engine/backends/cuda/cuda_kernels.h"

#include "engine/core/errors.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>

namespace lathe {
namespace cuda {

// ---------------------------------------------------------------- context, guard

DeviceGuard::DeviceGuard(int index) : m_index(index) {
    LATHE_CUDA_CHECK(cudaGetDevice(&m_previous));
    if (m_previous != index) LATHE_CUDA_CHECK(cudaSetDevice(index));
}

DeviceGuard::~DeviceGuard() {
    if (m_previous >= 0 && m_previous != m_index) cudaSetDevice(m_previous);
}

CudaContext::CudaContext(int deviceIndex) : index(deviceIndex) {
    DeviceGuard guard(index);
    LATHE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    try {
        int pools = 0;
        LATHE_CUDA_CHECK(cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, index));
        streamOrderedAlloc = pools != 0;
        if (streamOrderedAlloc) {
            // Keep freed blocks in the pool instead of returning them at every synchronisation: a
            // training step allocates and frees the same activation sizes again and again.
            cudaMemPool_t pool = nullptr;
            LATHE_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, index));
            std::uint64_t threshold = UINT64_MAX;
            LATHE_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
        }
    } catch (...) { // a constructor that throws runs no destructor
        cudaStreamDestroy(stream);
        throw;
    }
}

CudaContext::~CudaContext() {
    if (!stream) return;
    const cudaError_t err = cudaStreamDestroy(stream);
    // At process exit the runtime may already be unloading; nothing is left to release then.
    if (err != cudaSuccess && err != cudaErrorCudartUnloading && err != cudaErrorContextIsDestroyed)
        std::fprintf(stderr, "lathe: cudaStreamDestroy on cuda:%d failed: %s\n", index, cudaGetErrorString(err));
}

void CudaContext::addBytes(std::uint64_t n) {
    const std::uint64_t now = currentBytes.fetch_add(n, std::memory_order_relaxed) + n;
    std::uint64_t peak = peakBytes.load(std::memory_order_relaxed);
    while (now > peak && !peakBytes.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
}

namespace {

// ---------------------------------------------------------------- storage, timer

// Device memory owned RAII-style; the destructor only logs (it must not throw).
class CudaStorage final : public Storage {
public:
    CudaStorage(std::shared_ptr<CudaContext> ctx, void* data, std::size_t bytes)
        : Storage(Device{DeviceKind::Cuda, ctx->index}, data, bytes), m_ctx(std::move(ctx)) {
        m_ctx->addBytes(bytes);
    }
    ~CudaStorage() override {
        if (!m_data) return;
        int previous = -1;
        cudaGetDevice(&previous);
        if (previous != m_ctx->index) cudaSetDevice(m_ctx->index);
        const cudaError_t err = m_ctx->streamOrderedAlloc ? cudaFreeAsync(m_data, m_ctx->stream) : cudaFree(m_data);
        if (err != cudaSuccess && err != cudaErrorCudartUnloading && err != cudaErrorContextIsDestroyed)
            std::fprintf(stderr, "lathe: freeing %zu bytes on cuda:%d failed: %s\n", m_bytes, m_ctx->index,
                         cudaGetErrorString(err));
        if (previous >= 0 && previous != m_ctx->index) cudaSetDevice(previous);
        m_ctx->subBytes(m_bytes);
    }

private:
    std::shared_ptr<CudaContext> m_ctx;
};

class CudaTimer final : public DeviceTimer {
public:
    explicit CudaTimer(std::shared_ptr<CudaContext> ctx) : m_ctx(std::move(ctx)) {
        DeviceGuard guard(m_ctx->index);
        LATHE_CUDA_CHECK(cudaEventCreate(&m_start));
        const cudaError_t err = cudaEventCreate(&m_stop);
        if (err != cudaSuccess) {
            cudaEventDestroy(m_start);
            LATHE_CUDA_CHECK(err);
        }
    }
    ~CudaTimer() override {
        cudaEventDestroy(m_stop);
        cudaEventDestroy(m_start);
    }
    void start() override {
        DeviceGuard guard(m_ctx->index);
        LATHE_CUDA_CHECK(cudaEventRecord(m_start, m_ctx->stream));
        m_started = true;
        m_stopped = false; // a restarted timer measures the new interval, never the last one's stop
    }
    void stop() override {
        if (!m_started) throw BackendError("cuda timer: stop() without start()");
        DeviceGuard guard(m_ctx->index);
        LATHE_CUDA_CHECK(cudaEventRecord(m_stop, m_ctx->stream));
        m_stopped = true;
    }
    double elapsedMs() override {
        if (!m_stopped) throw BackendError("cuda timer: elapsedMs() before stop()");
        LATHE_CUDA_CHECK(cudaEventSynchronize(m_stop));
        float ms = 0.0f;
        LATHE_CUDA_CHECK(cudaEventElapsedTime(&ms, m_start, m_stop));
        return ms;
    }

private:
    std::shared_ptr<CudaContext> m_ctx;
    cudaEvent_t m_start = nullptr, m_stop = nullptr;
    bool m_started = false, m_stopped = false;
};

// A CUDA graph of one capture and its executable, instantiated with auto-free on launch: the allocations the
// captured work left unfreed (its outputs) are released and made again, at the same addresses, by each launch.
class CudaCapturedWork final : public CapturedWork {
public:
    CudaCapturedWork(std::shared_ptr<CudaContext> ctx, cudaGraph_t graph, cudaGraphExec_t exec,
                     std::vector<Tensor> outputs)
        : m_ctx(std::move(ctx)), m_graph(graph), m_exec(exec), m_outputs(std::move(outputs)) {}
    ~CudaCapturedWork() override {
        int previous = -1;
        cudaGetDevice(&previous);
        if (previous != m_ctx->index) cudaSetDevice(m_ctx->index);
        cudaStreamSynchronize(m_ctx->stream);
        m_outputs.clear(); // frees the last launch's allocations (cudaFreeAsync) while the graph still exists
        cudaStreamSynchronize(m_ctx->stream);
        cudaGraphExecDestroy(m_exec);
        cudaGraphDestroy(m_graph);
        if (previous >= 0 && previous != m_ctx->index) cudaSetDevice(previous);
    }
    void replay() override {
        DeviceGuard guard(m_ctx->index);
        LATHE_CUDA_CHECK(cudaGraphLaunch(m_exec, m_ctx->stream));
    }
    const std::vector<Tensor>& outputs() const override { return m_outputs; }

private:
    std::shared_ptr<CudaContext> m_ctx;
    cudaGraph_t m_graph;
    cudaGraphExec_t m_exec;
    std::vector<Tensor> m_outputs;
};

} // namespace

std::unique_ptr<CapturedWork> CudaBackend::capture(const std::function<std::vector<Tensor>()>& body) {
    DeviceGuard guard(m_ctx->index);
    LATHE_CUDA_CHECK(cudaStreamSynchronize(stream()));
    // Relaxed: a first-use cudaMalloc elsewhere in this thread (a workspace) must not invalidate the capture.
    LATHE_CUDA_CHECK(cudaStreamBeginCapture(stream(), cudaStreamCaptureModeRelaxed));
    std::vector<Tensor> outputs;
    auto endCapture = [&](cudaGraph_t* graph) {
        const cudaError_t err = cudaStreamEndCapture(stream(), graph);
        (void)cudaGetLastError();
        return err;
    };
    try {
        outputs = body();
    } catch (...) {
        cudaGraph_t graph = nullptr;
        endCapture(&graph);
        if (graph) cudaGraphDestroy(graph);
        throw;
    }
    cudaGraph_t graph = nullptr;
    const cudaError_t err = endCapture(&graph);
    if (err != cudaSuccess || !graph) {
        if (graph) cudaGraphDestroy(graph);
        throw BackendError(name() + ": the work could not be recorded as a CUDA graph: " + cudaGetErrorString(err) +
                           " (it synchronised, read a result back, or called something a graph cannot hold)");
    }
    cudaGraphExec_t exec = nullptr;
    const cudaError_t ierr = cudaGraphInstantiateWithFlags(&exec, graph, cudaGraphInstantiateFlagAutoFreeOnLaunch);
    if (ierr != cudaSuccess) {
        (void)cudaGetLastError();
        cudaGraphDestroy(graph);
        throw BackendError(name() + ": instantiating the captured CUDA graph failed: " + cudaGetErrorString(ierr));
    }
    auto work = std::make_unique<CudaCapturedWork>(m_ctx, graph, exec, std::move(outputs));
    work->replay(); // the outputs exist from the first launch on
    LATHE_CUDA_CHECK(cudaStreamSynchronize(stream()));
    return work;
}

// What this backend runs today, and nothing more: the dense ops' kernels in f32, f16 and bf16 where
// the .cu files dispatch on dtype (elementwise, softmax, reductions, gemm with f32 accumulation), the
// rest in f32; the W8A8 pair (quantize_rows, the int8 GEMM); copy for every storage format, fill for the
// elementwise ones; convert between the formats convert.cu instantiates. Block formats have no kernels here yet.
OpTable CudaBackend::buildOpTable() {
    OpTable t;
    const auto floats = {DType::F32, DType::F16, DType::BF16};
    t.addUniform({Op::Gemm, Op::BiasAdd, Op::BiasGrad, Op::Add, Op::Mul, Op::Axpy, Op::Scale, Op::Relu,
                  Op::ReluBackward, Op::Gelu, Op::GeluBackward, Op::Dropout, Op::Softmax, Op::ArgmaxRows},
                 floats);
    t.addUniform({Op::SoftmaxCrossEntropy, Op::DistillationLoss, Op::Conv2dForward, Op::Conv2dBackwardData, Op::Conv2dBackwardWeight,
                  Op::MaxPool2dForward, Op::MaxPool2dBackward, Op::LayerNormForward, Op::LayerNormBackward,
                  Op::BatchNormForward, Op::BatchNormBackward,
                  Op::EmbeddingForward, Op::EmbeddingBackward, Op::SgdStep, Op::AdamStep},
                 {DType::F32});
    t.add(OpDesc::uniform(Op::GemmBiasAct, DType::F32)); // cuBLASLt with its bias / ReLU epilogue, ops_gemm.cpp
    t.add(OpDesc::uniform(Op::SpmmCsr, DType::F32)); // cuSPARSE SpMM, ops_sparse.cpp
    t.add(OpDesc::uniform(Op::Spmm24, DType::F32));  // our own kernel, sparse24.cu (no cuSPARSELt)
    // Weight-only quantized GEMMs: our own dequantize kernels (weight_only.cu) + cuBLAS, ops_weight_only.cpp.
    for (WeightFormat f : {WeightFormat::Int8, WeightFormat::Int4, WeightFormat::Nf4, WeightFormat::Fp8})
        t.add(weightOnlyGemmDesc(f));
    // The FP8 GEMM's numerics emulated through the fp8 weight-only kernels on any device (ops_fp8.cpp); the
    // constructor adds cuBLASLt's FP8 GEMM where the device has FP8 tensor cores.
    t.add(fp8GemmDesc(Fp8Mode::Emulated));
    t.add(OpDesc::uniform(Op::QuantizeRows, DType::F32)); // int8.cu
    t.add(OpDesc::uniform(Op::Im2colRows, DType::F32));   // conv.cu: the quantized conv's GEMM over rows
    t.add(OpDesc::uniform(Op::RowsToChannels, DType::F32));
    t.add(int8GemmDesc());                                // cuBLASLt int32 GEMM + int8.cu's epilogue
    // Transformers: attention.cu's fused attention (its unfused reference on cuBLAS), pooling, normalisation.
    for (Op op : {Op::AttentionForward, Op::AttentionBackward, Op::MeanPoolForward, Op::MeanPoolBackward,
                  Op::L2NormalizeForward, Op::L2NormalizeBackward})
        t.add(OpDesc::uniform(op, DType::F32));
    const auto convertible = {DType::F32, DType::F16, DType::BF16, DType::I32, DType::I8, DType::U8};
    for (DType from : convertible)
        for (DType to : convertible) t.add(OpDesc::convert(from, to));
    for (DType storage : {DType::Q8_0, DType::F8E4M3}) { // paged KV blocks (convert.cu), to and from F32
        t.add(OpDesc::convert(DType::F32, storage));
        t.add(OpDesc::convert(storage, DType::F32));
    }
    for (const auto& row : dtypeTable()) {
        t.add(OpDesc::uniform(Op::Copy, row.dtype)); // a byte copy: any format
        if (row.blockSize == 1) t.add(OpDesc::uniform(Op::Fill, row.dtype));
    }
    return t;
}

CudaBackend::CudaBackend(int index)
    : m_ctx(std::make_shared<CudaContext>(index)), m_info(describeDevice(index)),
      m_gemm(m_ctx, m_info.computeCapabilityMajor), m_ops(buildOpTable()) {
    DeviceGuard guard(index);
    // FP8 tensor cores (Ada, Hopper: compute capability 8.9 and newer) run cuBLASLt's FP8 GEMM.
    if (m_info.computeCapabilityMajor * 10 + m_info.computeCapabilityMinor >= 89) m_ops.add(fp8GemmDesc(Fp8Mode::Native));
    try {
        LATHE_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&m_errorFlag), 2 * sizeof(int)));
        LATHE_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&m_errorHost), 2 * sizeof(int)));
    } catch (...) { // a constructor that throws runs no destructor (the members' own do run)
        releaseBuffers();
        throw;
    }
    if (m_gemm.tf32()) m_info.libraryVersion += " (TF32 allowed by LATHE_CUDA_ALLOW_TF32)";
}

std::shared_ptr<Backend> CudaBackend::makeInstance() {
    // A backend of its own on the same device: a new context (stream, byte counts), cuBLAS/cuBLASLt handles and
    // plans, error flag and staging buffers. Its stream does not wait for this one, so this one is drained
    // first: every tensor the new backend may read (a model's weights) is then written. Stream-ordered
    // allocations (cudaMallocAsync) freed on one stream and reused on another are ordered by the memory pool
    // (its default reuse policies follow the frees' completion).
    synchronize();
    return std::make_shared<CudaBackend>(m_ctx->index);
}

CudaBackend::~CudaBackend() {
    cudaStreamSynchronize(m_ctx->stream);
    releaseBuffers();
}

void CudaBackend::releaseBuffers() {
    for (int i = 0; i < 2; ++i) {
        if (m_stagingDone[i]) cudaEventDestroy(m_stagingDone[i]);
        if (m_staging[i]) cudaFreeHost(m_staging[i]);
        m_stagingDone[i] = nullptr;
        m_staging[i] = nullptr;
    }
    if (m_errorHost) cudaFreeHost(m_errorHost);
    if (m_errorFlag) cudaFree(m_errorFlag);
    m_errorHost = nullptr;
    m_errorFlag = nullptr;
}

DeviceInfo CudaBackend::info() const {
    DeviceInfo info = m_info;
    DeviceGuard guard(m_ctx->index);
    std::size_t freeBytes = 0, totalBytes = 0;
    if (cudaMemGetInfo(&freeBytes, &totalBytes) == cudaSuccess) info.memoryFreeBytes = freeBytes;
    return info;
}

std::shared_ptr<Storage> CudaBackend::allocate(std::size_t bytes) {
    DeviceGuard guard(m_ctx->index);
    void* p = nullptr;
    if (bytes > 0) {
        cudaError_t err = allocRaw(&p, bytes);
        if (err == cudaErrorMemoryAllocation) {
            // Blocks freed on the stream return to the pool only as the stream reaches them.
            (void)cudaGetLastError();
            LATHE_CUDA_CHECK(cudaStreamSynchronize(m_ctx->stream));
            err = allocRaw(&p, bytes);
        }
        if (err == cudaErrorMemoryAllocation) {
            (void)cudaGetLastError();
            std::size_t freeBytes = 0, totalBytes = 0;
            cudaMemGetInfo(&freeBytes, &totalBytes);
            throw BackendError(name() + ": out of device memory: asked for " + mib(bytes) + " (" +
                               std::to_string(bytes) + " bytes); the device has " + mib(freeBytes) +
                               " free of " + mib(totalBytes) + ", Lathe holds " +
                               mib(m_ctx->currentBytes.load()) + " in tensors");
        }
        LATHE_CUDA_CHECK(err);
    }
    return std::make_shared<CudaStorage>(m_ctx, p, bytes);
}

void CudaBackend::copyFromHost(Tensor& dst, const void* src) {
    checkOnDevice(dst, "copy_from_host", "dst");
    if (dst.bytes() == 0) return;
    DeviceGuard guard(m_ctx->index);
    // Callers free or reuse src as soon as this returns, and cudaMemcpyAsync promises nothing then (from
    // pinned memory it has not even started). So the bytes go through two pinned staging buffers in turn:
    // each chunk is copied into one (after that buffer's previous transfer has left it) and sent from there,
    // and the call returns with the last transfers still in flight on the stream.
    const auto* from = static_cast<const unsigned char*>(src);
    auto* to = static_cast<unsigned char*>(dst.data());
    const std::size_t bytes = dst.bytes();
    std::lock_guard lock(m_stagingMutex); // the staging buffers are shared by every caller of this backend
    if (!m_staging[0] && !allocateStaging()) { // no pinned memory to be had: copy and wait
        LATHE_CUDA_CHECK(cudaMemcpyAsync(to, from, bytes, cudaMemcpyHostToDevice, m_ctx->stream));
        LATHE_CUDA_CHECK(cudaStreamSynchronize(m_ctx->stream));
        return;
    }
    for (std::size_t off = 0; off < bytes; off += kStagingBytes) {
        const std::size_t n = std::min(kStagingBytes, bytes - off);
        const int b = m_stagingNext;
        m_stagingNext ^= 1;
        LATHE_CUDA_CHECK(cudaEventSynchronize(m_stagingDone[b]));
        std::memcpy(m_staging[b], from + off, n);
        LATHE_CUDA_CHECK(cudaMemcpyAsync(to + off, m_staging[b], n, cudaMemcpyHostToDevice, m_ctx->stream));
        LATHE_CUDA_CHECK(cudaEventRecord(m_stagingDone[b], m_ctx->stream));
    }
}

bool CudaBackend::allocateStaging() {
    for (int i = 0; i < 2; ++i) {
        if (cudaMallocHost(&m_staging[i], kStagingBytes) != cudaSuccess ||
            cudaEventCreateWithFlags(&m_stagingDone[i], cudaEventDisableTiming) != cudaSuccess) {
            (void)cudaGetLastError();
            for (int j = 0; j <= i; ++j) {
                if (m_stagingDone[j]) cudaEventDestroy(m_stagingDone[j]);
                if (m_staging[j]) cudaFreeHost(m_staging[j]);
                m_stagingDone[j] = nullptr;
                m_staging[j] = nullptr;
            }
            return false;
        }
    }
    return true;
}

void CudaBackend::copyToHost(const Tensor& src, void* dst) {
    checkOnDevice(src, "copy_to_host", "src");
    if (src.bytes() == 0) return;
    DeviceGuard guard(m_ctx->index);
    LATHE_CUDA_CHECK(cudaMemcpyAsync(dst, src.data(), src.bytes(), cudaMemcpyDeviceToHost, m_ctx->stream));
    LATHE_CUDA_CHECK(cudaStreamSynchronize(m_ctx->stream));
}

void CudaBackend::copy(const Tensor& src, Tensor& dst) {
    checkOnDevice(src, "copy", "src");
    checkOnDevice(dst, "copy", "dst");
    require(Op::Copy, src.dtype());
    if (src.dtype() != dst.dtype() || src.numel() != dst.numel())
        throw BackendError("copy: " + src.describe() + " and " + dst.describe() +
                           " differ in dtype or element count");
    if (src.bytes() == 0 || src.data() == dst.data()) return;
    DeviceGuard guard(m_ctx->index);
    LATHE_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), src.bytes(), cudaMemcpyDeviceToDevice, m_ctx->stream));
}

void CudaBackend::synchronize() {
    DeviceGuard guard(m_ctx->index);
    LATHE_CUDA_CHECK(cudaStreamSynchronize(m_ctx->stream));
}

cudaError_t CudaBackend::allocRaw(void** p, std::size_t bytes) {
    return m_ctx->streamOrderedAlloc ? cudaMallocAsync(p, bytes, m_ctx->stream) : cudaMalloc(p, bytes);
}

void CudaBackend::begin(const OpDesc& desc, std::initializer_list<const Tensor*> tensors) {
    require(desc);
    for (const Tensor* t : tensors) checkOnDevice(*t, opName(desc.op), "operand");
    int current = -1;
    LATHE_CUDA_CHECK(cudaGetDevice(&current));
    if (current != m_ctx->index) LATHE_CUDA_CHECK(cudaSetDevice(m_ctx->index));
}

void CudaBackend::checkOnDevice(const Tensor& t, const char* op, const char* what) const {
    if (!t.defined()) throw BackendError(std::string(op) + ": " + what + " is an undefined tensor");
    if (t.device() != device())
        throw BackendError(std::string(op) + ": " + what + " " + t.describe() + " is not on " + name());
}

void CudaBackend::checkSame(const char* op, std::initializer_list<const Tensor*> tensors) {
    const Tensor& first = **tensors.begin();
    for (const Tensor* t : tensors)
        if (t->dtype() != first.dtype() || t->numel() != first.numel())
            throw BackendError(std::string(op) + ": " + t->describe() + " does not match " + first.describe());
}

void CudaBackend::checkRank(const Tensor& t, int rank, const char* op, const char* what) {
    if (t.rank() != rank)
        throw BackendError(std::string(op) + ": " + what + " must be " + std::to_string(rank) + "-D, got " +
                           t.describe());
}

void CudaBackend::checkShape(const Tensor& t, const Shape& shape, DType dt, const char* op, const char* what) {
    if (t.dtype() != dt || t.numel() != numel(shape))
        throw BackendError(std::string(op) + ": " + what + " is " + t.describe() + ", expected " + dtypeName(dt) +
                           shapeToString(shape));
}

std::unique_ptr<DeviceTimer> CudaBackend::createTimer() { return std::make_unique<CudaTimer>(m_ctx); }

void CudaBackend::resetErrorFlag() {
    LATHE_CUDA_CHECK(cudaMemsetAsync(m_errorFlag, 0xff, 2 * sizeof(int), stream()));
}

} // namespace cuda

std::shared_ptr<Backend> makeCudaBackend(int index) {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        throw BackendError(std::string("cuda:") + std::to_string(index) + ": cudaGetDeviceCount failed: " +
                           cudaGetErrorString(err) + " (" + std::to_string(static_cast<int>(err)) + ")");
    }
    if (index < 0 || index >= count)
        throw BackendError("cuda:" + std::to_string(index) + " does not exist: " + std::to_string(count) +
                           " CUDA device(s) found");
    return std::make_shared<cuda::CudaBackend>(index);
}

} // namespace lathe

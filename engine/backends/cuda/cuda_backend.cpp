// The CUDA backend: device buffers from the stream-ordered pool, transfers and every Backend op on
// one stream per backend. Kernels live in the .cu files (one op family each); GEMMs in cuda_gemm.cpp.
#include "engine/backends/cuda/cuda_backend.h"
#include "engine/backends/cuda/cuda_backend_impl.h"
#include "engine/backends/cuda/cuda_kernels.h"

#include "engine/core/errors.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

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

// ---------------------------------------------------------------- argument checks

bool isFloat(DType dt) { return dt == DType::F32 || dt == DType::F16 || dt == DType::BF16; }

std::int64_t innerOf(const Tensor& x) {
    std::int64_t inner = 1;
    for (int i = 2; i < x.rank(); ++i) inner *= x.dim(i);
    return inner;
}

// Conv columns are capped at this many bytes; larger batches are processed in chunks of images.
constexpr std::size_t kColumnBudgetBytes = 64u << 20;

class CudaBackend final : public Backend {
public:
    explicit CudaBackend(int index)
        : m_ctx(std::make_shared<CudaContext>(index)), m_info(describeDevice(index)),
          m_gemm(m_ctx, m_info.computeCapabilityMajor) {
        DeviceGuard guard(index);
        LATHE_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&m_errorFlag), 2 * sizeof(int)));
        LATHE_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&m_errorHost), 2 * sizeof(int)));
        if (m_gemm.tf32()) m_info.libraryVersion += " (TF32 allowed by LATHE_CUDA_ALLOW_TF32)";
    }

    ~CudaBackend() override {
        cudaStreamSynchronize(m_ctx->stream);
        if (m_errorHost) cudaFreeHost(m_errorHost);
        if (m_errorFlag) cudaFree(m_errorFlag);
    }

    std::string name() const override { return "cuda:" + std::to_string(m_ctx->index); }
    Device device() const override { return Device{DeviceKind::Cuda, m_ctx->index}; }

    DeviceInfo info() const override {
        DeviceInfo info = m_info;
        DeviceGuard guard(m_ctx->index);
        std::size_t freeBytes = 0, totalBytes = 0;
        if (cudaMemGetInfo(&freeBytes, &totalBytes) == cudaSuccess) info.memoryFreeBytes = freeBytes;
        return info;
    }

    bool supports(Op op, DType dt) const override {
        switch (op) {
        case Op::Copy:
        case Op::Fill:
        case Op::Convert: return traits(dt).blockSize == 1;
        case Op::Gemm:
        case Op::BiasAdd: case Op::BiasGrad:
        case Op::Add: case Op::Mul: case Op::Axpy: case Op::Scale:
        case Op::Relu: case Op::ReluBackward: case Op::Gelu: case Op::GeluBackward: case Op::Dropout:
        case Op::Softmax: case Op::ArgmaxRows:
            return isFloat(dt);
        case Op::SoftmaxCrossEntropy:
        case Op::Conv2dForward: case Op::Conv2dBackwardData: case Op::Conv2dBackwardWeight:
        case Op::MaxPool2dForward: case Op::MaxPool2dBackward:
        case Op::LayerNormForward: case Op::LayerNormBackward:
        case Op::EmbeddingForward: case Op::EmbeddingBackward:
        case Op::SgdStep: case Op::AdamStep:
            return dt == DType::F32;
        case Op::Count: break;
        }
        return false;
    }

    // ------------------------------------------------------------ memory and transfers

    std::shared_ptr<Storage> allocate(std::size_t bytes) override {
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

    void copyFromHost(Tensor& dst, const void* src) override {
        checkOnDevice(dst, "copy_from_host", "dst");
        if (dst.bytes() == 0) return;
        DeviceGuard guard(m_ctx->index);
        // Pageable source: the call returns once the bytes are staged, so src may be reused after it.
        LATHE_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src, dst.bytes(), cudaMemcpyHostToDevice, m_ctx->stream));
    }

    void copyToHost(const Tensor& src, void* dst) override {
        checkOnDevice(src, "copy_to_host", "src");
        if (src.bytes() == 0) return;
        DeviceGuard guard(m_ctx->index);
        LATHE_CUDA_CHECK(cudaMemcpyAsync(dst, src.data(), src.bytes(), cudaMemcpyDeviceToHost, m_ctx->stream));
        LATHE_CUDA_CHECK(cudaStreamSynchronize(m_ctx->stream));
    }

    void copy(const Tensor& src, Tensor& dst) override {
        checkOnDevice(src, "copy", "src");
        checkOnDevice(dst, "copy", "dst");
        if (src.dtype() != dst.dtype() || src.numel() != dst.numel())
            throw BackendError("copy: " + src.describe() + " and " + dst.describe() +
                               " differ in dtype or element count");
        if (src.bytes() == 0 || src.data() == dst.data()) return;
        DeviceGuard guard(m_ctx->index);
        LATHE_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), src.bytes(), cudaMemcpyDeviceToDevice, m_ctx->stream));
    }

    void synchronize() override {
        DeviceGuard guard(m_ctx->index);
        LATHE_CUDA_CHECK(cudaStreamSynchronize(m_ctx->stream));
    }

    std::uint64_t peakAllocatedBytes() const override { return m_ctx->peakBytes.load(); }
    void resetPeakAllocated() override { m_ctx->peakBytes.store(m_ctx->currentBytes.load()); }
    std::uint64_t currentAllocatedBytes() const override { return m_ctx->currentBytes.load(); }
    std::unique_ptr<DeviceTimer> createTimer() override { return std::make_unique<CudaTimer>(m_ctx); }

    // ------------------------------------------------------------ ops

    void fill(Tensor& x, float value) override {
        begin(Op::Fill, x.dtype(), {&x});
        launchFill(x.data(), x.dtype(), x.numel(), value, stream());
    }

    void convert(const Tensor& src, Tensor& dst) override {
        begin(Op::Convert, src.dtype(), {&src, &dst});
        require(Op::Convert, dst.dtype());
        if (src.numel() != dst.numel())
            throw BackendError("convert: " + src.describe() + " and " + dst.describe() + " differ in element count");
        if (src.dtype() == dst.dtype()) {
            copy(src, dst);
            return;
        }
        launchConvert(src.data(), src.dtype(), dst.data(), dst.dtype(), src.numel(), stream());
    }

    void gemm(const Tensor& a, Trans ta, const Tensor& b, Trans tb, Tensor& c, float alpha, float beta) override {
        begin(Op::Gemm, a.dtype(), {&a, &b, &c});
        if (a.rank() != 2 || b.rank() != 2 || c.rank() != 2 || b.dtype() != a.dtype() || c.dtype() != a.dtype())
            throw BackendError("gemm: expects 2-D tensors of one dtype, got " + a.describe() + ", " + b.describe() +
                               ", " + c.describe());
        const std::int64_t m = ta == Trans::No ? a.dim(0) : a.dim(1);
        const std::int64_t k = ta == Trans::No ? a.dim(1) : a.dim(0);
        const std::int64_t kb = tb == Trans::No ? b.dim(0) : b.dim(1);
        const std::int64_t n = tb == Trans::No ? b.dim(1) : b.dim(0);
        if (k != kb || c.dim(0) != m || c.dim(1) != n)
            throw BackendError("gemm: shapes do not agree: op(a) is (" + std::to_string(m) + ", " + std::to_string(k) +
                               "), op(b) is (" + std::to_string(kb) + ", " + std::to_string(n) + "), c is " +
                               shapeToString(c.shape()));
        // a (M, K) or (K, M); b (K, N) or (N, K); c (M, N)
        m_gemm.run(a.dtype(), ta, tb, m, n, k, alpha, a.data(), a.dim(1), b.data(), b.dim(1), beta, c.data(), n);
    }

    void biasAdd(Tensor& x, const Tensor& bias) override {
        begin(Op::BiasAdd, x.dtype(), {&x, &bias});
        checkBias(x, bias, "bias_add");
        launchBiasAdd(x.data(), bias.data(), x.dtype(), x.dim(0), x.dim(1), innerOf(x), stream());
    }

    void biasGrad(const Tensor& dy, Tensor& dbias, bool accumulate) override {
        begin(Op::BiasGrad, dy.dtype(), {&dy, &dbias});
        checkBias(dy, dbias, "bias_grad");
        launchBiasGrad(dy.data(), dbias.data(), dy.dtype(), dy.dim(0), dy.dim(1), innerOf(dy), accumulate, stream());
    }

    void add(const Tensor& a, const Tensor& b, Tensor& out) override {
        begin(Op::Add, a.dtype(), {&a, &b, &out});
        checkSame("add", {&a, &b, &out});
        launchAdd(a.data(), b.data(), out.data(), a.dtype(), a.numel(), stream());
    }

    void mul(const Tensor& a, const Tensor& b, Tensor& out) override {
        begin(Op::Mul, a.dtype(), {&a, &b, &out});
        checkSame("mul", {&a, &b, &out});
        launchMul(a.data(), b.data(), out.data(), a.dtype(), a.numel(), stream());
    }

    void axpy(float alpha, const Tensor& x, Tensor& y) override {
        begin(Op::Axpy, x.dtype(), {&x, &y});
        checkSame("axpy", {&x, &y});
        launchAxpy(alpha, x.data(), y.data(), x.dtype(), x.numel(), stream());
    }

    void scale(Tensor& x, float s) override {
        begin(Op::Scale, x.dtype(), {&x});
        launchScale(x.data(), s, x.dtype(), x.numel(), stream());
    }

    void relu(const Tensor& x, Tensor& y) override {
        begin(Op::Relu, x.dtype(), {&x, &y});
        checkSame("relu", {&x, &y});
        launchRelu(x.data(), y.data(), x.dtype(), x.numel(), stream());
    }

    void reluBackward(const Tensor& x, const Tensor& dy, Tensor& dx) override {
        begin(Op::ReluBackward, x.dtype(), {&x, &dy, &dx});
        checkSame("relu_backward", {&x, &dy, &dx});
        launchReluBackward(x.data(), dy.data(), dx.data(), x.dtype(), x.numel(), stream());
    }

    void gelu(const Tensor& x, Tensor& y) override {
        begin(Op::Gelu, x.dtype(), {&x, &y});
        checkSame("gelu", {&x, &y});
        launchGelu(x.data(), y.data(), x.dtype(), x.numel(), stream());
    }

    void geluBackward(const Tensor& x, const Tensor& dy, Tensor& dx) override {
        begin(Op::GeluBackward, x.dtype(), {&x, &dy, &dx});
        checkSame("gelu_backward", {&x, &dy, &dx});
        launchGeluBackward(x.data(), dy.data(), dx.data(), x.dtype(), x.numel(), stream());
    }

    void dropout(const Tensor& x, Tensor& y, Tensor& mask, float p, std::uint64_t seed) override {
        begin(Op::Dropout, x.dtype(), {&x, &y, &mask});
        checkSame("dropout", {&x, &y, &mask});
        if (!(p >= 0.0f && p <= 1.0f)) throw BackendError("dropout: p = " + std::to_string(p) + " is outside [0, 1]");
        launchDropout(x.data(), y.data(), mask.data(), x.dtype(), x.numel(), p, seed, stream());
    }

    void softmax(const Tensor& x, Tensor& y) override {
        begin(Op::Softmax, x.dtype(), {&x, &y});
        checkSame("softmax", {&x, &y});
        checkRank(x, 2, "softmax", "x");
        launchSoftmax(x.data(), y.data(), x.dtype(), x.dim(0), x.dim(1), stream());
    }

    void softmaxCrossEntropy(const Tensor& logits, const Tensor& labels, Tensor& losses, Tensor& dlogits,
                             float gradScale) override {
        begin(Op::SoftmaxCrossEntropy, logits.dtype(), {&logits, &labels, &losses, &dlogits});
        checkRank(logits, 2, "softmax_cross_entropy", "logits");
        const std::int64_t rows = logits.dim(0), cols = logits.dim(1);
        checkShape(labels, {rows}, DType::I32, "softmax_cross_entropy", "labels");
        checkShape(losses, {rows}, DType::F32, "softmax_cross_entropy", "losses");
        checkShape(dlogits, logits.shape(), DType::F32, "softmax_cross_entropy", "dlogits");
        resetErrorFlag();
        launchSoftmaxCrossEntropy(logits.ptr<float>(), labels.ptr<std::int32_t>(), losses.ptr<float>(),
                                  dlogits.ptr<float>(), rows, cols, gradScale, m_errorFlag, stream());
        throwIfFlagged([&](int row, int label) {
            return "softmax_cross_entropy: label " + std::to_string(label) + " at row " + std::to_string(row) +
                   " is out of range [0, " + std::to_string(cols) + ") for " + logits.describe();
        });
    }

    void argmaxRows(const Tensor& x, Tensor& out) override {
        begin(Op::ArgmaxRows, x.dtype(), {&x, &out});
        checkRank(x, 2, "argmax_rows", "x");
        checkShape(out, {x.dim(0)}, DType::I32, "argmax_rows", "out");
        launchArgmaxRows(x.data(), x.dtype(), out.ptr<std::int32_t>(), x.dim(0), x.dim(1), stream());
    }

    void conv2dForward(const Tensor& x, const Tensor& w, Tensor& y, const Conv2dGeometry& g) override {
        begin(Op::Conv2dForward, x.dtype(), {&x, &w, &y});
        checkConv(g, x, w, y, "conv2d_forward", "y");
        const std::int64_t kdim = g.inChannels * g.kernelH * g.kernelW, p = g.outH() * g.outW();
        const std::int64_t nb = chunkImages(g);
        Tensor col = empty({kdim, nb * p});            // (C*KH*KW, nb*OH*OW)
        Tensor out = empty({g.outChannels, nb * p});   // (K, nb*OH*OW)
        for (std::int64_t n0 = 0; n0 < g.batch; n0 += nb) {
            const std::int64_t cnt = std::min(nb, g.batch - n0);
            launchIm2col(x.ptr<float>(), col.ptr<float>(), g, n0, cnt, stream());
            // out (K, cnt*P) = w (K, CKK) @ col (CKK, cnt*P)
            m_gemm.run(DType::F32, Trans::No, Trans::No, g.outChannels, cnt * p, kdim, 1.0f, w.data(), kdim,
                       col.data(), cnt * p, 0.0f, out.data(), cnt * p);
            // (K, cnt, P) -> y[n0 .. n0+cnt) (cnt, K, P)
            launchPermute012To102(out.ptr<float>(), y.ptr<float>() + n0 * g.outChannels * p, g.outChannels, cnt, p,
                                  stream());
        }
    }

    void conv2dBackwardData(const Tensor& dy, const Tensor& w, Tensor& dx, const Conv2dGeometry& g) override {
        begin(Op::Conv2dBackwardData, dy.dtype(), {&dy, &w, &dx});
        checkConv(g, dx, w, dy, "conv2d_backward_data", "dy");
        const std::int64_t kdim = g.inChannels * g.kernelH * g.kernelW, p = g.outH() * g.outW();
        const std::int64_t nb = chunkImages(g);
        Tensor dyT = empty({g.outChannels, nb * p}); // (K, nb*OH*OW)
        Tensor col = empty({kdim, nb * p});          // (C*KH*KW, nb*OH*OW)
        for (std::int64_t n0 = 0; n0 < g.batch; n0 += nb) {
            const std::int64_t cnt = std::min(nb, g.batch - n0);
            launchPermute012To102(dy.ptr<float>() + n0 * g.outChannels * p, dyT.ptr<float>(), cnt, g.outChannels, p,
                                  stream());
            // col (CKK, cnt*P) = w^T (CKK, K) @ dyT (K, cnt*P)
            m_gemm.run(DType::F32, Trans::Yes, Trans::No, kdim, cnt * p, g.outChannels, 1.0f, w.data(), kdim,
                       dyT.data(), cnt * p, 0.0f, col.data(), cnt * p);
            launchCol2im(col.ptr<float>(), dx.ptr<float>(), g, n0, cnt, stream());
        }
    }

    void conv2dBackwardWeight(const Tensor& x, const Tensor& dy, Tensor& dw, const Conv2dGeometry& g,
                              bool accumulate) override {
        begin(Op::Conv2dBackwardWeight, x.dtype(), {&x, &dy, &dw});
        checkConv(g, x, dw, dy, "conv2d_backward_weight", "dy");
        const std::int64_t kdim = g.inChannels * g.kernelH * g.kernelW, p = g.outH() * g.outW();
        const std::int64_t nb = chunkImages(g);
        Tensor dyT = empty({g.outChannels, nb * p}); // (K, nb*OH*OW)
        Tensor col = empty({kdim, nb * p});          // (C*KH*KW, nb*OH*OW)
        if (g.batch == 0 && !accumulate) fill(dw, 0.0f);
        for (std::int64_t n0 = 0; n0 < g.batch; n0 += nb) {
            const std::int64_t cnt = std::min(nb, g.batch - n0);
            launchIm2col(x.ptr<float>(), col.ptr<float>(), g, n0, cnt, stream());
            launchPermute012To102(dy.ptr<float>() + n0 * g.outChannels * p, dyT.ptr<float>(), cnt, g.outChannels, p,
                                  stream());
            // dw (K, CKK) (+)= dyT (K, cnt*P) @ col^T (cnt*P, CKK)
            const float beta = (accumulate || n0 > 0) ? 1.0f : 0.0f;
            m_gemm.run(DType::F32, Trans::No, Trans::Yes, g.outChannels, kdim, cnt * p, 1.0f, dyT.data(), cnt * p,
                       col.data(), cnt * p, beta, dw.data(), kdim);
        }
    }

    void maxPool2dForward(const Tensor& x, Tensor& y, Tensor& argmax, const Pool2dGeometry& g) override {
        begin(Op::MaxPool2dForward, x.dtype(), {&x, &y, &argmax});
        checkPool(g, x, y, argmax, "maxpool2d_forward");
        launchMaxPool2dForward(x.ptr<float>(), y.ptr<float>(), argmax.ptr<std::int32_t>(), g, stream());
    }

    void maxPool2dBackward(const Tensor& dy, const Tensor& argmax, Tensor& dx, const Pool2dGeometry& g) override {
        begin(Op::MaxPool2dBackward, dy.dtype(), {&dy, &argmax, &dx});
        checkPool(g, dx, dy, argmax, "maxpool2d_backward");
        launchMaxPool2dBackward(dy.ptr<float>(), argmax.ptr<std::int32_t>(), dx.ptr<float>(), g, stream());
    }

    void layerNormForward(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& y, Tensor& mean,
                          Tensor& rstd, float eps) override {
        begin(Op::LayerNormForward, x.dtype(), {&x, &gamma, &beta, &y, &mean, &rstd});
        checkRank(x, 2, "layernorm_forward", "x");
        const std::int64_t rows = x.dim(0), dim = x.dim(1);
        checkShape(gamma, {dim}, DType::F32, "layernorm_forward", "gamma");
        checkShape(beta, {dim}, DType::F32, "layernorm_forward", "beta");
        checkShape(y, x.shape(), DType::F32, "layernorm_forward", "y");
        checkShape(mean, {rows}, DType::F32, "layernorm_forward", "mean");
        checkShape(rstd, {rows}, DType::F32, "layernorm_forward", "rstd");
        launchLayerNormForward(x.ptr<float>(), gamma.ptr<float>(), beta.ptr<float>(), y.ptr<float>(),
                               mean.ptr<float>(), rstd.ptr<float>(), rows, dim, eps, stream());
    }

    void layerNormBackward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                           const Tensor& rstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta, bool accumulate) override {
        begin(Op::LayerNormBackward, x.dtype(), {&dy, &x, &gamma, &mean, &rstd, &dx, &dgamma, &dbeta});
        checkRank(x, 2, "layernorm_backward", "x");
        const std::int64_t rows = x.dim(0), dim = x.dim(1);
        checkShape(dy, x.shape(), DType::F32, "layernorm_backward", "dy");
        checkShape(dx, x.shape(), DType::F32, "layernorm_backward", "dx");
        checkShape(gamma, {dim}, DType::F32, "layernorm_backward", "gamma");
        checkShape(dgamma, {dim}, DType::F32, "layernorm_backward", "dgamma");
        checkShape(dbeta, {dim}, DType::F32, "layernorm_backward", "dbeta");
        checkShape(mean, {rows}, DType::F32, "layernorm_backward", "mean");
        checkShape(rstd, {rows}, DType::F32, "layernorm_backward", "rstd");
        launchLayerNormBackward(dy.ptr<float>(), x.ptr<float>(), gamma.ptr<float>(), mean.ptr<float>(),
                                rstd.ptr<float>(), dx.ptr<float>(), dgamma.ptr<float>(), dbeta.ptr<float>(), rows, dim,
                                accumulate, stream());
    }

    void embeddingForward(const Tensor& ids, const Tensor& table, Tensor& y) override {
        begin(Op::EmbeddingForward, table.dtype(), {&ids, &table, &y});
        checkRank(table, 2, "embedding_forward", "table");
        const std::int64_t n = ids.numel(), vocab = table.dim(0), dim = table.dim(1);
        if (ids.dtype() != DType::I32) throw BackendError("embedding_forward: ids must be i32, got " + ids.describe());
        if (y.dtype() != DType::F32 || y.numel() != n * dim)
            throw BackendError("embedding_forward: y is " + y.describe() + ", expected " + std::to_string(n) + " x " +
                               std::to_string(dim) + " f32 values");
        resetErrorFlag();
        launchEmbeddingForward(ids.ptr<std::int32_t>(), table.ptr<float>(), y.ptr<float>(), n, vocab, dim,
                               m_errorFlag, stream());
        throwIfFlagged([&](int row, int id) {
            return "embedding_forward: id " + std::to_string(id) + " at position " + std::to_string(row) +
                   " is out of range [0, " + std::to_string(vocab) + ") for table " + table.describe();
        });
    }

    void embeddingBackward(const Tensor& ids, const Tensor& dy, Tensor& dtable, bool accumulate) override {
        begin(Op::EmbeddingBackward, dtable.dtype(), {&ids, &dy, &dtable});
        checkRank(dtable, 2, "embedding_backward", "dtable");
        const std::int64_t n = ids.numel(), vocab = dtable.dim(0), dim = dtable.dim(1);
        if (ids.dtype() != DType::I32) throw BackendError("embedding_backward: ids must be i32, got " + ids.describe());
        if (dy.dtype() != DType::F32 || dy.numel() != n * dim)
            throw BackendError("embedding_backward: dy is " + dy.describe() + ", expected " + std::to_string(n) +
                               " x " + std::to_string(dim) + " f32 values");
        if (!accumulate) LATHE_CUDA_CHECK(cudaMemsetAsync(dtable.data(), 0, dtable.bytes(), stream()));
        resetErrorFlag();
        launchEmbeddingBackward(ids.ptr<std::int32_t>(), dy.ptr<float>(), dtable.ptr<float>(), n, vocab, dim,
                                m_errorFlag, stream());
        throwIfFlagged([&](int row, int id) {
            return "embedding_backward: id " + std::to_string(id) + " at position " + std::to_string(row) +
                   " is out of range [0, " + std::to_string(vocab) + ")";
        });
    }

    void sgdStep(Tensor& param, const Tensor& grad, Tensor& velocity, const SgdParams& p, bool firstStep) override {
        begin(Op::SgdStep, param.dtype(), {&param, &grad});
        checkSame("sgd_step", {&param, &grad});
        float* vel = nullptr;
        if (p.momentum != 0.0f) {
            checkOnDevice(velocity, "sgd_step", "velocity");
            checkSame("sgd_step", {&param, &velocity});
            vel = velocity.ptr<float>();
        }
        launchSgdStep(param.ptr<float>(), grad.ptr<float>(), vel, param.numel(), p, firstStep, stream());
    }

    void adamStep(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamParams& p,
                  std::int64_t step) override {
        begin(Op::AdamStep, param.dtype(), {&param, &grad, &m, &v});
        checkSame("adam_step", {&param, &grad, &m, &v});
        if (step < 1) throw BackendError("adam_step: step counts from 1, got " + std::to_string(step));
        const double s = static_cast<double>(step);
        const float bc1 = static_cast<float>(1.0 - std::pow(static_cast<double>(p.beta1), s));
        const float bc2 = static_cast<float>(1.0 - std::pow(static_cast<double>(p.beta2), s));
        launchAdamStep(param.ptr<float>(), grad.ptr<float>(), m.ptr<float>(), v.ptr<float>(), param.numel(), p, bc1,
                       bc2, stream());
    }

private:
    cudaStream_t stream() const { return m_ctx->stream; }

    cudaError_t allocRaw(void** p, std::size_t bytes) {
        return m_ctx->streamOrderedAlloc ? cudaMallocAsync(p, bytes, m_ctx->stream) : cudaMalloc(p, bytes);
    }

    // Every op starts here: the (op, dtype) pair must be supported, the tensors must live on this device,
    // and this device must be current for the launches that follow.
    void begin(Op op, DType dt, std::initializer_list<const Tensor*> tensors) {
        require(op, dt);
        for (const Tensor* t : tensors) checkOnDevice(*t, opName(op), "operand");
        int current = -1;
        LATHE_CUDA_CHECK(cudaGetDevice(&current));
        if (current != m_ctx->index) LATHE_CUDA_CHECK(cudaSetDevice(m_ctx->index));
    }

    void checkOnDevice(const Tensor& t, const char* op, const char* what) const {
        if (!t.defined()) throw BackendError(std::string(op) + ": " + what + " is an undefined tensor");
        if (t.device() != device())
            throw BackendError(std::string(op) + ": " + what + " " + t.describe() + " is not on " + name());
    }

    static void checkSame(const char* op, std::initializer_list<const Tensor*> tensors) {
        const Tensor& first = **tensors.begin();
        for (const Tensor* t : tensors)
            if (t->dtype() != first.dtype() || t->numel() != first.numel())
                throw BackendError(std::string(op) + ": " + t->describe() + " does not match " + first.describe());
    }

    static void checkRank(const Tensor& t, int rank, const char* op, const char* what) {
        if (t.rank() != rank)
            throw BackendError(std::string(op) + ": " + what + " must be " + std::to_string(rank) + "-D, got " +
                               t.describe());
    }

    static void checkShape(const Tensor& t, const Shape& shape, DType dt, const char* op, const char* what) {
        if (t.dtype() != dt || t.numel() != numel(shape))
            throw BackendError(std::string(op) + ": " + what + " is " + t.describe() + ", expected " + dtypeName(dt) +
                               shapeToString(shape));
    }

    static void checkBias(const Tensor& x, const Tensor& bias, const char* op) {
        if (x.rank() < 2) throw BackendError(std::string(op) + ": expects (outer, C, ...), got " + x.describe());
        checkShape(bias, {x.dim(1)}, x.dtype(), op, "bias");
    }

    static void checkConv(const Conv2dGeometry& g, const Tensor& x, const Tensor& w, const Tensor& y, const char* op,
                          const char* yName) {
        if (g.outH() <= 0 || g.outW() <= 0)
            throw BackendError(std::string(op) + ": geometry gives an empty output");
        checkShape(x, {g.batch, g.inChannels, g.height, g.width}, DType::F32, op, "x");
        checkShape(w, {g.outChannels, g.inChannels, g.kernelH, g.kernelW}, DType::F32, op, "w");
        checkShape(y, {g.batch, g.outChannels, g.outH(), g.outW()}, DType::F32, op, yName);
    }

    static void checkPool(const Pool2dGeometry& g, const Tensor& x, const Tensor& y, const Tensor& argmax,
                          const char* op) {
        if (g.outH() <= 0 || g.outW() <= 0)
            throw BackendError(std::string(op) + ": geometry gives an empty output");
        const Shape out{g.batch, g.channels, g.outH(), g.outW()};
        checkShape(x, {g.batch, g.channels, g.height, g.width}, DType::F32, op, "x");
        checkShape(y, out, DType::F32, op, "y");
        checkShape(argmax, out, DType::I32, op, "argmax");
    }

    std::int64_t chunkImages(const Conv2dGeometry& g) const {
        const std::size_t perImage = static_cast<std::size_t>(g.inChannels * g.kernelH * g.kernelW * g.outH() *
                                                              g.outW()) * sizeof(float);
        const std::int64_t fit = perImage ? static_cast<std::int64_t>(kColumnBudgetBytes / perImage) : g.batch;
        return std::max<std::int64_t>(1, std::min<std::int64_t>(fit, std::max<std::int64_t>(g.batch, 1)));
    }

    void resetErrorFlag() { LATHE_CUDA_CHECK(cudaMemsetAsync(m_errorFlag, 0xff, 2 * sizeof(int), stream())); }

    // Reads the device-side error flag back (a synchronisation point) and throws with `describe(row, value)`.
    template <class F>
    void throwIfFlagged(F&& describe) {
        LATHE_CUDA_CHECK(cudaMemcpyAsync(m_errorHost, m_errorFlag, 2 * sizeof(int), cudaMemcpyDeviceToHost, stream()));
        LATHE_CUDA_CHECK(cudaStreamSynchronize(stream()));
        if (m_errorHost[0] != -1) throw BackendError(describe(m_errorHost[0], m_errorHost[1]));
    }

    std::shared_ptr<CudaContext> m_ctx;
    DeviceInfo m_info;
    GemmEngine m_gemm;
    int* m_errorFlag = nullptr;  // device: first bad (row, value), -1 when none
    int* m_errorHost = nullptr;  // pinned mirror
};

} // namespace
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

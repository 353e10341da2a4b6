// The CPU reference backend: construction, self-description, memory, transfers, dtype conversion
// and GEMM (OpenBLAS). The other ops live beside this file, one family per file.
#include "engine/backends/cpu/cpu_backend.h"
#include "engine/backends/cpu/cpu_backend_impl.h"
#include "engine/backends/cpu/cpu_sgemm.h"
#include "engine/backends/cpu/cpu_weight_only.h"

#include "engine/core/errors.h"
#include "engine/core/host_info.h"

#include <cblas.h>
#include <sched.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace lathe::cpu {
namespace {

// MemTotal / MemAvailable in bytes (0 when /proc/meminfo is not there).
void hostMemory(std::uint64_t& total, std::uint64_t& available) {
    total = available = 0;
    std::ifstream in("/proc/meminfo");
    std::string key;
    std::uint64_t kib = 0;
    std::string unit;
    while (in >> key >> kib) {
        std::getline(in, unit);
        if (key == "MemTotal:") total = kib * 1024;
        if (key == "MemAvailable:") available = kib * 1024;
    }
}

class SteadyTimer final : public DeviceTimer {
public:
    void start() override { m_start = std::chrono::steady_clock::now(); }
    void stop() override { m_stop = std::chrono::steady_clock::now(); }
    double elapsedMs() override { return std::chrono::duration<double, std::milli>(m_stop - m_start).count(); }

private:
    std::chrono::steady_clock::time_point m_start{}, m_stop{};
};

int resolveThreads(int threads) { return threads > 0 ? threads : lathe::defaultCpuThreads().threads; }

} // namespace


void checkCpu(const Tensor& t, const char* op, const char* what) {
    if (!t.defined()) throw BackendError(std::string("cpu ") + op + ": " + what + " is an undefined tensor");
    if (!t.isHost())
        throw BackendError(std::string("cpu ") + op + ": " + what + " is " + t.describe() + ", not a cpu tensor");
}

void checkShape(const Tensor& t, const Shape& expected, const char* op, const char* what) {
    checkCpu(t, op, what);
    if (t.shape() != expected)
        throw BackendError(std::string("cpu ") + op + ": " + what + " is " + t.describe() + ", expected shape " +
                           shapeToString(expected));
}

void checkSameShape(const Tensor& a, const Tensor& b, const char* op, const char* whatA, const char* whatB) {
    checkCpu(a, op, whatA);
    checkCpu(b, op, whatB);
    if (a.shape() != b.shape() || a.dtype() != b.dtype())
        throw BackendError(std::string("cpu ") + op + ": " + whatA + " is " + a.describe() + " but " + whatB +
                           " is " + b.describe());
}

void checkDType(const Tensor& t, DType expected, const char* op, const char* what) {
    if (t.dtype() != expected)
        throw BackendError(std::string("cpu ") + op + ": " + what + " is " + t.describe() + ", expected " +
                           dtypeName(expected));
}

namespace {
// alpha 1, beta 0 or 1, and a W whose packed copy (kept by the calling thread for its next call) stays within
// kSgemmNtMaxPacked floats.
bool ownSgemmApplies(bool tb, std::int64_t n, std::int64_t k, float alpha, float beta) {
    return alpha == 1.0f && (beta == 0.0f || beta == 1.0f) && ownSgemmEnabled() &&
           (!tb || sgemmNtPackedFloats(n, k) <= kSgemmNtMaxPacked);
}
} // namespace

void sgemmRowMajor(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
                   std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0) { // OpenBLAS would still scale c; do it here explicitly for clarity
        for (std::int64_t i = 0; i < m; ++i)
            for (std::int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        return;
    }
    // OpenBLAS 0.3.21 runs a one-row GEMM through its packing path; GEMV skips the packing,
    // which is most of the cost at batch size 1.
    if (m == 1 && ldc >= n) {
        // c (1, N) = op(a) (1, K) @ op(b) (K, N): a is a contiguous vector either way when m == 1.
        const std::int64_t incA = ta ? lda : 1;
        if (tb) // b stored (N, K)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(n), static_cast<int>(k), alpha, b,
                        static_cast<int>(ldb), a, static_cast<int>(incA), beta, c, 1);
        else // b stored (K, N)
            cblas_sgemv(CblasRowMajor, CblasTrans, static_cast<int>(k), static_cast<int>(n), alpha, b,
                        static_cast<int>(ldb), a, static_cast<int>(incA), beta, c, 1);
        return;
    }
    if (n == 1) {
        // c (M, 1) = op(a) (M, K) @ op(b) (K, 1).
        const std::int64_t incB = tb ? 1 : ldb;
        if (ta) // a stored (K, M)
            cblas_sgemv(CblasRowMajor, CblasTrans, static_cast<int>(k), static_cast<int>(m), alpha, a,
                        static_cast<int>(lda), b, static_cast<int>(incB), beta, c, static_cast<int>(ldc));
        else
            cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(m), static_cast<int>(k), alpha, a,
                        static_cast<int>(lda), b, static_cast<int>(incB), beta, c, static_cast<int>(ldc));
        return;
    }
    // On the backend's own AVX-512 kernel (cpu_sgemm.h) where it applies, on this thread: the caller is a task
    // already (a convolution's images, attention's heads) or a product too small to split.
    if (ownSgemmApplies(tb, n, k, alpha, beta)) {
        return sgemmOwn(ta, tb, m, n, k, a, lda, b, ldb, beta == 1.0f, c, ldc, nullptr, Activation::None,
                        [](std::int64_t count, const std::function<void(std::int64_t)>& fn) {
                            for (std::int64_t i = 0; i < count; ++i) fn(i);
                        });
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(m),
                static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb),
                beta, c, static_cast<int>(ldc));
}

CpuBackend::CpuBackend(int threads)
    : m_threads(resolveThreads(threads)), m_pool(std::make_shared<HostPool>()), m_ops(buildOpTable()),
      m_int8Path(initialInt8Path(m_int8PathError)) {
    // OpenBLAS runs single-threaded inside each pool thread: the backend splits GEMMs itself, in
    // chunks that depend on the shape only (so results do not depend on the thread count), and a
    // chunk a busy worker cannot take is run by the caller instead of being waited for.
    openblas_set_num_threads(1);
}

void CpuBackend::sgemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
                       std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc,
                       GemmEpilogue epilogue) {
    const double macs = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
    // The backend's own kernel where it applies (a Linear's forward, input and weight gradients), epilogue in
    // registers, split over the pool. One row stays with OpenBLAS's GEMV, which reads W once without packing it.
    if (m >= 2 && k >= 1 && ownSgemmApplies(tb, n, k, alpha, beta)) {
        const auto chunks = [&](std::int64_t count, const std::function<void(std::int64_t)>& fn) {
            if (macs < kParallelGemmMacs) {
                for (std::int64_t i = 0; i < count; ++i) fn(i);
            } else {
                m_threads.forChunks(count, fn);
            }
        };
        sgemmOwn(ta, tb, m, n, k, a, lda, b, ldb, beta == 1.0f, c, ldc, epilogue.bias, epilogue.act, chunks);
        return;
    }
    if (macs < kParallelGemmMacs || (m < 2 * kGemmPanel && n < 2 * kGemmPanel)) {
        sgemmRowMajor(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        if (!epilogue.empty()) applyBiasActivation(c, m, n, ldc, epilogue.bias, epilogue.act);
        return;
    }
    // Split the larger of M and N into panels (multiples of 16, at least kGemmPanel wide, at most 8).
    // Each panel repacks the other operand, so panels are wide: 2 panels for the MLP's 256-row GEMM.
    const bool byRows = m >= n;
    const std::int64_t extent = byRows ? m : n;
    const std::int64_t panel = std::max<std::int64_t>(kGemmPanel, (extent / 8 + 15) / 16 * 16);
    const std::int64_t panels = (extent + panel - 1) / panel;
    m_threads.forChunks(panels, [&](std::int64_t i) {
        const std::int64_t p0 = i * panel, len = std::min(panel, extent - p0);
        // c[p0 : p0 + len, :] (len, N), or c[:, p0 : p0 + len] (M, len); its epilogue follows on the same thread.
        if (byRows) {
            sgemmRowMajor(ta, tb, len, n, k, alpha, ta ? a + p0 : a + p0 * lda, lda, b, ldb, beta, c + p0 * ldc, ldc);
            if (!epilogue.empty()) applyBiasActivation(c + p0 * ldc, len, n, ldc, epilogue.bias, epilogue.act);
        } else {
            sgemmRowMajor(ta, tb, m, len, k, alpha, a, lda, tb ? b + p0 * ldb : b + p0, ldb, beta, c + p0, ldc);
            if (!epilogue.empty())
                applyBiasActivation(c + p0, m, len, ldc, epilogue.bias ? epilogue.bias + p0 : nullptr, epilogue.act);
        }
    });
}

DeviceInfo CpuBackend::info() const {
    DeviceInfo d;
    d.backend = "cpu";
    d.device = device();
    d.threads = m_threads.threads();
    d.name = cpuModelName() + " (" + std::to_string(d.threads) + " threads)";
    hostMemory(d.memoryTotalBytes, d.memoryFreeBytes);
    const char* config = openblas_get_config();
    d.runtimeVersion = config ? config : "OpenBLAS";
    // "OpenBLAS 0.3.21 DYNAMIC_ARCH ..." -> "OpenBLAS 0.3.21", and which kernels this backend's f32 GEMMs and
    // int8 GEMMs run, so that a run's environment says what its figures were measured with.
    const auto secondSpace = d.runtimeVersion.find(' ', d.runtimeVersion.find(' ') + 1);
    d.libraryVersion = d.runtimeVersion.substr(0, secondSpace) + " (f32 GEMM: " +
                       (ownSgemmEnabled() ? "lathe avx512" : "openblas") + ", int8: " + cpuInt8PathName(m_int8Path) +
                       ")";
    return d;
}

// What the CPU backend runs today, and nothing more: every op in f32 (quantize_rows f32 -> i8 included), and
// im2col_rows in i8;
// gemm also in f16 and bf16 (f32 accumulation), as the W8A8 int8 GEMM (cpu_int8.cpp) and over weight-only
// quantized weights (int8, int4, nf4 group-wise; cpu_weight_only.cpp); fill, copy and convert for every
// storage format of the dtype table (block formats through their row codecs).
OpTable CpuBackend::buildOpTable() {
    OpTable t;
    for (int o = 0; o < static_cast<int>(Op::Count); ++o) t.add(OpDesc::uniform(static_cast<Op>(o), DType::F32));
    t.addUniform({Op::Gemm}, {DType::F16, DType::BF16});
    for (WeightFormat f : {WeightFormat::Int8, WeightFormat::Int4, WeightFormat::Nf4, WeightFormat::Fp8})
        t.add(weightOnlyGemmDesc(f));
    t.add(fp8GemmDesc(Fp8Mode::Emulated)); // no FP8 matrix unit: the numerics only (cpu_weight_only.cpp)
    t.add(int8GemmDesc());
    t.add(OpDesc::uniform(Op::Im2colRows, DType::I8)); // a static-scale W8A8 convolution's codes
    for (const auto& from : dtypeTable()) {
        t.add(OpDesc::uniform(Op::Fill, from.dtype));
        t.add(OpDesc::uniform(Op::Copy, from.dtype));
        for (const auto& to : dtypeTable()) t.add(OpDesc::convert(from.dtype, to.dtype));
    }
    return t;
}

bool CpuBackend::supports(const OpDesc& desc) const { return m_ops.contains(desc); }

std::vector<OpDesc> CpuBackend::supportedOps() const { return m_ops.all(); }

std::shared_ptr<Storage> CpuBackend::allocate(std::size_t bytes) { return m_pool->allocate(bytes); }

void CpuBackend::copyFromHost(Tensor& dst, const void* src) {
    checkCpu(dst, "copy_from_host", "dst");
    if (dst.bytes()) std::memcpy(dst.data(), src, dst.bytes());
}

void CpuBackend::copyToHost(const Tensor& src, void* dst) {
    checkCpu(src, "copy_to_host", "src");
    if (src.bytes()) std::memcpy(dst, src.data(), src.bytes());
}

void CpuBackend::copy(const Tensor& src, Tensor& dst) {
    checkCpu(src, "copy", "src");
    checkCpu(dst, "copy", "dst");
    require(Op::Copy, src.dtype());
    if (src.dtype() != dst.dtype() || src.numel() != dst.numel())
        throw BackendError("cpu copy: src " + src.describe() + " and dst " + dst.describe() +
                           " differ in dtype or element count");
    if (src.data() == dst.data() || src.bytes() == 0) return;
    auto* d = static_cast<char*>(dst.data());
    const auto* s = static_cast<const char*>(src.data());
    forEach(static_cast<std::int64_t>(src.bytes()), [&](std::int64_t b, std::int64_t e) {
        std::memmove(d + b, s + b, static_cast<std::size_t>(e - b));
    }, std::int64_t{1} << 20);
}

std::unique_ptr<DeviceTimer> CpuBackend::createTimer() { return std::make_unique<SteadyTimer>(); }

void CpuBackend::fill(Tensor& x, float value) {
    checkCpu(x, "fill", "x");
    require(Op::Fill, x.dtype());
    const auto& tr = traits(x.dtype());
    const std::int64_t n = x.numel();
    if (n == 0) return;
    if (x.dtype() == DType::F32) {
        float* p = x.ptr<float>();
        forEach(n, [&](std::int64_t b, std::int64_t e) { std::fill(p + b, p + e, value); });
        return;
    }
    // One block encoded through the traits table, then repeated.
    std::vector<float> block(static_cast<std::size_t>(tr.blockSize), value);
    std::vector<unsigned char> bytes(tr.bytesPerBlock);
    tr.fromFloat(block.data(), bytes.data(), block.size());
    auto* d = static_cast<unsigned char*>(x.data());
    const std::int64_t blocks = (n + tr.blockSize - 1) / tr.blockSize;
    forEach(blocks, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t i = b; i < e; ++i) std::memcpy(d + i * tr.bytesPerBlock, bytes.data(), tr.bytesPerBlock);
    });
}

void CpuBackend::convert(const Tensor& src, Tensor& dst) {
    checkCpu(src, "convert", "src");
    checkCpu(dst, "convert", "dst");
    require(OpDesc::convert(src.dtype(), dst.dtype()));
    if (src.numel() != dst.numel())
        throw BackendError("cpu convert: src " + src.describe() + " and dst " + dst.describe() +
                           " differ in element count");
    const std::int64_t n = src.numel();
    if (src.dtype() == dst.dtype()) {
        copy(src, dst);
        return;
    }
    const auto& from = traits(src.dtype());
    const auto& to = traits(dst.dtype());
    // Work in units of whole blocks of both formats (block sizes are 1, 32 or 64: the larger is a
    // multiple of the smaller), addressing bytes by blocks, never by bits / 8.
    const std::int64_t unit = std::max(from.blockSize, to.blockSize);
    if (unit % from.blockSize != 0 || unit % to.blockSize != 0 || n % unit != 0)
        throw BackendError("cpu convert: " + src.describe() + " -> " + dst.describe() +
                           ": the element count is not a whole number of both formats' blocks");
    const auto* s = static_cast<const unsigned char*>(src.data());
    auto* d = static_cast<unsigned char*>(dst.data());
    auto byteOffset = [](const DTypeTraits& t, std::int64_t element) {
        return static_cast<std::size_t>(element / t.blockSize) * t.bytesPerBlock;
    };
    const std::int64_t units = n / unit;
    const std::int64_t minUnits = std::max<std::int64_t>(1, kInlineElements / 2 / unit);
    if (src.dtype() == DType::F32) {
        forEach(units, [&](std::int64_t b, std::int64_t e) {
            to.fromFloat(reinterpret_cast<const float*>(s) + b * unit, d + byteOffset(to, b * unit),
                         static_cast<std::size_t>((e - b) * unit));
        }, minUnits);
    } else if (dst.dtype() == DType::F32) {
        forEach(units, [&](std::int64_t b, std::int64_t e) {
            from.toFloat(s + byteOffset(from, b * unit), reinterpret_cast<float*>(d) + b * unit,
                         static_cast<std::size_t>((e - b) * unit));
        }, minUnits);
    } else { // between two non-f32 types: through f32 in tiles of whole units
        const std::int64_t tileUnits = std::max<std::int64_t>(1, 1024 / unit);
        forEach(units, [&](std::int64_t b, std::int64_t e) {
            std::vector<float> tile(static_cast<std::size_t>(tileUnits * unit));
            for (std::int64_t u = b; u < e; u += tileUnits) {
                const std::int64_t first = u * unit;
                const std::size_t len = static_cast<std::size_t>(std::min(tileUnits, e - u) * unit);
                from.toFloat(s + byteOffset(from, first), tile.data(), len);
                to.fromFloat(tile.data(), d + byteOffset(to, first), len);
            }
        }, minUnits);
    }
}

void CpuBackend::gemm(const Tensor& a, Trans ta, const Tensor& b, Trans tb, Tensor& c, float alpha, float beta) {
    checkCpu(a, "gemm", "a");
    checkCpu(b, "gemm", "b");
    checkCpu(c, "gemm", "c");
    // Mixed dtypes are refused by the table rather than converted behind the caller's back.
    require(OpDesc::gemm(a.dtype(), b.dtype(), c.dtype(), OpDesc::accumulatorFor(c.dtype())));
    if (a.rank() != 2 || b.rank() != 2 || c.rank() != 2)
        throw BackendError("cpu gemm: expects 2-D tensors, got " + a.describe() + ", " + b.describe() + ", " +
                           c.describe());
    const bool tA = ta == Trans::Yes, tB = tb == Trans::Yes;
    const std::int64_t m = tA ? a.dim(1) : a.dim(0);
    const std::int64_t k = tA ? a.dim(0) : a.dim(1);
    const std::int64_t kb = tB ? b.dim(1) : b.dim(0);
    const std::int64_t n = tB ? b.dim(0) : b.dim(1);
    if (k != kb || c.dim(0) != m || c.dim(1) != n)
        throw BackendError("cpu gemm: shapes do not match: op(a) is [" + std::to_string(m) + ", " +
                           std::to_string(k) + "], op(b) is [" + std::to_string(kb) + ", " + std::to_string(n) +
                           "], c is " + shapeToString(c.shape()));
    if (a.dtype() == DType::F32) {
        sgemm(tA, tB, m, n, k, alpha, a.ptr<float>(), a.dim(1), b.ptr<const float>(), b.dim(1), beta,
                      c.ptr<float>(), n);
        return;
    }
    // F16 / BF16: widen to f32, multiply with f32 accumulation, round the result once.
    Tensor a32 = empty(a.shape()), b32 = empty(b.shape()), c32 = empty(c.shape());
    convert(a, a32);
    convert(b, b32);
    if (beta != 0.0f) convert(c, c32);
    sgemm(tA, tB, m, n, k, alpha, a32.ptr<float>(), a.dim(1), b32.ptr<const float>(), b.dim(1), beta,
                  c32.ptr<float>(), n);
    convert(c32, c);
}

namespace {
// x (M, K), w (N, K) of wDType, bias (N) or null, y (M, N) of x's dtype: checks of the gemm_bias_act ops; returns
// {M, N, K}.
std::array<std::int64_t, 3> checkGemmBiasAct(const char* op, const Tensor& x, const Tensor& w, const Tensor* bias,
                                             const Tensor& y, DType wDType) {
    checkCpu(x, op, "x");
    checkCpu(w, op, "w");
    checkCpu(y, op, "y");
    if (x.rank() != 2 || w.rank() != 2)
        throw BackendError(std::string("cpu ") + op + ": expects a 2-D x and w, got " + x.describe() + ", " +
                           w.describe());
    const std::int64_t m = x.dim(0), k = x.dim(1), n = w.dim(0);
    checkShape(w, {n, k}, op, "w");
    checkDType(w, wDType, op, "w");
    checkShape(y, {m, n}, op, "y");
    checkDType(y, x.dtype(), op, "y");
    if (bias) {
        checkShape(*bias, {n}, op, "bias");
        checkDType(*bias, x.dtype(), op, "bias");
    }
    return {m, n, k};
}
} // namespace

void CpuBackend::gemmBiasAct(const Tensor& x, const Tensor& w, const Tensor* bias, Activation act, Tensor& y) {
    require(Op::GemmBiasAct, x.dtype());
    const auto [m, n, k] = checkGemmBiasAct("gemm_bias_act", x, w, bias, y, x.dtype());
    // x (M, K), w (N, K), bias (N) -> y (M, N)
    sgemm(false, true, m, n, k, 1.0f, x.ptr<const float>(), k, w.ptr<const float>(), k, 0.0f, y.ptr<float>(), n,
          GemmEpilogue{bias ? bias->ptr<const float>() : nullptr, act});
}

Tensor CpuBackend::prepackGemmWeight(const Tensor& w) {
    checkCpu(w, "prepack_gemm_weight", "w");
    const DType dt = w.dtype();
    if (w.rank() != 2 || (dt != DType::F32 && dt != DType::F16 && dt != DType::BF16))
        throw BackendError("cpu prepack_gemm_weight: expects a 2-D f32, f16 or bf16 weight, got " + w.describe());
    if (!ownSgemmEnabled()) return Tensor();
    const std::int64_t n = w.dim(0), k = w.dim(1);
    Tensor packed = empty({(n + 31) / 32, k, 32}, dt); // sgemmNtPackedFloats(n, k) elements
    if (dt == DType::F32) sgemmPackNt(n, k, w.ptr<const float>(), k, packed.ptr<float>());
    else sgemmPackNt16(n, k, w.ptr<const std::uint16_t>(), k, packed.ptr<std::uint16_t>());
    return packed;
}

void CpuBackend::gemmBiasActPacked(const Tensor& x, const Tensor& w, const Tensor& packedW, const Tensor* bias,
                                   Activation act, Tensor& y) {
    const char* op = "gemm_bias_act_packed";
    require(Op::GemmBiasAct, x.dtype());
    const bool wide = w.dtype() == DType::F16 || w.dtype() == DType::BF16; // a 16-bit weight, widened
    const auto [m, n, k] = checkGemmBiasAct(op, x, w, bias, y, wide ? w.dtype() : x.dtype());
    if (packedW.defined()) {
        checkCpu(packedW, op, "packedW");
        checkShape(packedW, {(n + 31) / 32, k, 32}, op, "packedW");
        checkDType(packedW, w.dtype(), op, "packedW");
    }
    const double macs = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
    const auto chunks = [&](std::int64_t count, const std::function<void(std::int64_t)>& fn) {
        if (macs < kParallelGemmMacs) {
            for (std::int64_t i = 0; i < count; ++i) fn(i);
        } else {
            m_threads.forChunks(count, fn);
        }
    };
    const float* pb = bias ? bias->ptr<const float>() : nullptr;
    if (wide) {
        // Every row from the 16-bit panels, converted in registers, each sum rounded to W's format in the epilogue
        // before the bias and the activation. Without them (the own kernel switched off): the same steps as ops.
        if (!packedW.defined() || k < 1 || !ownSgemmEnabled()) {
            Tensor w32 = empty(w.shape()), z16 = empty(y.shape(), w.dtype());
            convert(w, w32);
            gemm(x, Trans::No, w32, Trans::Yes, y, 1.0f, 0.0f);
            convert(y, z16);
            convert(z16, y);
            if (bias) biasAdd(y, *bias);
            if (act == Activation::Relu) relu(y, y);
            else if (act == Activation::Gelu) gelu(y, y);
            return;
        }
        return sgemmOwnPackedNt16(w.dtype() == DType::BF16, m, n, k, x.ptr<const float>(), k,
                                  packedW.ptr<const std::uint16_t>(), y.ptr<float>(), n, pb, act, chunks);
    }
    // One row stays with W itself (GEMV, gemmBiasAct); so does everything without a layout (prepackGemmWeight made
    // none) or when the own kernel was switched off since.
    if (!packedW.defined() || m < 2 || k < 1 || !ownSgemmEnabled()) return gemmBiasAct(x, w, bias, act, y);
    sgemmOwnPackedNt(m, n, k, x.ptr<const float>(), k, packedW.ptr<const float>(), y.ptr<float>(), n, pb, act, chunks);
}

} // namespace lathe::cpu

namespace lathe {

CpuThreadsChoice defaultCpuThreads() {
    // Slurm exports it only when the job asked for CPUs per task; a value that is not a positive
    // integer is not Slurm's and is passed over.
    if (const char* v = std::getenv("SLURM_CPUS_PER_TASK"); v && *v) {
        char* end = nullptr;
        const long n = std::strtol(v, &end, 10);
        if (*end == '\0' && n > 0 && n <= 65536) return {static_cast<int>(n), "SLURM_CPUS_PER_TASK"};
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        const int n = CPU_COUNT(&set);
        const unsigned hw = std::thread::hardware_concurrency();
        if (n > 0 && (hw == 0 || static_cast<unsigned>(n) < hw)) return {n, "affinity"};
    }
    const unsigned hw = std::thread::hardware_concurrency();
    return {hw ? static_cast<int>(hw) : 1, "hardware"};
}

std::shared_ptr<Backend> makeCpuBackend(int threads) { return std::make_shared<cpu::CpuBackend>(threads); }

} // namespace lathe

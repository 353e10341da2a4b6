// CPU W8A8 int8 ops: quantize_rows, prepack_int8 (the weight's execution layout, cpu_int8_kernels.h) and
// gemm_int8: y = act(acc * xScale * wScale + bias) over exact int32 sums. Argument checks, the choice of
// kernels (scalar, AVX2, AVX512-VNNI: at run time, like the rest of the backend) and the split over threads;
// the kernels are in cpu_int8_kernels.cpp.
#include "engine/backends/cpu/cpu_backend_impl.h"
#include "engine/backends/cpu/cpu_int8_kernels.h"

#include "engine/core/errors.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

namespace lathe::cpu {
namespace {

using int8::Int8Gemm;
using int8::kGroup;
using int8::kPanel;
using int8::PackedView;

// ---------------------------------------------------------------- the packed weight

// The 64 bytes before comp and codes (cpu_int8_kernels.h), so that gemm_int8 can check what it is given.
struct Int8PackHeader {
    std::uint32_t magic;
    std::uint32_t panelWidth;
    std::int64_t n, k, kPadded, panels;
    std::int64_t reserved[3];
};
static_assert(sizeof(Int8PackHeader) == 64, "comp and codes after the header keep the buffer's 64-byte alignment");
constexpr std::uint32_t kPackMagic = 0x4c493857; // "W8IL"
// Largest K for which every int32 sum is exact whatever the int8 codes: K * 128 * 128 <= 2^31 - 1.
constexpr std::int64_t kMaxK = 2147483647LL / (128 * 128);
// Rows and panels of one threaded task: 48 rows are 8 of the VNNI kernel's 6-row tiles, 4 panels its
// 64-column tile; a task then reads a (48, kp) block of x and a (64, kp) block of W.
constexpr std::int64_t kTaskRows = 48;
constexpr std::int64_t kTaskPanels = 4;

std::int64_t packedBytes(std::int64_t panels, std::int64_t kp) {
    return static_cast<std::int64_t>(sizeof(Int8PackHeader)) + panels * kPanel * 4 + panels * kPanel * kp;
}

PackedView viewPacked(const Tensor& packed, const char* op) {
    checkCpu(packed, op, "packedW");
    const auto notPacked = [&](const char* why) {
        return BackendError(std::string("cpu ") + op + ": packedW is " + packed.describe() +
                            ", not a weight packed by the cpu prepack_int8 (" + why + ")");
    };
    if (packed.dtype() != DType::U8 || packed.rank() != 1 ||
        packed.numel() < static_cast<std::int64_t>(sizeof(Int8PackHeader)))
        throw notPacked("expected a u8 byte buffer");
    Int8PackHeader h{};
    std::memcpy(&h, packed.data(), sizeof h);
    if (h.magic != kPackMagic || h.panelWidth != kPanel) throw notPacked("no int8 pack header");
    if (h.n < 0 || h.k < 0 || h.k > kMaxK || h.kPadded != (h.k + kGroup - 1) / kGroup * kGroup ||
        h.panels != (h.n + kPanel - 1) / kPanel || packed.numel() != packedBytes(h.panels, h.kPadded))
        throw notPacked("its header disagrees with its size");
    PackedView v;
    v.n = h.n;
    v.k = h.k;
    v.kp = h.kPadded;
    v.panels = h.panels;
    const auto* base = static_cast<const unsigned char*>(packed.data());
    v.comp = reinterpret_cast<const std::int32_t*>(base + sizeof h);
    v.codes = reinterpret_cast<const std::int8_t*>(base + sizeof h + h.panels * kPanel * 4);
    return v;
}

constexpr CpuInt8Path kAllPaths[] = {CpuInt8Path::Scalar, CpuInt8Path::Avx2, CpuInt8Path::Avx512Vnni};

} // namespace

CpuInt8Path initialInt8Path(std::string& error) {
    static const std::string requested = [] {
        const char* v = std::getenv("LATHE_CPU_INT8_PATH");
        return v ? std::string(v) : std::string();
    }();
    error.clear();
    if (requested.empty()) {
        for (CpuInt8Path p : {CpuInt8Path::Avx512Vnni, CpuInt8Path::Avx2})
            if (cpuInt8PathAvailable(p)) return p;
        return CpuInt8Path::Scalar;
    }
    for (CpuInt8Path p : kAllPaths)
        if (requested == cpuInt8PathName(p)) {
            if (!cpuInt8PathAvailable(p)) error = "LATHE_CPU_INT8_PATH=" + requested + " needs instructions this CPU lacks";
            return cpuInt8PathAvailable(p) ? p : CpuInt8Path::Scalar;
        }
    error = "LATHE_CPU_INT8_PATH=" + requested + " is not one of scalar, avx2, avx512vnni";
    return CpuInt8Path::Scalar;
}

void CpuBackend::setInt8Path(CpuInt8Path path) {
    if (!cpuInt8PathAvailable(path))
        throw BackendError(std::string("cpu: the ") + cpuInt8PathName(path) +
                           " int8 kernels need instructions this CPU lacks");
    m_int8Path = path;
    m_int8PathError.clear();
}

CpuInt8Path CpuBackend::checkedInt8Path(const char* op) const {
    if (!m_int8PathError.empty()) throw BackendError(std::string("cpu ") + op + ": " + m_int8PathError);
    return m_int8Path;
}

void CpuBackend::quantizeRows(const Tensor& x, Tensor& xq, Tensor& scale, bool dynamic) {
    const char* op = "quantize_rows";
    checkCpu(x, op, "x");
    checkCpu(xq, op, "xq");
    checkCpu(scale, op, "scale");
    require(Op::QuantizeRows, x.dtype());
    if (x.rank() != 2) throw BackendError("cpu quantize_rows: x is " + x.describe() + ", expected (M, K)");
    const std::int64_t m = x.dim(0), k = x.dim(1);
    checkDType(xq, DType::I8, op, "xq");
    checkShape(xq, {m, k}, op, "xq");
    checkDType(scale, DType::F32, op, "scale");
    checkShape(scale, dynamic ? Shape{m} : Shape{1}, op, "scale");
    const CpuInt8Path path = checkedInt8Path(op);
    float* s = scale.ptr<float>();
    if (!dynamic && !(std::isfinite(s[0]) && s[0] > 0.0f))
        throw BackendError("cpu quantize_rows: the static scale is " + std::to_string(s[0]) +
                           ", expected a finite value > 0");
    const float* px = x.ptr<const float>();
    auto* pq = xq.ptr<std::int8_t>();
    forEach(m, [&](std::int64_t b, std::int64_t e) {
        int8::quantizeRowsOn(path, px + b * k, e - b, k, dynamic, dynamic ? s + b : s, pq + b * k);
    }, std::max<std::int64_t>(1, kInlineElements / 2 / std::max<std::int64_t>(1, k)));
}

Tensor CpuBackend::prepackInt8(const Tensor& wq) {
    const char* op = "prepack_int8";
    checkCpu(wq, op, "wq");
    require(int8GemmDesc());
    checkDType(wq, DType::I8, op, "wq");
    if (wq.rank() != 2) throw BackendError("cpu prepack_int8: wq is " + wq.describe() + ", expected (N, K)");
    const std::int64_t n = wq.dim(0), k = wq.dim(1);
    if (k > kMaxK)
        throw BackendError("cpu prepack_int8: wq is " + wq.describe() + "; K above " + std::to_string(kMaxK) +
                           " could overflow the int32 sums");
    const std::int64_t kp = (k + kGroup - 1) / kGroup * kGroup, panels = (n + kPanel - 1) / kPanel;
    Tensor packed = empty({packedBytes(panels, kp)}, DType::U8);
    auto* base = packed.ptr<unsigned char>();
    std::memset(base, 0, packed.bytes());
    const Int8PackHeader h{kPackMagic, static_cast<std::uint32_t>(kPanel), n, k, kp, panels, {}};
    std::memcpy(base, &h, sizeof h);
    auto* comp = reinterpret_cast<std::int32_t*>(base + sizeof h);                     // (panels * 16)
    auto* codes = reinterpret_cast<std::int8_t*>(base + sizeof h + panels * kPanel * 4); // (panels, kp / 4, 16, 4)
    const auto* w = wq.ptr<const std::int8_t>();                                         // (N, K)
    for (std::int64_t row = 0; row < n; ++row) {
        std::int8_t* dst = codes + (row / kPanel) * kp * kPanel + (row % kPanel) * kGroup;
        std::int32_t sum = 0;
        for (std::int64_t c = 0; c < k; ++c) {
            dst[(c / kGroup) * kPanel * kGroup + c % kGroup] = w[row * k + c];
            sum += w[row * k + c];
        }
        comp[row] = 128 * sum;
    }
    return packed;
}

void CpuBackend::gemmInt8(const Tensor& xq, const Tensor& xScale, const Tensor& packedW, const Tensor& wScale,
                          const Tensor* bias, Activation act, Tensor& y) {
    const char* op = "gemm_int8";
    checkCpu(xq, op, "xq");
    checkCpu(xScale, op, "xScale");
    checkCpu(wScale, op, "wScale");
    checkCpu(y, op, "y");
    if (bias) checkCpu(*bias, op, "bias");
    require(int8GemmDesc());
    const PackedView w = viewPacked(packedW, op);
    checkDType(xq, DType::I8, op, "xq");
    if (xq.rank() != 2 || xq.dim(1) != w.k)
        throw BackendError("cpu gemm_int8: xq is " + xq.describe() + ", expected (M, " + std::to_string(w.k) +
                           ") for the packed weight (N " + std::to_string(w.n) + ", K " + std::to_string(w.k) + ")");
    const std::int64_t m = xq.dim(0), n = w.n;
    const auto checkScale = [&](const Tensor& s, std::int64_t extent, const char* what) {
        checkDType(s, DType::F32, op, what);
        if (s.shape() != Shape{extent} && s.shape() != Shape{1})
            throw BackendError(std::string("cpu gemm_int8: ") + what + " is " + s.describe() + ", expected (" +
                               std::to_string(extent) + ") or (1)");
    };
    checkScale(xScale, m, "xScale");
    checkScale(wScale, n, "wScale");
    if (bias) {
        checkDType(*bias, DType::F32, op, "bias");
        checkShape(*bias, {n}, op, "bias");
    }
    checkDType(y, DType::F32, op, "y");
    checkShape(y, {m, n}, op, "y");
    const CpuInt8Path path = checkedInt8Path(op);
    if (m == 0 || n == 0) return;

    Int8Gemm g;
    g.w = w;
    g.m = m;
    g.xq = xq.ptr<const std::int8_t>();
    g.xScale = xScale.ptr<const float>();
    g.xPerRow = xScale.numel() == m;
    g.wScale = wScale.ptr<const float>();
    g.wPerColumn = wScale.numel() == n;
    g.bias = bias ? bias->ptr<const float>() : nullptr;
    g.act = act;
    g.y = y.ptr<float>();

    // The vector kernels read x in their own form, padded to kp with zeros: one pass over (M, K) bytes.
    Tensor prepared;
    if (const std::int64_t bytes = int8::preparedBytes(path, m, w.kp)) {
        prepared = empty({bytes}, DType::U8);
        int8::prepareX(path, g.xq, m, w.k, w.kp, prepared.data());
        g.xPrepared = prepared.data();
    }

    const int8::TileFn tile = int8::tileFor(path);
    const double macs = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(std::max<std::int64_t>(w.k, 1));
    if (m == 1 || macs < kParallelGemmMacs) { // batch 1 is a GEMV on the calling thread
        tile(g, 0, m, 0, w.panels);
        return;
    }
    // Tasks of (48 rows, 4 panels): the chunking depends on the shape only.
    const std::int64_t rowBlocks = (m + kTaskRows - 1) / kTaskRows;
    const std::int64_t panelBlocks = (w.panels + kTaskPanels - 1) / kTaskPanels;
    m_threads.forChunks(rowBlocks * panelBlocks, [&](std::int64_t i) {
        const std::int64_t rb = i / panelBlocks, pb = i % panelBlocks;
        tile(g, rb * kTaskRows, std::min(m, (rb + 1) * kTaskRows), pb * kTaskPanels,
             std::min(w.panels, (pb + 1) * kTaskPanels));
    });
}

} // namespace lathe::cpu

namespace lathe {

const char* cpuInt8PathName(CpuInt8Path path) {
    switch (path) {
    case CpuInt8Path::Scalar: return "scalar";
    case CpuInt8Path::Avx2: return "avx2";
    case CpuInt8Path::Avx512Vnni: return "avx512vnni";
    }
    return "?";
}

void setCpuInt8Path(Backend& backend, CpuInt8Path path) {
    auto* cpu = dynamic_cast<cpu::CpuBackend*>(&backend);
    if (!cpu) throw BackendError(backend.name() + " is not the cpu backend: it has no int8 kernels to choose");
    cpu->setInt8Path(path);
}

CpuInt8Path cpuInt8Path(const Backend& backend) {
    const auto* cpu = dynamic_cast<const cpu::CpuBackend*>(&backend);
    if (!cpu) throw BackendError(backend.name() + " is not the cpu backend: it has no int8 kernels");
    return cpu->int8Path();
}

} // namespace lathe

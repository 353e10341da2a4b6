// Host codecs of the weight-only quantized matrices (quant_matrix.h).
#include "engine/core/quant_matrix.h"

#include "engine/core/dtype.h"
#include "engine/core/errors.h"
#include "engine/core/quant_blocks.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace lathe {
namespace {

constexpr int kInt8Max = 127;
constexpr int kInt4SymMax = 7;    // symmetric 4-bit codes q - 8 in [-7, 7]
constexpr int kInt4Levels = 15;   // asymmetric 4-bit codes in [0, 15]
constexpr int kInt4SymZero = 8;

void setNibble(std::uint8_t* row, std::int64_t k, int code) {
    std::uint8_t& b = row[k / 2];
    if (k % 2 == 0) b = static_cast<std::uint8_t>((b & 0xF0) | (code & 0x0F));
    else b = static_cast<std::uint8_t>((b & 0x0F) | ((code & 0x0F) << 4));
}

int clampCode(long v, int lo, int hi) { return static_cast<int>(std::clamp<long>(v, lo, hi)); }

// bitsandbytes' compress_statistics: offset = mean(absmax); (absmax - offset) quantized blockwise (256) to the
// dynamic map's codes, one f32 absmax per block. The 4-bit codes stay those of the exact absmax (as there);
// `scales` becomes the decoded values, which the kernels multiply by.
void doubleQuantizeScales(HostQuantMatrix& q) {
    const std::int64_t n = static_cast<std::int64_t>(q.scales.size());
    double sum = 0;
    for (float s : q.scales) sum += s;
    q.scaleOffset = n > 0 ? static_cast<float>(sum / static_cast<double>(n)) : 0.0f;
    const std::int64_t blocks = (n + kDoubleQuantBlock - 1) / kDoubleQuantBlock;
    q.scaleCodes.assign(static_cast<std::size_t>(n), 0);
    q.scaleAbsmax.assign(static_cast<std::size_t>(blocks), 0.0f);
    for (std::int64_t b = 0; b < blocks; ++b) {
        const std::int64_t i0 = b * kDoubleQuantBlock, i1 = std::min(n, i0 + kDoubleQuantBlock);
        float amax = 0.0f;
        for (std::int64_t i = i0; i < i1; ++i) amax = std::max(amax, std::fabs(q.scales[std::size_t(i)] - q.scaleOffset));
        q.scaleAbsmax[std::size_t(b)] = amax;
        const float inv = amax > 0 ? 1.0f / amax : 0.0f;
        for (std::int64_t i = i0; i < i1; ++i)
            q.scaleCodes[std::size_t(i)] = dynamicMap8Code((q.scales[std::size_t(i)] - q.scaleOffset) * inv);
    }
    decodeDoubleQuantScales(q.scaleCodes.data(), q.scaleAbsmax.data(), q.scaleOffset, n, q.scales.data());
}

} // namespace

const char* weightFormatName(WeightFormat f) {
    switch (f) {
    case WeightFormat::Int8: return "int8";
    case WeightFormat::Int4: return "int4";
    case WeightFormat::Nf4: return "nf4";
    case WeightFormat::Fp8: return "fp8";
    }
    return "?";
}

WeightFormat weightFormatFromName(std::string_view s) {
    for (WeightFormat f : {WeightFormat::Int8, WeightFormat::Int4, WeightFormat::Nf4, WeightFormat::Fp8})
        if (s == weightFormatName(f)) return f;
    throw ConfigError("unknown weight format \"" + std::string(s) + "\" (known: int8, int4, nf4, fp8)");
}

DType packedDType(WeightFormat f) {
    return f == WeightFormat::Int8 ? DType::I8 : f == WeightFormat::Fp8 ? DType::F8E4M3 : DType::U8;
}

std::int64_t packedRowBytes(WeightFormat f, std::int64_t cols) {
    return f == WeightFormat::Int8 || f == WeightFormat::Fp8 ? cols : (cols + 1) / 2;
}

const std::array<float, 256>& dynamicMap8() {
    // create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): for each decimal exponent
    // e = 10^(i - 6), i < 7, the 2^i midpoints of linspace(0.1, 1, 2^i + 1) times +e and -e; then 0 and 1.
    static const std::array<float, 256> map = [] {
        std::vector<float> v;
        for (int i = 0; i < 7; ++i) {
            const int items = (1 << i) + 1;
            const float step = (1.0f - 0.1f) / static_cast<float>(items - 1);
            const float scale = static_cast<float>(std::pow(10.0, i - 6));
            for (int j = 0; j + 1 < items; ++j) {
                const float lo = 0.1f + step * static_cast<float>(j), hi = 0.1f + step * static_cast<float>(j + 1);
                const float mean = (lo + hi) / 2.0f;
                v.push_back(scale * mean);
                v.push_back(-scale * mean);
            }
        }
        v.push_back(0.0f);
        v.push_back(1.0f);
        std::sort(v.begin(), v.end());
        std::array<float, 256> out{};
        std::copy(v.begin(), v.end(), out.begin());
        return out;
    }();
    return map;
}

std::uint8_t dynamicMap8Code(float v) {
    const auto& map = dynamicMap8();
    const auto it = std::lower_bound(map.begin(), map.end(), v);
    if (it == map.begin()) return 0;
    if (it == map.end()) return 255;
    const auto below = it - 1;
    return static_cast<std::uint8_t>((v - *below <= *it - v ? below : it) - map.begin());
}

void decodeDoubleQuantScales(const std::uint8_t* codes, const float* blockAbsmax, float offset, std::int64_t n,
                             float* absmax) {
    const auto& map = dynamicMap8();
    for (std::int64_t i = 0; i < n; ++i) absmax[i] = map[codes[i]] * blockAbsmax[i / kDoubleQuantBlock] + offset;
}

const std::array<float, 256>& fp8E4M3Table() {
    static const std::array<float, 256> table = [] {
        std::array<float, 256> t{};
        for (int b = 0; b < 256; ++b) t[static_cast<std::size_t>(b)] = fp8E4M3ToFloat(static_cast<std::uint8_t>(b));
        return t;
    }();
    return table;
}

HostQuantMatrix quantizeMatrix(const float* w, std::int64_t rows, std::int64_t cols, QuantSpec spec) {
    if (spec.group < 1) throw ConfigError("quantization group must be at least 1, got " + std::to_string(spec.group));
    if (rows < 0 || cols < 1) throw ConfigError("quantized matrix needs at least one column");
    if (spec.format != WeightFormat::Int4) spec.symmetric = true;
    if (spec.format != WeightFormat::Nf4) spec.doubleQuant = false;
    HostQuantMatrix q;
    q.spec = spec;
    q.rows = rows;
    q.cols = cols;
    const std::int64_t groups = q.groups(), rowBytes = packedRowBytes(spec.format, cols);
    q.packed.assign(static_cast<std::size_t>(rows * rowBytes), 0);
    q.scales.assign(static_cast<std::size_t>(rows * groups), 0.0f);
    if (q.hasZeros()) q.zeros.assign(static_cast<std::size_t>(rows * groups), 0);
    for (std::int64_t r = 0; r < rows; ++r) {
        const float* wr = w + r * cols;
        std::uint8_t* pr = q.packed.data() + r * rowBytes;
        for (std::int64_t g = 0; g < groups; ++g) {
            const std::int64_t k0 = g * spec.group, k1 = std::min(cols, k0 + spec.group);
            float lo = 0.0f, hi = 0.0f; // the range always holds zero
            for (std::int64_t k = k0; k < k1; ++k) {
                lo = std::min(lo, wr[k]);
                hi = std::max(hi, wr[k]);
            }
            const float absmax = std::max(-lo, hi);
            float& scale = q.scales[static_cast<std::size_t>(r * groups + g)];
            switch (spec.format) {
            case WeightFormat::Int8: {
                scale = absmax / kInt8Max;
                const float inv = scale > 0 ? 1.0f / scale : 0.0f;
                for (std::int64_t k = k0; k < k1; ++k)
                    reinterpret_cast<std::int8_t*>(pr)[k] =
                        static_cast<std::int8_t>(clampCode(std::lround(wr[k] * inv), -kInt8Max, kInt8Max));
                break;
            }
            case WeightFormat::Int4: {
                int zero = kInt4SymZero;
                int qlo = 0, qhi = kInt4Levels;
                if (spec.symmetric) {
                    scale = absmax / kInt4SymMax;
                    qlo = kInt4SymZero - kInt4SymMax;
                } else {
                    scale = (hi - lo) / kInt4Levels;
                    zero = scale > 0 ? clampCode(std::lround(-lo / scale), 0, kInt4Levels) : 0;
                    q.zeros[static_cast<std::size_t>(r * groups + g)] = static_cast<std::uint8_t>(zero);
                }
                const float inv = scale > 0 ? 1.0f / scale : 0.0f;
                for (std::int64_t k = k0; k < k1; ++k)
                    setNibble(pr, k, clampCode(std::lround(wr[k] * inv) + zero, qlo, qhi));
                break;
            }
            case WeightFormat::Nf4: {
                scale = absmax;
                const float inv = absmax > 0 ? 1.0f / absmax : 0.0f;
                for (std::int64_t k = k0; k < k1; ++k) setNibble(pr, k, nf4Code(wr[k] * inv));
                break;
            }
            case WeightFormat::Fp8: {
                scale = absmax / kFp8E4M3Max;
                const float inv = scale > 0 ? 1.0f / scale : 0.0f;
                for (std::int64_t k = k0; k < k1; ++k) pr[k] = floatToFp8E4M3(wr[k] * inv);
                break;
            }
            }
        }
    }
    if (q.doubleQuant()) doubleQuantizeScales(q);
    return q;
}

int quantCode(const HostQuantMatrix& q, std::int64_t r, std::int64_t k) {
    const std::uint8_t* row = q.packed.data() + r * packedRowBytes(q.spec.format, q.cols);
    if (q.spec.format == WeightFormat::Int8) return reinterpret_cast<const std::int8_t*>(row)[k];
    if (q.spec.format == WeightFormat::Fp8) return row[k];
    const std::uint8_t b = row[k / 2];
    return k % 2 == 0 ? (b & 0x0F) : (b >> 4);
}

void dequantizeMatrix(const HostQuantMatrix& q, float* w) {
    const std::int64_t groups = q.groups();
    for (std::int64_t r = 0; r < q.rows; ++r) {
        for (std::int64_t k = 0; k < q.cols; ++k) {
            const std::int64_t g = r * groups + k / q.spec.group;
            const float scale = q.scales[static_cast<std::size_t>(g)];
            const int code = quantCode(q, r, k);
            float v = 0.0f;
            switch (q.spec.format) {
            case WeightFormat::Int8: v = static_cast<float>(code) * scale; break;
            case WeightFormat::Int4: {
                const int zero = q.hasZeros() ? q.zeros[static_cast<std::size_t>(g)] : kInt4SymZero;
                v = static_cast<float>(code - zero) * scale;
                break;
            }
            case WeightFormat::Nf4: v = kNf4Codebook[static_cast<std::size_t>(code)] * scale; break;
            case WeightFormat::Fp8: v = fp8E4M3ToFloat(static_cast<std::uint8_t>(code)) * scale; break;
            }
            w[r * q.cols + k] = v;
        }
    }
}

} // namespace lathe

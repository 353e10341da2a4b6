// Row codecs of the block formats (FP32 <-> q4_0, q4_1, nf4, q8_0), written after the reference
// quantizers of ggml (quantize_row_*_ref) and bitsandbytes (kQuantizeBlockwise, dQuantizeNF4).
#include "engine/core/quant_blocks.h"

#include "engine/core/dtype.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

namespace lathe {
namespace {

// Midpoints between neighbouring NF4 codes as bitsandbytes' dQuantizeNF4 tree hard-codes them.
constexpr std::array<float, 15> kNf4Thresholds = {
    -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
    -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
    0.1202552504837513f, 0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
    0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f};

std::uint8_t nibble(float v) { return static_cast<std::uint8_t>(std::min(15, static_cast<int>(static_cast<std::int8_t>(v)))); }

} // namespace

std::uint8_t nf4Code(float x) {
    // The code is the number of thresholds x lies strictly above.
    return static_cast<std::uint8_t>(std::lower_bound(kNf4Thresholds.begin(), kNf4Thresholds.end(), x) -
                                     kNf4Thresholds.begin());
}

void quantizeRowQ4_0(const float* x, BlockQ4_0* y, std::size_t n) {
    constexpr int qk = BlockQ4_0::kValues;
    for (std::size_t i = 0; i < n / qk; ++i, x += qk) {
        float amax = 0.0f, max = 0.0f; // the value of largest magnitude, with its sign
        for (int j = 0; j < qk; ++j)
            if (amax < std::fabs(x[j])) {
                amax = std::fabs(x[j]);
                max = x[j];
            }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = floatToHalf(d);
        for (int j = 0; j < qk / 2; ++j)
            y[i].qs[j] = static_cast<std::uint8_t>(nibble(x[j] * id + 8.5f) | (nibble(x[qk / 2 + j] * id + 8.5f) << 4));
    }
}

void dequantizeRowQ4_0(const BlockQ4_0* x, float* y, std::size_t n) {
    constexpr int qk = BlockQ4_0::kValues;
    for (std::size_t i = 0; i < n / qk; ++i, y += qk) {
        const float d = halfToFloat(x[i].d);
        for (int j = 0; j < qk / 2; ++j) {
            y[j] = static_cast<float>((x[i].qs[j] & 0x0f) - 8) * d;
            y[qk / 2 + j] = static_cast<float>((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void quantizeRowQ4_1(const float* x, BlockQ4_1* y, std::size_t n) {
    constexpr int qk = BlockQ4_1::kValues;
    for (std::size_t i = 0; i < n / qk; ++i, x += qk) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < qk; ++j) {
            min = std::min(min, x[j]);
            max = std::max(max, x[j]);
        }
        const float d = (max - min) / 15.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = floatToHalf(d);
        y[i].m = floatToHalf(min);
        for (int j = 0; j < qk / 2; ++j)
            y[i].qs[j] = static_cast<std::uint8_t>(nibble((x[j] - min) * id + 0.5f) |
                                                   (nibble((x[qk / 2 + j] - min) * id + 0.5f) << 4));
    }
}

void dequantizeRowQ4_1(const BlockQ4_1* x, float* y, std::size_t n) {
    constexpr int qk = BlockQ4_1::kValues;
    for (std::size_t i = 0; i < n / qk; ++i, y += qk) {
        const float d = halfToFloat(x[i].d), m = halfToFloat(x[i].m);
        for (int j = 0; j < qk / 2; ++j) {
            y[j] = static_cast<float>(x[i].qs[j] & 0x0f) * d + m;
            y[qk / 2 + j] = static_cast<float>(x[i].qs[j] >> 4) * d + m;
        }
    }
}

void quantizeRowNf4(const float* x, BlockNf4* y, std::size_t n) {
    constexpr int qk = BlockNf4::kValues;
    for (std::size_t i = 0; i < n / qk; ++i, x += qk) {
        float absmax = 0.0f;
        for (int j = 0; j < qk; ++j) absmax = std::max(absmax, std::fabs(x[j]));
        // An all-zero block stores code 7 (exactly 0) rather than dividing by zero.
        const float scale = absmax != 0.0f ? 1.0f / absmax : 0.0f;
        y[i].absmax = absmax;
        for (int j = 0; j < qk / 2; ++j)
            y[i].qs[j] = static_cast<std::uint8_t>((nf4Code(x[2 * j] * scale) << 4) | nf4Code(x[2 * j + 1] * scale));
    }
}

void dequantizeRowNf4(const BlockNf4* x, float* y, std::size_t n) {
    constexpr int qk = BlockNf4::kValues;
    for (std::size_t i = 0; i < n / qk; ++i, y += qk)
        for (int j = 0; j < qk / 2; ++j) {
            y[2 * j] = kNf4Codebook[x[i].qs[j] >> 4] * x[i].absmax;
            y[2 * j + 1] = kNf4Codebook[x[i].qs[j] & 0x0f] * x[i].absmax;
        }
}

void quantizeRowQ8_0(const float* x, BlockQ8_0* y, std::size_t n) {
    constexpr int qk = BlockQ8_0::kValues;
    for (std::size_t i = 0; i < n / qk; ++i, x += qk) {
        float amax = 0.0f;
        for (int j = 0; j < qk; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = floatToHalf(d);
        for (int j = 0; j < qk; ++j) y[i].qs[j] = static_cast<std::int8_t>(std::round(x[j] * id));
    }
}

void dequantizeRowQ8_0(const BlockQ8_0* x, float* y, std::size_t n) {
    constexpr int qk = BlockQ8_0::kValues;
    for (std::size_t i = 0; i < n / qk; ++i, y += qk) {
        const float d = halfToFloat(x[i].d);
        for (int j = 0; j < qk; ++j) y[j] = static_cast<float>(x[i].qs[j]) * d;
    }
}

} // namespace lathe

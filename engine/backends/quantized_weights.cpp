// Host-quantized matrices onto a backend (quantized_weights.h).
#include "engine/backends/quantized_weights.h"

namespace lathe {

QuantizedWeights uploadQuantizedWeights(Backend& be, const HostQuantMatrix& q) {
    QuantizedWeights w;
    w.spec = q.spec;
    w.rows = q.rows;
    w.cols = q.cols;
    const std::int64_t groups = q.groups();
    // Int8 codes are the bytes of int8 values (Fp8 ones of E4M3 values): copied as they are.
    w.packed = be.empty({q.rows, packedRowBytes(q.spec.format, q.cols)}, packedDType(q.spec.format));
    be.copyFromHost(w.packed, q.packed.data());
    if (q.doubleQuant()) {
        w.scaleCodes = be.uploadU8(q.scaleCodes, {q.rows, groups});
        w.scaleAbsmax = be.upload(q.scaleAbsmax, {static_cast<std::int64_t>(q.scaleAbsmax.size())});
        w.scaleOffset = be.upload(std::vector<float>{q.scaleOffset}, {1});
    } else {
        w.scales = be.upload(q.scales, {q.rows, groups});
    }
    if (q.hasZeros()) w.zeros = be.uploadU8(q.zeros, {q.rows, groups});
    return w;
}

} // namespace lathe

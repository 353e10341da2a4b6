// Host-quantized matrices onto a backend (quantized_weights.h).
#include "engine/backends/quantized_weights.h"

namespace lathe {

QuantizedWeights uploadQuantizedWeights(Backend& be, const HostQuantMatrix& q) {
    QuantizedWeights w;
    w.spec = q.spec;
    w.rows = q.rows;
    w.cols = q.cols;
    const std::int64_t groups = q.groups();
    // Int8 codes are the bytes of int8 values: copied as they are into an I8 tensor.
    w.packed = be.empty({q.rows, packedRowBytes(q.spec.format, q.cols)},
                        q.spec.format == WeightFormat::Int8 ? DType::I8 : DType::U8);
    be.copyFromHost(w.packed, q.packed.data());
    w.scales = be.upload(q.scales, {q.rows, groups});
    if (q.hasZeros()) w.zeros = be.uploadU8(q.zeros, {q.rows, groups});
    return w;
}

} // namespace lathe

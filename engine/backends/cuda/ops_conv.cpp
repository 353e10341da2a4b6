// The CUDA backend's convolution (im2col + GEMM in chunks of images, one strided-batched GEMM over the groups
// of a grouped one, direct kernels for depthwise) and max pooling (conv.cu, pool.cu).
#include "engine/backends/cuda/cuda_backend_impl.h"
#include "engine/backends/cuda/cuda_kernels.h"

#include "engine/core/errors.h"

#include <algorithm>

namespace lathe::cuda {
namespace {

// Conv columns are capped at this many bytes; larger batches are processed in chunks of images.
constexpr std::size_t kColumnBudgetBytes = 64u << 20;

} // namespace

void CudaBackend::checkConv(const Conv2dGeometry& g, const Tensor& x, const Tensor& w, const Tensor& y, const char* op,
                      const char* yName, const char* wName) {
    checkConvGeometry(g, op);
    const Shape ws{g.outChannels, g.inPerGroup(), g.kernelH, g.kernelW};
    if (g.groups != 1 && (w.dtype() != DType::F32 || w.shape() != ws))
        throw BackendError(std::string(op) + ": " + wName + " is " + w.describe() + ", expected f32" +
                           shapeToString(ws) + " (K, C/groups, KH, KW) for C=" + std::to_string(g.inChannels) +
                           ", K=" + std::to_string(g.outChannels) + ", groups=" + std::to_string(g.groups));
    checkShape(x, {g.batch, g.inChannels, g.height, g.width}, DType::F32, op, "x");
    checkShape(w, ws, DType::F32, op, wName);
    checkShape(y, {g.batch, g.outChannels, g.outH(), g.outW()}, DType::F32, op, yName);
}

void CudaBackend::checkPool(const Pool2dGeometry& g, const Tensor& x, const Tensor& y, const Tensor& argmax,
                      const char* op) {
    checkPoolGeometry(g, op);
    const Shape out{g.batch, g.channels, g.outH(), g.outW()};
    checkShape(x, {g.batch, g.channels, g.height, g.width}, DType::F32, op, "x");
    checkShape(y, out, DType::F32, op, "y");
    checkShape(argmax, out, DType::I32, op, "argmax");
}

std::int64_t CudaBackend::chunkImages(const Conv2dGeometry& g) const {
    const std::size_t perImage = static_cast<std::size_t>(g.inChannels * g.kernelH * g.kernelW * g.outH() *
                                                          g.outW()) * sizeof(float);
    const std::int64_t fit = perImage ? static_cast<std::int64_t>(kColumnBudgetBytes / perImage) : g.batch;
    return std::max<std::int64_t>(1, std::min<std::int64_t>(fit, std::max<std::int64_t>(g.batch, 1)));
}

void CudaBackend::conv2dForward(const Tensor& x, const Tensor& w, Tensor& y, const Conv2dGeometry& g) {
    begin(Op::Conv2dForward, x.dtype(), {&x, &w, &y});
    checkConv(g, x, w, y, "conv2d_forward", "y");
    if (g.depthwise()) {
        launchDepthwiseForward(x.ptr<float>(), w.ptr<float>(), y.ptr<float>(), g, stream());
        return;
    }
    // kdim: the columns of one group; the buffer holds all G groups' rows.
    const std::int64_t kdim = g.inPerGroup() * g.kernelH * g.kernelW, p = g.outH() * g.outW();
    const std::int64_t kg = g.outPerGroup(), nb = chunkImages(g);
    Tensor col = empty({g.groups * kdim, nb * p}); // (C*KH*KW, nb*OH*OW)
    Tensor out = empty({g.outChannels, nb * p});   // (K, nb*OH*OW)
    for (std::int64_t n0 = 0; n0 < g.batch; n0 += nb) {
        const std::int64_t cnt = std::min(nb, g.batch - n0);
        launchIm2col(x.ptr<float>(), col.ptr<float>(), g, n0, cnt, stream());
        if (g.groups == 1) // out (K, cnt*P) = w (K, CKK) @ col (CKK, cnt*P)
            m_gemm.run(DType::F32, Trans::No, Trans::No, g.outChannels, cnt * p, kdim, 1.0f, w.data(), kdim,
                       col.data(), cnt * p, 0.0f, out.data(), cnt * p);
        else // per group i: out_i (K/G, cnt*P) = w_i (K/G, kdim) @ col_i (kdim, cnt*P)
            m_gemm.runStridedBatched(Trans::No, Trans::No, kg, cnt * p, kdim, 1.0f, w.ptr<float>(), kdim, kg * kdim,
                                     col.ptr<float>(), cnt * p, kdim * cnt * p, 0.0f, out.ptr<float>(), cnt * p,
                                     kg * cnt * p, g.groups);
        // (K, cnt, P) -> y[n0 .. n0+cnt) (cnt, K, P)
        launchPermute012To102(out.ptr<float>(), y.ptr<float>() + n0 * g.outChannels * p, g.outChannels, cnt, p,
                              stream());
    }
}

void CudaBackend::conv2dBackwardData(const Tensor& dy, const Tensor& w, Tensor& dx, const Conv2dGeometry& g) {
    begin(Op::Conv2dBackwardData, dy.dtype(), {&dy, &w, &dx});
    checkConv(g, dx, w, dy, "conv2d_backward_data", "dy");
    if (g.depthwise()) {
        launchDepthwiseBackwardData(dy.ptr<float>(), w.ptr<float>(), dx.ptr<float>(), g, stream());
        return;
    }
    const std::int64_t kdim = g.inPerGroup() * g.kernelH * g.kernelW, p = g.outH() * g.outW();
    const std::int64_t kg = g.outPerGroup(), nb = chunkImages(g);
    Tensor dyT = empty({g.outChannels, nb * p});  // (K, nb*OH*OW)
    Tensor col = empty({g.groups * kdim, nb * p}); // (C*KH*KW, nb*OH*OW)
    for (std::int64_t n0 = 0; n0 < g.batch; n0 += nb) {
        const std::int64_t cnt = std::min(nb, g.batch - n0);
        launchPermute012To102(dy.ptr<float>() + n0 * g.outChannels * p, dyT.ptr<float>(), cnt, g.outChannels, p,
                              stream());
        if (g.groups == 1) // col (CKK, cnt*P) = w^T (CKK, K) @ dyT (K, cnt*P)
            m_gemm.run(DType::F32, Trans::Yes, Trans::No, kdim, cnt * p, g.outChannels, 1.0f, w.data(), kdim,
                       dyT.data(), cnt * p, 0.0f, col.data(), cnt * p);
        else // per group i: col_i (kdim, cnt*P) = w_i^T (kdim, K/G) @ dyT_i (K/G, cnt*P)
            m_gemm.runStridedBatched(Trans::Yes, Trans::No, kdim, cnt * p, kg, 1.0f, w.ptr<float>(), kdim, kg * kdim,
                                     dyT.ptr<float>(), cnt * p, kg * cnt * p, 0.0f, col.ptr<float>(), cnt * p,
                                     kdim * cnt * p, g.groups);
        launchCol2im(col.ptr<float>(), dx.ptr<float>(), g, n0, cnt, stream());
    }
}

void CudaBackend::conv2dBackwardWeight(const Tensor& x, const Tensor& dy, Tensor& dw, const Conv2dGeometry& g,
                          bool accumulate) {
    begin(Op::Conv2dBackwardWeight, x.dtype(), {&x, &dy, &dw});
    checkConv(g, x, dw, dy, "conv2d_backward_weight", "dy", "dw");
    if (g.depthwise()) {
        launchDepthwiseBackwardWeight(x.ptr<float>(), dy.ptr<float>(), dw.ptr<float>(), g, accumulate, stream());
        return;
    }
    const std::int64_t kdim = g.inPerGroup() * g.kernelH * g.kernelW, p = g.outH() * g.outW();
    const std::int64_t kg = g.outPerGroup(), nb = chunkImages(g);
    Tensor dyT = empty({g.outChannels, nb * p});  // (K, nb*OH*OW)
    Tensor col = empty({g.groups * kdim, nb * p}); // (C*KH*KW, nb*OH*OW)
    if (g.batch == 0 && !accumulate) fill(dw, 0.0f);
    for (std::int64_t n0 = 0; n0 < g.batch; n0 += nb) {
        const std::int64_t cnt = std::min(nb, g.batch - n0);
        launchIm2col(x.ptr<float>(), col.ptr<float>(), g, n0, cnt, stream());
        launchPermute012To102(dy.ptr<float>() + n0 * g.outChannels * p, dyT.ptr<float>(), cnt, g.outChannels, p,
                              stream());
        const float beta = (accumulate || n0 > 0) ? 1.0f : 0.0f;
        if (g.groups == 1) // dw (K, CKK) (+)= dyT (K, cnt*P) @ col^T (cnt*P, CKK)
            m_gemm.run(DType::F32, Trans::No, Trans::Yes, g.outChannels, kdim, cnt * p, 1.0f, dyT.data(), cnt * p,
                       col.data(), cnt * p, beta, dw.data(), kdim);
        else // per group i: dw_i (K/G, kdim) (+)= dyT_i (K/G, cnt*P) @ col_i^T (cnt*P, kdim)
            m_gemm.runStridedBatched(Trans::No, Trans::Yes, kg, kdim, cnt * p, 1.0f, dyT.ptr<float>(), cnt * p,
                                     kg * cnt * p, col.ptr<float>(), cnt * p, kdim * cnt * p, beta, dw.ptr<float>(),
                                     kdim, kg * kdim, g.groups);
    }
}

void CudaBackend::maxPool2dForward(const Tensor& x, Tensor& y, Tensor& argmax, const Pool2dGeometry& g) {
    begin(Op::MaxPool2dForward, x.dtype(), {&x, &y, &argmax});
    checkPool(g, x, y, argmax, "maxpool2d_forward");
    launchMaxPool2dForward(x.ptr<float>(), y.ptr<float>(), argmax.ptr<std::int32_t>(), g, stream());
}

void CudaBackend::maxPool2dBackward(const Tensor& dy, const Tensor& argmax, Tensor& dx, const Pool2dGeometry& g) {
    begin(Op::MaxPool2dBackward, dy.dtype(), {&dy, &argmax, &dx});
    checkPool(g, dx, dy, argmax, "maxpool2d_backward");
    launchMaxPool2dBackward(dy.ptr<float>(), argmax.ptr<std::int32_t>(), dx.ptr<float>(), g, stream());
}

void CudaBackend::im2colRows(const Tensor& x, Tensor& cols, const Conv2dGeometry& g) {
    begin(Op::Im2colRows, x.dtype(), {&x, &cols});
    if (g.groups != 1) throw BackendError("im2col_rows: groups must be 1, got " + std::to_string(g.groups));
    checkConvGeometry(g, "im2col_rows");
    checkShape(x, {g.batch, g.inChannels, g.height, g.width}, DType::F32, "im2col_rows", "x");
    checkShape(cols, {g.batch * g.outH() * g.outW(), g.inChannels * g.kernelH * g.kernelW}, DType::F32,
               "im2col_rows", "cols");
    launchIm2colRows(x.ptr<float>(), cols.ptr<float>(), g, stream());
}

void CudaBackend::rowsToChannels(const Tensor& rows, Tensor& y, std::int64_t images) {
    begin(Op::RowsToChannels, rows.dtype(), {&rows, &y});
    if (rows.rank() != 2 || images < 1 || rows.dim(0) % images != 0)
        throw BackendError("rows_to_channels: rows " + rows.describe() + " is not (images * P, K) for " +
                           std::to_string(images) + " images");
    const std::int64_t k = rows.dim(1), p = rows.dim(0) / images;
    if (y.dtype() != DType::F32 || y.rank() < 2 || y.dim(0) != images || y.dim(1) != k || y.numel() != rows.numel())
        throw BackendError("rows_to_channels: y " + y.describe() + " is not (" + std::to_string(images) + ", " +
                           std::to_string(k) + ", " + std::to_string(p) + " positions)");
    launchRowsToChannels(rows.ptr<float>(), y.ptr<float>(), images, p, k, stream());
}

} // namespace lathe::cuda

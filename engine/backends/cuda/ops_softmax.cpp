// The CUDA backend's row-wise ops: softmax, softmax cross-entropy, distillation loss and argmax (softmax.cu, reduce.cu).
#include "engine/backends/cuda/cuda_backend_impl.h"
#include "engine/backends/cuda/cuda_kernels.h"

#include "engine/core/errors.h"

#include <cmath>

namespace lathe::cuda {

void CudaBackend::softmax(const Tensor& x, Tensor& y) {
    begin(Op::Softmax, x.dtype(), {&x, &y});
    checkSame("softmax", {&x, &y});
    checkRank(x, 2, "softmax", "x");
    launchSoftmax(x.data(), y.data(), x.dtype(), x.dim(0), x.dim(1), stream());
}

void CudaBackend::softmaxCrossEntropy(const Tensor& logits, const Tensor& labels, Tensor& losses, Tensor& dlogits,
                         float gradScale) {
    begin(Op::SoftmaxCrossEntropy, logits.dtype(), {&logits, &labels, &losses, &dlogits});
    checkRank(logits, 2, "softmax_cross_entropy", "logits");
    const std::int64_t rows = logits.dim(0), cols = logits.dim(1);
    checkShape(labels, {rows}, DType::I32, "softmax_cross_entropy", "labels");
    checkShape(losses, {rows}, DType::F32, "softmax_cross_entropy", "losses");
    checkShape(dlogits, logits.shape(), DType::F32, "softmax_cross_entropy", "dlogits");
    if (cols == 0 && rows > 0)
        throw BackendError("softmax_cross_entropy: logits " + logits.describe() + " has no classes (C = 0)");
    resetErrorFlag();
    launchSoftmaxCrossEntropy(logits.ptr<float>(), labels.ptr<std::int32_t>(), losses.ptr<float>(),
                              dlogits.ptr<float>(), rows, cols, gradScale, m_errorFlag, stream());
    throwIfFlagged([&](int row, int label) {
        return "softmax_cross_entropy: label " + std::to_string(label) + " at row " + std::to_string(row) +
               " is out of range [0, " + std::to_string(cols) + ") for " + logits.describe();
    });
}

void CudaBackend::distillationLoss(const Tensor& student, const Tensor& teacher, const Tensor& labels,
                                   float temperature, float alpha, Tensor& losses, Tensor& parts, Tensor& dstudent,
                                   float gradScale) {
    const char* op = "distillation_loss";
    begin(Op::DistillationLoss, student.dtype(), {&student, &teacher, &labels, &losses, &parts, &dstudent});
    checkRank(student, 2, op, "student");
    const std::int64_t rows = student.dim(0), cols = student.dim(1);
    checkShape(teacher, student.shape(), DType::F32, op, "teacher");
    checkShape(labels, {rows}, DType::I32, op, "labels");
    checkShape(losses, {rows}, DType::F32, op, "losses");
    checkShape(parts, {rows, 2}, DType::F32, op, "parts");
    checkShape(dstudent, student.shape(), DType::F32, op, "dstudent");
    if (cols == 0 && rows > 0)
        throw BackendError("distillation_loss: student " + student.describe() + " has no classes (C = 0)");
    if (!(temperature > 0.0f) || !std::isfinite(temperature))
        throw BackendError(name() + " distillation_loss: temperature " + std::to_string(temperature) + " is not > 0");
    if (!(alpha >= 0.0f && alpha <= 1.0f))
        throw BackendError(name() + " distillation_loss: alpha " + std::to_string(alpha) + " is outside [0, 1]");
    resetErrorFlag();
    launchDistillationLoss(student.ptr<float>(), teacher.ptr<float>(), labels.ptr<std::int32_t>(), losses.ptr<float>(),
                           parts.ptr<float>(), dstudent.ptr<float>(), rows, cols, temperature, alpha, gradScale,
                           m_errorFlag, stream());
    throwIfFlagged([&](int row, int label) {
        return "distillation_loss: label " + std::to_string(label) + " at row " + std::to_string(row) +
               " is out of range [0, " + std::to_string(cols) + ") for " + student.describe();
    });
}

void CudaBackend::argmaxRows(const Tensor& x, Tensor& out) {
    begin(Op::ArgmaxRows, x.dtype(), {&x, &out});
    checkRank(x, 2, "argmax_rows", "x");
    checkShape(out, {x.dim(0)}, DType::I32, "argmax_rows", "out");
    if (x.dim(1) == 0 && x.dim(0) > 0) throw BackendError("argmax_rows: x " + x.describe() + " has no columns");
    launchArgmaxRows(x.data(), x.dtype(), out.ptr<std::int32_t>(), x.dim(0), x.dim(1), stream());
}

} // namespace lathe::cuda

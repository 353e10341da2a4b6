// Central finite differences for the nn tests: forwards run in float on a backend, the scalar
// objective is accumulated in double on the host, and numeric gradients are compared with the
// analytic ones by normalized error.
#pragma once

#include "engine/backends/backend.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

namespace lathe::test {

// d objective / d t[i] for every element of t (F32 on be), by (f(t+eps) - f(t-eps)) / (2 eps).
// t is restored afterwards.
inline std::vector<float> numericGradient(Backend& be, Tensor& t, double eps, const std::function<double()>& objective) {
    std::vector<float> values = be.downloadF32(t);
    std::vector<float> grad(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
        const float orig = values[i];
        values[i] = orig + static_cast<float>(eps);
        be.copyFromHost(t, values.data());
        const double plus = objective();
        values[i] = orig - static_cast<float>(eps);
        be.copyFromHost(t, values.data());
        const double minus = objective();
        values[i] = orig;
        be.copyFromHost(t, values.data());
        grad[i] = static_cast<float>((plus - minus) / (2.0 * eps));
    }
    return grad;
}

// sum(y * r) in double: a random linear functional of a layer's output, whose gradient wrt y is r.
inline double dotDouble(const std::vector<float>& y, const std::vector<float>& r) {
    double s = 0;
    for (std::size_t i = 0; i < y.size(); ++i) s += static_cast<double>(y[i]) * r[i];
    return s;
}

} // namespace lathe::test

namespace lathe::test {

// Inside a whole model, ReLU and max-pool kinks cannot be kept away from every perturbed element: a
// step that crosses one gives a finite difference off by the size of the jump at that one element,
// while a wrong backward is wrong almost everywhere. So elements whose difference exceeds
// 2e-4 + 1% (twice the worst rounding noise of the eps = 1e-3 differences) are counted as outliers; a few are allowed, and the rest must agree closely.
struct GradComparison {
    double inlierError = 0; // normalized error over the non-outlier elements
    std::size_t outliers = 0;
    std::size_t count = 0;
};

inline GradComparison compareGradients(const std::vector<float>& analytic, const std::vector<float>& numeric) {
    GradComparison c;
    c.count = analytic.size();
    double num = 0, den = 0;
    for (std::size_t i = 0; i < analytic.size(); ++i) {
        const double a = analytic[i], n = numeric[i], d = a - n;
        if (std::abs(d) > 2e-4 + 0.01 * std::abs(a)) {
            ++c.outliers;
            continue;
        }
        num += d * d;
        den += a * a;
    }
    c.inlierError = std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
    return c;
}

} // namespace lathe::test

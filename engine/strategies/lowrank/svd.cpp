// The one place LAPACK is called: dgesdd (divide and conquer), whose Fortran symbol the linked OpenBLAS
// exports. Double precision, so the discarded energy of a float weight is known to far below its rounding.
#include "engine/strategies/lowrank/svd.h"

#include "engine/core/errors.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>

extern "C" {
// LAPACK's DGESDD with gfortran's hidden length of the character argument at the end.
void dgesdd_(const char* jobz, const int* m, const int* n, double* a, const int* lda, double* s, double* u,
             const int* ldu, double* vt, const int* ldvt, double* work, const int* lwork, int* iwork, int* info,
             std::size_t jobzLength);
}

namespace lathe::lowrank {

Svd thinSvd(const float* w, std::int64_t rows, std::int64_t cols) {
    if (rows < 1 || cols < 1 || rows > (1 << 30) || cols > (1 << 30) || rows * cols > (std::int64_t(1) << 31))
        throw BackendError("svd: a (" + std::to_string(rows) + ", " + std::to_string(cols) + ") matrix is out of range");
    Svd out;
    out.rows = rows;
    out.cols = cols;
    out.k = std::min(rows, cols);
    const int m = static_cast<int>(rows), n = static_cast<int>(cols), k = static_cast<int>(out.k);
    std::vector<double> a(static_cast<std::size_t>(rows * cols)); // (rows, cols) column-major
    for (std::int64_t i = 0; i < rows; ++i)
        for (std::int64_t j = 0; j < cols; ++j) a[static_cast<std::size_t>(i + j * rows)] = w[i * cols + j];
    out.u.resize(static_cast<std::size_t>(rows * out.k));
    out.s.resize(static_cast<std::size_t>(out.k));
    out.vt.resize(static_cast<std::size_t>(out.k * cols));
    std::vector<int> iwork(static_cast<std::size_t>(8 * out.k));
    const char jobz = 'S';
    int info = 0, lwork = -1;
    double query = 0;
    dgesdd_(&jobz, &m, &n, a.data(), &m, out.s.data(), out.u.data(), &m, out.vt.data(), &k, &query, &lwork,
            iwork.data(), &info, 1);
    if (info != 0) throw BackendError("svd: dgesdd workspace query failed (info " + std::to_string(info) + ")");
    lwork = static_cast<int>(query);
    std::vector<double> work(static_cast<std::size_t>(std::max(1, lwork)));
    dgesdd_(&jobz, &m, &n, a.data(), &m, out.s.data(), out.u.data(), &m, out.vt.data(), &k, work.data(), &lwork,
            iwork.data(), &info, 1);
    if (info != 0)
        throw BackendError("svd: dgesdd failed on a (" + std::to_string(rows) + ", " + std::to_string(cols) +
                           ") matrix (info " + std::to_string(info) + (info > 0 ? ": did not converge)" : ")"));
    return out;
}

std::int64_t rankForEnergy(const std::vector<double>& s, double energy) {
    // The total is the same running sum, in the same order, so energy 1 stops at the last non-zero value.
    double total = 0;
    for (const double v : s) total += v * v;
    double kept = 0;
    for (std::size_t r = 0; r < s.size(); ++r) {
        kept += s[r] * s[r];
        if (kept >= energy * total) return static_cast<std::int64_t>(r + 1);
    }
    return std::max<std::int64_t>(1, static_cast<std::int64_t>(s.size()));
}

double energyKept(const std::vector<double>& s, std::int64_t r) {
    double total = 0, kept = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        total += s[i] * s[i];
        if (static_cast<std::int64_t>(i) < r) kept += s[i] * s[i];
    }
    return total > 0 ? kept / total : 1.0;
}

double discardedNorm(const std::vector<double>& s, std::int64_t r) {
    double sum = 0;
    for (std::size_t i = static_cast<std::size_t>(std::max<std::int64_t>(0, r)); i < s.size(); ++i) sum += s[i] * s[i];
    return std::sqrt(sum);
}

Factors splitFactors(const Svd& svd, std::int64_t r) {
    if (r < 1 || r > svd.k)
        throw ConfigError("svd: rank " + std::to_string(r) + " is outside [1, " + std::to_string(svd.k) + "]");
    Factors f;
    f.first.resize(static_cast<std::size_t>(r * svd.cols));
    f.second.resize(static_cast<std::size_t>(svd.rows * r));
    for (std::int64_t p = 0; p < r; ++p) {
        const double root = std::sqrt(svd.s[static_cast<std::size_t>(p)]);
        for (std::int64_t j = 0; j < svd.cols; ++j)
            f.first[static_cast<std::size_t>(p * svd.cols + j)] =
                static_cast<float>(root * svd.vt[static_cast<std::size_t>(p + j * svd.k)]);
        for (std::int64_t i = 0; i < svd.rows; ++i)
            f.second[static_cast<std::size_t>(i * r + p)] =
                static_cast<float>(svd.u[static_cast<std::size_t>(i + p * svd.rows)] * root);
    }
    return f;
}

} // namespace lathe::lowrank

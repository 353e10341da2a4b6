// Truncated SVD of a Linear weight in double precision (LAPACK dgesdd from the linked OpenBLAS), the rank
// rules of lowrank.svd, and the two factors a rank-r Linear pair is built from.
#pragma once

#include <cstdint>
#include <vector>

namespace lathe::lowrank {

// W = U diag(s) V^T for a (rows, cols) matrix, thin: k = min(rows, cols).
struct Svd {
    std::int64_t rows = 0, cols = 0, k = 0;
    std::vector<double> u;  // (rows, k) column-major: u[i + p * rows]
    std::vector<double> s;  // (k) descending, >= 0
    std::vector<double> vt; // (k, cols) column-major: vt[p + j * k]
};

// The SVD of a row-major (rows, cols) float matrix, e.g. a Linear weight (out, in). Throws BackendError when
// LAPACK does not converge.
Svd thinSvd(const float* w, std::int64_t rows, std::int64_t cols);

// The smallest r whose sum of s[0..r)^2 reaches `energy` (in (0, 1]) of the sum of all s^2; at least 1.
std::int64_t rankForEnergy(const std::vector<double>& s, double energy);
// The fraction of sum s^2 the first r values hold (1 for a zero matrix).
double energyKept(const std::vector<double>& s, std::int64_t r);
// sqrt(sum of the discarded s^2): the Frobenius error of the rank-r truncation (Eckart-Young).
double discardedNorm(const std::vector<double>& s, std::int64_t r);

// The rank-r pair, row-major floats: first (r, cols) = diag(sqrt(s_r)) V_r^T, second (rows, r) =
// U_r diag(sqrt(s_r)), so that second * first is the truncation. Splitting sqrt(s) over both keeps their
// scales alike for later training.
struct Factors {
    std::vector<float> first;  // (r, cols)
    std::vector<float> second; // (rows, r)
};
Factors splitFactors(const Svd& svd, std::int64_t r);

} // namespace lathe::lowrank

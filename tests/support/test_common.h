// Shared helpers for every test, Qt-free so the mini-runner tests (tests/support/mini_test.h) build
// without Qt: seeded random inputs, normalized error, test data paths, and the "skipped" exit code (77).
#pragma once

#include "engine/backends/backend.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lathe::test {

constexpr int kSkipExitCode = 77;

// Uniform in [lo, hi) from a fixed seed; never all zeros.
std::vector<float> randomVector(std::size_t n, std::uint64_t seed, float lo = -1.0f, float hi = 1.0f);
std::vector<std::int32_t> randomLabels(std::size_t n, int classes, std::uint64_t seed);
// A (rows, cols) row-major weight with 0, 1 or 2 nonzeros (drawn) at drawn positions of every group of 4
// columns (a last, partial group included): what the 2:4 format holds. Nonzeros are in [-1, -0.05] or
// [0.05, 1], never zero.
std::vector<float> randomSparse24(std::int64_t rows, std::int64_t cols, std::uint64_t seed);

// ||a - b|| / max(||b||, tiny): the normalized error used against references.
double normalizedError(const std::vector<float>& a, const std::vector<float>& b);
double maxAbsDiff(const std::vector<float>& a, const std::vector<float>& b);

// tests/data (LATHE_TEST_DATA) and the source tree (LATHE_SOURCE_DIR).
std::string testDataPath(const std::string& relative);
std::string sourcePath(const std::string& relative);
// Runs fn and returns the message of the E it throws, "unexpected exception type: ..." for any other
// exception, or "no error": tests then check the message names the file and the problem.
template <class E, class Fn>
std::string errorOf(Fn fn) {
    try {
        fn();
    } catch (const E& e) {
        return e.what();
    } catch (const std::exception& e) {
        return std::string("unexpected exception type: ") + e.what();
    }
    return "no error";
}

// The whole file as bytes (empty when it cannot be read).
std::vector<std::uint8_t> fileBytes(const std::string& path);

// A fresh temporary directory for this process (removed at exit).
std::string tempDir();

// Whether the four Fashion-MNIST files are where the engine reads them (fashionMnistDir(), which
// LATHE_FASHION_MNIST_DIR moves); the reason for a skip when they are not.
bool haveFashionMnist();
std::string missingFashionMnistReason();

// The first CUDA backend, or nullptr with the reason.
std::shared_ptr<Backend> cudaBackendOrNull(std::string* reason = nullptr);

} // namespace lathe::test

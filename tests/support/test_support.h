// Shared helpers for the Qt Test suites: seeded random inputs, normalized error, test data paths,
// and the "skipped" exit code CTest understands (77) for suites that need a GPU or whose every test
// function skipped (e.g. no Fashion-MNIST).
#pragma once

#include "engine/backends/backend.h"

#include <QtTest>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace lathe::test {

constexpr int kSkipExitCode = 77;

// Uniform in [lo, hi) from a fixed seed; never all zeros.
std::vector<float> randomVector(std::size_t n, std::uint64_t seed, float lo = -1.0f, float hi = 1.0f);
std::vector<std::int32_t> randomLabels(std::size_t n, int classes, std::uint64_t seed);

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

// The first CUDA backend, or nullptr with the reason.
std::shared_ptr<Backend> cudaBackendOrNull(std::string* reason = nullptr);

// Whether the four Fashion-MNIST files are where the engine reads them (fashionMnistDir(), which
// LATHE_FASHION_MNIST_DIR moves); the reason for a skip when they are not.
bool haveFashionMnist();
std::string missingFashionMnistReason();

// QTest::qExec, then exit code 77 (CTest: skipped) when the suite passed but every test function
// in it skipped: a suite that tested nothing must not count as passed. Only when the command line
// chooses no output of its own (as under CTest); otherwise qExec's result unchanged.
int execSuite(QObject* suite, int argc, char** argv);

} // namespace lathe::test

// In a test function that needs Fashion-MNIST: skips it (not the suite) when the data is missing.
#define LATHE_REQUIRE_FASHION_MNIST()                                                                \
    do {                                                                                             \
        if (!lathe::test::haveFashionMnist())                                                        \
            QSKIP(lathe::test::missingFashionMnistReason().c_str());                                 \
    } while (false)

// QTEST_MAIN and QTEST_GUILESS_MAIN through execSuite.
#define LATHE_TEST_MAIN_WRAPPER(TestObject, ...)                                                     \
    int main(int argc, char* argv[]) {                                                               \
        QT_PREPEND_NAMESPACE(QTest::Internal::callInitMain)<TestObject>();                          \
        __VA_ARGS__                                                                                  \
        TestObject tc;                                                                               \
        QTEST_SET_MAIN_SOURCE_PATH                                                                   \
        return lathe::test::execSuite(&tc, argc, argv);                                              \
    }
#define LATHE_TEST_MAIN(TestObject) LATHE_TEST_MAIN_WRAPPER(TestObject, QTEST_MAIN_SETUP())
#define LATHE_TEST_GUILESS_MAIN(TestObject) LATHE_TEST_MAIN_WRAPPER(TestObject, QTEST_QAPP_SETUP(QCoreApplication))

// main() for suites that need a CUDA device: exits 77 (CTest "skipped") when there is none.
#define LATHE_GPU_TEST_MAIN(TestObject)                                                              \
    int main(int argc, char** argv) {                                                                \
        std::string reason;                                                                          \
        if (!lathe::test::cudaBackendOrNull(&reason)) {                                              \
            std::fprintf(stderr, "SKIPPED: no CUDA device: %s\n", reason.c_str());                   \
            return lathe::test::kSkipExitCode;                                                       \
        }                                                                                            \
        QCoreApplication app(argc, argv);                                                            \
        TestObject tc;                                                                               \
        QTEST_SET_MAIN_SOURCE_PATH                                                                   \
        return lathe::test::execSuite(&tc, argc, argv);                                              \
    }

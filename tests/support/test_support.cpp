// Implementation of the shared test helpers (tests/support/test_common.h), without Qt.
#include "tests/support/test_common.h"

#include "engine/backends/registry.h"
#include "engine/core/rng.h"
#include "engine/data/dataset.h"

#include <filesystem>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <cstdlib>
#include <filesystem>

namespace lathe::test {

std::vector<float> randomVector(std::size_t n, std::uint64_t seed, float lo, float hi) {
    Rng rng(seed);
    std::vector<float> v(n);
    for (auto& x : v) x = rng.uniform(lo, hi);
    return v;
}

std::vector<float> randomSparse24(std::int64_t rows, std::int64_t cols, std::uint64_t seed) {
    Rng rng(seed);
    std::vector<float> w(static_cast<std::size_t>(rows * cols), 0.0f);
    for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t g = 0; g < cols; g += 4) {
            const auto width = static_cast<std::uint64_t>(std::min<std::int64_t>(4, cols - g));
            const std::uint64_t kept = std::min<std::uint64_t>(width, rng.below(3)); // 0, 1 or 2
            for (std::uint64_t k = 0; k < kept; ++k) {
                const std::int64_t c = g + static_cast<std::int64_t>(rng.below(width)); // may repeat: fewer kept
                const float v = rng.uniform(0.05f, 1.0f);
                w[static_cast<std::size_t>(r * cols + c)] = rng.below(2) ? v : -v;
            }
        }
    return w;
}

std::vector<std::int32_t> randomLabels(std::size_t n, int classes, std::uint64_t seed) {
    Rng rng(seed);
    std::vector<std::int32_t> v(n);
    for (auto& x : v) x = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(classes)));
    return v;
}

double normalizedError(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return INFINITY;
    double num = 0, den = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (std::isnan(a[i]) != std::isnan(b[i])) return INFINITY;
        const double d = static_cast<double>(a[i]) - b[i];
        num += d * d;
        den += static_cast<double>(b[i]) * b[i];
    }
    return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

double maxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return INFINITY;
    double m = 0;
    for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(static_cast<double>(a[i]) - b[i]));
    return m;
}

std::string testDataPath(const std::string& relative) {
    const char* dir = std::getenv("LATHE_TEST_DATA");
    return std::string(dir ? dir : "tests/data") + "/" + relative;
}

std::string sourcePath(const std::string& relative) {
    const char* dir = std::getenv("LATHE_SOURCE_DIR");
    return std::string(dir ? dir : ".") + "/" + relative;
}

std::vector<std::uint8_t> fileBytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string tempDir() {
    // Created on first use under $TMPDIR, removed with everything in it when the process exits.
    struct Dir {
        std::string path;
        Dir() {
            std::string pattern = (std::filesystem::temp_directory_path() / "lathe-test-XXXXXX").string();
            if (::mkdtemp(pattern.data())) path = pattern;
        }
        ~Dir() {
            std::error_code ec;
            if (!path.empty()) std::filesystem::remove_all(path, ec);
        }
    };
    static Dir dir;
    return dir.path;
}

std::shared_ptr<Backend> cudaBackendOrNull(std::string* reason) {
    try {
        return backendFor("cuda");
    } catch (const std::exception& e) {
        if (reason) *reason = e.what();
        return nullptr;
    }
}

bool haveFashionMnist() {
    const std::string dir = fashionMnistDir();
    for (const char* stem : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                             "t10k-labels-idx1-ubyte"}) {
        std::error_code ec;
        const std::string base = dir + "/" + stem;
        if (!std::filesystem::is_regular_file(base + ".gz", ec) && !std::filesystem::is_regular_file(base, ec))
            return false;
    }
    return true;
}

std::string missingFashionMnistReason() {
    return "Fashion-MNIST is not in " + fashionMnistDir() +
           " (Debian package dataset-fashion-mnist, or LATHE_FASHION_MNIST_DIR)";
}

} // namespace lathe::test

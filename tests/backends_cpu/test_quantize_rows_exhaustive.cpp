// quantize_rows' rounding on every float: with the scale 1 the quotient is the value itself, so running every one
// of the 2^32 bit patterns through each int8 path of this CPU checks the clamp, the rounding of halves away from
// zero, NaN and the infinities for every quotient the division can produce, against std::round. Qt-free; label
// slow (about ten seconds a path).
#include "engine/backends/cpu/cpu_backend.h"
#include "tests/support/mini_test.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

using namespace lathe;

namespace {

std::int8_t reference(float q) {
    if (std::isnan(q)) return 0;
    return static_cast<std::int8_t>(std::clamp(std::round(q), -127.0f, 127.0f));
}

} // namespace

TEST_CASE(everyFloatOnEveryPath) {
    auto be = makeCpuBackend(2);
    constexpr std::int64_t rows = 1024, cols = 4096, chunk = rows * cols; // 2^22 values a call
    std::vector<std::uint32_t> bits(static_cast<std::size_t>(chunk));
    int paths = 0;
    for (CpuInt8Path path : {CpuInt8Path::Avx2, CpuInt8Path::Avx512Vnni}) {
        if (!cpuInt8PathAvailable(path)) continue;
        ++paths;
        setCpuInt8Path(*be, path);
        Tensor x = be->empty({rows, cols});
        Tensor q = be->empty({rows, cols}, DType::I8);
        Tensor scale = be->upload(std::vector<float>{1.0f}, {1});
        std::uint64_t wrong = 0;
        std::string first;
        for (std::uint64_t start = 0; start < (std::uint64_t(1) << 32); start += chunk) {
            for (std::int64_t i = 0; i < chunk; ++i)
                bits[static_cast<std::size_t>(i)] = static_cast<std::uint32_t>(start + i);
            be->copyFromHost(x, bits.data());
            be->quantizeRows(x, q, scale, false);
            const auto* codes = q.ptr<const std::int8_t>();
            const auto* values = x.ptr<const float>();
            for (std::int64_t i = 0; i < chunk; ++i)
                if (codes[i] != reference(values[i]) && wrong++ == 0)
                    first = "bits " + std::to_string(start + i) + " (" + std::to_string(values[i]) + ") -> " +
                            std::to_string(int(codes[i])) + ", expected " + std::to_string(int(reference(values[i])));
        }
        CHECK_MSG(wrong == 0, std::string(cpuInt8PathName(path)) + ": " + std::to_string(wrong) +
                                  " codes differ, first " + first);
    }
    if (paths == 0) SKIP("this CPU has neither the AVX2 nor the AVX-512 int8 path");
}

MINI_TEST_MAIN()

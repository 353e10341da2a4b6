// Every float through the f16 and bf16 rows of the traits table (fromFloat), on every instruction-set path of this
// CPU, against the scalar floatToHalf / floatToBf16: the vector paths must give the same bits for all 2^32 inputs
// (rounding to nearest even, overflow to infinity, subnormal results, NaNs). Qt-free; label slow (about half a
// minute).
#include "engine/core/dtype.h"
#include "tests/support/mini_test.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

using namespace lathe;

TEST_CASE(everyFloatOnEveryPath) {
    const HalfRowPath was = halfRowPath();
    std::vector<HalfRowPath> paths;
    for (HalfRowPath path : {HalfRowPath::Avx2, HalfRowPath::Avx512})
        if (halfRowPathAvailable(path)) paths.push_back(path);
    if (paths.empty()) SKIP("this CPU has no vector path for the f16 / bf16 rows");
    constexpr std::size_t chunk = std::size_t(1) << 22;
    std::vector<float> values(chunk);
    std::vector<std::uint16_t> wantF16(chunk), wantBf16(chunk), got(chunk);
    std::vector<std::uint64_t> wrong(paths.size() * 2, 0);
    std::vector<std::string> first(paths.size() * 2);
    for (std::uint64_t start = 0; start < (std::uint64_t(1) << 32); start += chunk) {
        for (std::size_t i = 0; i < chunk; ++i) {
            const auto bits = static_cast<std::uint32_t>(start + i);
            std::memcpy(&values[i], &bits, 4);
            wantF16[i] = floatToHalf(values[i]);
            wantBf16[i] = floatToBf16(values[i]);
        }
        for (std::size_t p = 0; p < paths.size(); ++p) {
            setHalfRowPath(paths[p]);
            for (int f = 0; f < 2; ++f) {
                traits(f == 0 ? DType::F16 : DType::BF16).fromFloat(values.data(), got.data(), chunk);
                const auto& want = f == 0 ? wantF16 : wantBf16;
                for (std::size_t i = 0; i < chunk; ++i)
                    if (got[i] != want[i] && wrong[p * 2 + f]++ == 0)
                        first[p * 2 + f] = "bits " + std::to_string(start + i) + " -> " + std::to_string(got[i]) +
                                           ", expected " + std::to_string(want[i]);
            }
        }
    }
    setHalfRowPath(was);
    for (std::size_t p = 0; p < paths.size(); ++p)
        for (int f = 0; f < 2; ++f)
            CHECK_MSG(wrong[p * 2 + f] == 0, std::string(halfRowPathName(paths[p])) + (f == 0 ? " f16: " : " bf16: ") +
                                                 std::to_string(wrong[p * 2 + f]) + " codes differ, first " +
                                                 first[p * 2 + f]);
}

MINI_TEST_MAIN()

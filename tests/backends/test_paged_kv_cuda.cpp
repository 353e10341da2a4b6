// Paged attention equals contiguous attention on the CUDA backend (issue 15): the CPU test's check
// (tests/nn/paged_kv_check.h) with the blocks, the gather and the attention on the device; skipped (77) without one.
#include "tests/nn/paged_kv_check.h"
#include "tests/support/mini_test.h"
#include "tests/support/test_common.h"

using namespace lathe;

TEST_CASE(pagedAttentionEqualsContiguousOnCuda) {
    std::string reason;
    auto cuda = test::cudaBackendOrNull(&reason);
    if (!cuda) SKIP("no CUDA device: " + reason);
    // The same bounds as on the CPU (test_paged_kv): F32 blocks to rounding, F16, Q8_0 and FP8 within their
    // formats' error (the blocks written and read by convert.cu's kernels).
    const double f32 = test::pagedVersusContiguous(*cuda, DType::F32);
    CHECK_MSG(f32 < 1e-5, std::to_string(f32));
    const double f16 = test::pagedVersusContiguous(*cuda, DType::F16);
    CHECK_MSG(f16 < 5e-3, std::to_string(f16));
    const double q8 = test::pagedVersusContiguous(*cuda, DType::Q8_0);
    CHECK_MSG(q8 < 0.05, std::to_string(q8));
    const double f8 = test::pagedVersusContiguous(*cuda, DType::F8E4M3);
    CHECK_MSG(f8 < 0.15, std::to_string(f8));
}

MINI_TEST_MAIN()

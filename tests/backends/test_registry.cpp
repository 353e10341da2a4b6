// The backend registry on any machine: the CPU is always there, the CUDA entry is either a usable
// device or says why not, "auto" falls back to the CPU, and asking for a missing CUDA device is a
// BackendError carrying the runtime's reason. Nothing here may crash on a machine without a driver.
// Qt-free (tests/support/mini_test.h): it also runs on GPU servers built with the headless preset.
#include "engine/backends/cuda_module.h"
#include "engine/backends/registry.h"
#include "engine/core/errors.h"
#include "tests/support/mini_test.h"
#include "tests/support/test_common.h"

#include <cstdlib>
#include <filesystem>

using namespace lathe;

namespace {

const BackendEntry* cudaEntry(const std::vector<BackendEntry>& entries) {
    for (const auto& e : entries)
        if (e.info.backend == "cuda") return &e;
    return nullptr;
}

} // namespace

TEST_CASE(cpuIsAlwaysAvailable) {
    const auto entries = probeBackends();
    REQUIRE(!entries.empty());
    CHECK_EQ(entries.front().info.backend, std::string("cpu"));
    CHECK(entries.front().info.available);
    CHECK(entries.front().info.threads > 0);
}

TEST_CASE(cudaEntryIsUsableOrSaysWhy) {
    const auto entries = probeBackends();
    const BackendEntry* cuda = cudaEntry(entries);
    REQUIRE_MSG(cuda, "the registry lists no cuda entry at all");
    if (cuda->info.available) {
        CHECK(!cuda->info.name.empty());
        CHECK(cuda->info.memoryTotalBytes > 0);
        CHECK(cuda->info.computeCapabilityMajor > 0);
    } else {
        CHECK_MSG(!cuda->info.reason.empty(), "an unavailable cuda entry must say why");
        std::printf("  cuda unavailable: %s\n", cuda->info.reason.c_str());
    }
}

// In a build with the CUDA module and the toolkit's libraries on the loader path, the module loads:
// an unavailable CUDA is then the runtime's answer (no driver, no device), never a loader error.
TEST_CASE(cudaModuleLoadsWhereItWasBuilt) {
#if !defined(LATHE_TEST_CUDA_MODULE)
    SKIP("this build has no CUDA module (LATHE_CUDA=OFF)");
#endif
    if (std::getenv("LATHE_BACKEND_PATH")) SKIP("LATHE_BACKEND_PATH is set: the module may be elsewhere");
    std::string reason;
    const CudaModuleApi* module = cudaModule(reason);
    REQUIRE_MSG(module, "the CUDA module did not load: " + reason);
    CHECK_EQ(module->abiVersion, kCudaModuleAbiVersion);
    const auto entries = probeBackends();
    const BackendEntry* cuda = cudaEntry(entries);
    REQUIRE(cuda);
    if (!cuda->info.available) {
        CHECK_MSG(cuda->info.reason.find("could not be loaded") == std::string::npos, cuda->info.reason);
        CHECK_MSG(cuda->info.reason.find("no CUDA module") == std::string::npos, cuda->info.reason);
    }
}

TEST_CASE(autoPicksCudaOnlyWhenPresent) {
    const auto entries = probeBackends();
    const BackendEntry* cuda = cudaEntry(entries);
    REQUIRE(cuda);
    auto be = backendFor("auto");
    REQUIRE(be);
    if (cuda->info.available)
        CHECK(be->device().kind == DeviceKind::Cuda);
    else
        CHECK_EQ(be->name(), std::string("cpu"));
    CHECK(backendFor("cpu").get() == cpuBackend().get());
}

TEST_CASE(missingCudaThrowsWithTheReason) {
    const auto entries = probeBackends();
    const BackendEntry* cuda = cudaEntry(entries);
    REQUIRE(cuda);
    if (cuda->info.available) SKIP("a CUDA device is present: nothing is missing");
    for (const std::string device : {"cuda", "cuda:0"}) {
        ROW(device);
        try {
            backendFor(device);
            FAIL("backendFor did not throw for a missing CUDA device");
        } catch (const BackendError& e) {
            const std::string msg = e.what();
            CHECK_MSG(msg.find(cuda->info.reason) != std::string::npos, msg);
            CHECK_MSG(msg.find(device) != std::string::npos, msg);
        }
    }
}

TEST_CASE(badNamesAreConfigErrors) {
    const auto entries = probeBackends();
    const BackendEntry* cuda = cudaEntry(entries);
    REQUIRE(cuda);
    for (const std::string device : {"tpu", "cuda:", "cuda:x"}) {
        ROW(device);
        // With no CUDA device "cuda:" names fail on availability first; either way it is an engine error.
        if (device == "tpu" || cuda->info.available)
            CHECK_THROWS_AS(backendFor(device), ConfigError);
        else
            CHECK_THROWS_AS(backendFor(device), Error);
    }
}

TEST_CASE(probingRepeatedlyIsStable) {
    // The runtime caches its initialisation failure; probing again must give the same answer.
    const auto a = probeBackends();
    const auto b = probeBackends();
    REQUIRE(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        CHECK_EQ(a[i].info.available, b[i].info.available);
        CHECK_EQ(a[i].info.reason, b[i].info.reason);
    }
}

TEST_CASE(cpuBackendWorksWithoutAGpu) {
    // The CPU path end to end: upload, an op, download.
    auto be = backendFor("auto");
    auto cpu = cpuBackend();
    const auto values = test::randomVector(12, 7);
    Tensor x = cpu->upload(values, {3, 4});
    Tensor y = cpu->empty({3, 4});
    cpu->relu(x, y);
    const auto out = cpu->downloadF32(y);
    REQUIRE(out.size() == values.size());
    for (std::size_t i = 0; i < values.size(); ++i) CHECK_EQ(out[i], values[i] > 0 ? values[i] : 0.0f);
    CHECK(be != nullptr);
}

MINI_TEST_MAIN()

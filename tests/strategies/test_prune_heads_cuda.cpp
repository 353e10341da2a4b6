// prune.heads on a CUDA device: the pruned model (heads differing per layer) equals the original with those heads'
// gates at 0, its logits and KV-cached generation agree with the CPU's, and both scores (entropy through the
// attention op with V := K, the gate gradient through biasAdd, mul and biasGrad) agree with the CPU's. Qt-free;
// skipped (77) without a device.
#include "engine/backends/registry.h"
#include "engine/measure/latency.h"
#include "engine/nn/generate.h"
#include "engine/nn/model_edit.h"
#include "engine/strategies/prune/head_importance.h"
#include "tests/strategies/head_models.h"
#include "tests/support/mini_test.h"
#include "tests/support/test_common.h"

#include <algorithm>
#include <cmath>
#include <numeric>

using namespace lathe;
using namespace lathe::prune;

namespace {

std::vector<float> logitsOn(Backend& be, Model& m, const Dataset& data) {
    std::vector<std::int64_t> idx(4);
    std::iota(idx.begin(), idx.end(), 0);
    return be.downloadF32(m.forward(uploadInputs(be, m, data, idx), ForwardContext{}));
}

double relDiff(const std::vector<float>& a, const std::vector<float>& b) {
    double largest = 0, diff = 0;
    for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
        largest = std::max(largest, std::fabs(double(a[i])));
        diff = std::max(diff, std::fabs(double(a[i]) - double(b[i])));
    }
    return largest > 0 ? diff / largest : diff;
}

std::unique_ptr<Model> scaledModel(Backend& be) {
    auto m = Model::fromArchitecture(test::headTestGpt(true, true));
    m->initialize(*cpuBackend(), 3);
    m->to(*cpuBackend());
    for (const auto& np : m->namedParameters())
        if (np.param->value.rank() == 2 && np.name.find("layers.0.") != 0) cpuBackend()->scale(np.param->value, 3.0f);
    m->to(be);
    return m;
}

// The CUDA backend, or the case is skipped.
std::shared_ptr<Backend> cudaOrSkip() {
    std::string reason;
    auto cuda = test::cudaBackendOrNull(&reason);
    if (!cuda) SKIP("no CUDA device: " + reason);
    return cuda;
}

// cuBLAS may sum in another order (and the fused attention kernel uses an online softmax): f32 results agree with
// the CPU's to ~1e-5 relative; 1e-3 leaves room for TF32 GEMMs where the library picks them.
constexpr double kDeviceTol = 1e-3;

} // namespace

TEST_CASE(prunedEqualsZeroedHeadsOnCuda) {
    auto cuda = cudaOrSkip();
    const Dataset data = test::headTestTokens(4, 16, 9);
    auto m = scaledModel(*cuda);
    auto ref = scaledModel(*cpuBackend());
    const auto sites = attentionSites(*m);
    REQUIRE(sites.size() == 2);
    std::vector<float> gated;
    {
        HeadGates gates(*m, sites);
        const std::vector<float> zero13 = {1, 0, 1, 0}, zero0 = {0, 1, 1, 1};
        cuda->copyFromHost(gates.gate(0).value, zero13.data());
        cuda->copyFromHost(gates.gate(1).value, zero0.data());
        gated = logitsOn(*cuda, *m, data);
    }
    for (Model* model : {m.get(), ref.get()}) {
        ModelEditor editor(*model);
        editor.pruneAttentionHeads(sites[0].path, {0, 2});
        editor.pruneAttentionHeads(sites[1].path, {1, 2, 3});
    }
    const std::vector<float> pruned = logitsOn(*cuda, *m, data);
    CHECK_MSG(relDiff(gated, pruned) < kDeviceTol, std::to_string(relDiff(gated, pruned)));
    const std::vector<float> cpu = logitsOn(*cpuBackend(), *ref, data);
    CHECK_MSG(relDiff(cpu, pruned) < kDeviceTol, std::to_string(relDiff(cpu, pruned)));

    GenerateOptions go;
    go.maxNewTokens = 8;
    const auto cached = generate(*m, bytesToTokens("ab"), go);
    go.useKvCache = false;
    const auto uncached = generate(*m, bytesToTokens("ab"), go);
    CHECK(cached.tokens == uncached.tokens);
}

TEST_CASE(scoresAgreeWithTheCpu) {
    auto cuda = cudaOrSkip();
    const Dataset data = test::headTestTokens(6, 16, 21);
    auto m = scaledModel(*cuda);
    auto ref = scaledModel(*cpuBackend());
    const auto sites = attentionSites(*m);
    const auto entGpu = headEntropy(*m, *cuda, sites, {data, 3});
    const auto entCpu = headEntropy(*ref, *cpuBackend(), sites, {data, 3});
    const auto gradGpu = headGateGradients(*m, *cuda, sites, {data, 3});
    const auto gradCpu = headGateGradients(*ref, *cpuBackend(), sites, {data, 3});
    double largest = 0;
    for (const auto& l : gradCpu.grad)
        for (double g : l) largest = std::max(largest, std::fabs(g));
    for (std::size_t i = 0; i < sites.size(); ++i)
        for (std::size_t h = 0; h < 4; ++h) {
            CHECK_MSG(std::fabs(entGpu[i][h] - entCpu[i][h]) < 1e-3,
                      std::to_string(entGpu[i][h]) + " vs " + std::to_string(entCpu[i][h]));
            CHECK_MSG(std::fabs(gradGpu.grad[i][h] - gradCpu.grad[i][h]) < 1e-2 * largest,
                      std::to_string(gradGpu.grad[i][h]) + " vs " + std::to_string(gradCpu.grad[i][h]));
        }
    CHECK(std::fabs(gradGpu.loss - gradCpu.loss) < 1e-3);
}

MINI_TEST_MAIN()

// Serving's model instances on a CUDA device (issue 12): with several instances the executor gives each a backend
// of its own (Backend::makeInstance: a stream and cuBLAS handles each) sharing the model's weights. Each instance's
// logits agree with the model's own backend; batches executed from several threads at once give the answers one
// instance gives; and the real-time driver keeps every instance busy. Qt-free; skipped (77) without a device.
#include "engine/backends/registry.h"
#include "engine/core/rng.h"
#include "engine/io/zoo.h"
#include "engine/nn/model.h"
#include "engine/strategies/serve/executor.h"
#include "engine/strategies/serve/realtime.h"
#include "tests/support/mini_test.h"
#include "tests/support/test_common.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <thread>

using namespace lathe;
using namespace lathe::serve;

namespace {

std::shared_ptr<Backend> cudaOrSkip() {
    std::string reason;
    auto cuda = test::cudaBackendOrNull(&reason);
    if (!cuda) SKIP("no CUDA device: " + reason);
    return cuda;
}

// 512 random images of Fashion-MNIST's shape with random labels (the GPU host need not hold the dataset).
Dataset randomImages() {
    Dataset d;
    d.name = "random/test";
    d.sampleShape = {1, 28, 28};
    d.numClasses = 10;
    Rng rng(12);
    d.pixels.resize(512 * 784);
    for (auto& p : d.pixels) p = static_cast<std::uint8_t>(rng.below(256));
    d.labels.resize(512);
    for (auto& l : d.labels) l = static_cast<std::int32_t>(rng.below(10));
    return d;
}

std::unique_ptr<Model> mlpOn(Backend& be) {
    auto m = Model::fromArchitecture(zooArchitecture("mlp-784-256-128-10"));
    m->initialize(be, 7);
    return m;
}

// Batches of 1..64 one-sample requests covering the split.
std::vector<std::vector<ServeRequest>> batches() {
    std::vector<std::vector<ServeRequest>> out;
    std::int64_t id = 0;
    for (int b = 0; b < 48; ++b) {
        std::vector<ServeRequest> batch;
        for (int j = 0; j < 1 + (b * 7) % 64; ++j) {
            ServeRequest r;
            r.id = id++;
            r.samples = 1;
            batch.push_back(r);
        }
        out.push_back(std::move(batch));
    }
    return out;
}

} // namespace

TEST_CASE(instancesHaveBackendsOfTheirOwn) {
    auto cuda = cudaOrSkip();
    auto model = mlpOn(*cuda);
    const Dataset data = randomImages();
    ModelExecutor one(*model, *cuda, data, 1), three(*model, *cuda, data, 3);
    CHECK(!one.concurrent());
    CHECK(three.concurrent());
    CHECK_EQ(three.instanceBackends(), std::size_t(3));
    // The same inputs through an instance backend and through the model's own: the same logits up to the GEMMs'
    // summation order (each backend plans its own cuBLAS algorithms).
    auto instance = cuda->makeInstance();
    REQUIRE(instance != nullptr);
    CHECK(instance.get() != cuda.get());
    std::vector<float> x(16 * 784);
    Rng rng(3);
    for (auto& v : x) v = static_cast<float>(rng.uniform()) * 2.0f - 1.0f;
    const auto own = cuda->downloadF32(model->forward(cuda->upload(x, {16, 1, 28, 28}), ForwardContext{}));
    const auto other =
        instance->downloadF32(model->forward(*instance, instance->upload(x, {16, 1, 28, 28}), ForwardContext{}));
    double largest = 0, diff = 0;
    for (std::size_t i = 0; i < own.size(); ++i) {
        largest = std::max(largest, std::fabs(double(own[i])));
        diff = std::max(diff, std::fabs(double(own[i]) - double(other[i])));
    }
    CHECK_MSG(diff <= 1e-5 * largest, std::to_string(diff) + " against " + std::to_string(largest));
}

// Three threads, one per instance, each running every batch: the answers of one instance, every time.
TEST_CASE(concurrentBatchesAnswerAsOne) {
    auto cuda = cudaOrSkip();
    auto model = mlpOn(*cuda);
    const Dataset data = randomImages();
    const auto work = batches();
    ModelExecutor one(*model, *cuda, data, 1);
    std::vector<std::vector<int>> expected;
    for (const auto& b : work) expected.push_back(one.run(0, b));
    ModelExecutor three(*model, *cuda, data, 3);
    std::vector<int> mismatches(3, 0);
    std::vector<std::thread> threads;
    for (int i = 0; i < 3; ++i)
        threads.emplace_back([&, i] {
            for (int round = 0; round < 4; ++round)
                for (std::size_t b = 0; b < work.size(); ++b)
                    if (three.run(i, work[b]) != expected[b]) ++mismatches[static_cast<std::size_t>(i)];
        });
    for (auto& t : threads) t.join();
    for (int i = 0; i < 3; ++i) CHECK_EQ(mismatches[static_cast<std::size_t>(i)], 0);
}

// The real-time driver over three instances: every request answered once, and more than one instance used.
TEST_CASE(realtimeUsesEveryInstance) {
    auto cuda = cudaOrSkip();
    auto model = mlpOn(*cuda);
    const Dataset data = randomImages();
    ModelExecutor three(*model, *cuda, data, 3);
    Workload w;
    w.closedLoop = true;
    w.clients = 12;
    w.requests = 600;
    const PolicySettings staticFour{PolicyKind::Static, 4, 0, {}};
    const ServeLog log = runRealtime(w, staticFour, {3, 1000, 1},
                                     [&](int instance, const std::vector<ServeRequest>& r) {
                                         return three.run(instance, r);
                                     });
    CHECK(!log.cancelled);
    CHECK_EQ(log.requests.size(), std::size_t(600));
    std::set<std::int64_t> ids;
    std::set<int> used;
    for (const auto& r : log.requests) {
        ids.insert(r.request.id);
        used.insert(r.instance);
    }
    CHECK_EQ(ids.size(), std::size_t(600));
    CHECK_MSG(used.size() >= 2, "instances used: " + std::to_string(used.size()));
}

MINI_TEST_MAIN()

// End to end on the GPU: the zoo MLP and the depthwise-separable cnn-dws trained on CUDA follow the CPU's
// loss curve step by step from the same initial weights and batches, and the zoo CNNs' forward passes
// (conv, grouped conv, pool, dropout, linear) agree with the CPU's, on a synthetic 10-class image set; one case
// trains a whole epoch on Fashion-MNIST (skipped where the dataset is not installed). Needs a CUDA device;
// Qt-free (tests/support/mini_test.h) so it runs on GPU servers built with the headless preset.
#include "engine/backends/registry.h"
#include "engine/data/dataset.h"
#include "engine/core/rng.h"
#include "engine/nn/model.h"
#include "engine/nn/trainer.h"
#include "engine/io/zoo.h"
#include "tests/support/mini_test.h"
#include "tests/support/test_common.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>

using namespace lathe;

namespace {

// 10 classes, each a random 28x28 prototype; samples are the prototype plus noise, so a small
// network separates them within a few dozen steps.
Dataset syntheticImages(std::int64_t n, std::uint64_t seed) {
    Dataset d;
    d.name = "synthetic/" + std::to_string(seed);
    d.sampleShape = {1, 28, 28};
    d.numClasses = 10;
    for (int c = 0; c < 10; ++c) d.classNames.push_back("class " + std::to_string(c));
    Rng protoRng(1234); // prototypes shared by every split
    std::vector<std::uint8_t> protos(10 * 784);
    for (auto& p : protos) p = static_cast<std::uint8_t>(protoRng.below(256));
    Rng rng(seed);
    d.pixels.resize(static_cast<std::size_t>(n) * 784);
    d.labels.resize(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
        const int c = static_cast<int>(rng.below(10));
        d.labels[static_cast<std::size_t>(i)] = c;
        for (int k = 0; k < 784; ++k) {
            const float v = protos[static_cast<std::size_t>(c * 784 + k)] + rng.uniform(-90.0f, 90.0f);
            d.pixels[static_cast<std::size_t>(i * 784 + k)] = static_cast<std::uint8_t>(std::clamp(v, 0.0f, 255.0f));
        }
    }
    return d;
}

// SGD is Lipschitz in the gradient, so the f32 rounding differences between the backends (about 1e-6
// relative per op) grow slowly over the run; a wrong kernel moves the loss by more than 1e-2 within a
// few steps. 1e-3 relative per step separates the two with margin on both sides.
constexpr double kLossRelTol = 1e-3;
// Once the network is confident the loss per sample is -log p = lse(x) - x_label, a difference of two numbers
// near |x_label| (about 10 here): f32 cancellation leaves an absolute error of a few eps * 10 = 1e-6 per sample
// whatever the backend, which is far more than 1e-3 of a loss of 1e-5 (measured on an H200: losses of 5e-6 to
// 4e-5 from step 30 on, the same to the printed digits). Below the floor the relative test says nothing.
constexpr double kLossAbsTol = 1e-5;

// |got - want| within kLossRelTol of want, or within the absolute floor of a near-zero loss.
bool lossesAgree(double got, double want) {
    return std::abs(got - want) <= std::max(kLossRelTol * std::abs(want), kLossAbsTol);
}

struct Backends {
    std::shared_ptr<Backend> cuda;
    std::shared_ptr<Backend> cpu;
};

// Both backends, or the case is skipped (exit 77 when every case is) with the registry's reason.
Backends backendsOrSkip() {
    std::string reason;
    auto cuda = test::cudaBackendOrNull(&reason);
    if (!cuda) SKIP("no CUDA device: " + reason);
    return {cuda, cpuBackend()};
}

std::vector<double> trainLosses(Backend& be, Model& model, const Dataset& data, std::int64_t maxSteps = 40) {
    TrainParams p;
    p.epochs = 5;
    p.batchSize = 64;
    p.optimizer = "sgd";
    p.lr = 0.05f;
    p.momentum = 0.9f;
    p.seed = 7;
    p.maxSteps = maxSteps;
    p.logInterval = 1; // the loss of every step
    std::vector<double> losses;
    TrainCallbacks cb;
    cb.onStep = [&](const StepReport& r) { losses.push_back(r.loss); };
    train(model, be, data, p, cb);
    return losses;
}

} // namespace

TEST_CASE(mlpTrainsLikeTheCpu) {
    const auto [cuda, cpu] = backendsOrSkip();
    const Dataset trainSet = syntheticImages(640, 1);
    const Dataset testSet = syntheticImages(256, 2);
    auto cpuModel = Model::fromArchitecture(zooArchitecture("mlp-784-256-128-10"));
    auto gpuModel = Model::fromArchitecture(zooArchitecture("mlp-784-256-128-10"));
    cpuModel->initialize(*cpu, 42);
    gpuModel->initialize(*cuda, 42);

    const auto cpuLoss = trainLosses(*cpu, *cpuModel, trainSet);
    const auto gpuLoss = trainLosses(*cuda, *gpuModel, trainSet);
    REQUIRE(gpuLoss.size() == cpuLoss.size());
    REQUIRE(cpuLoss.size() >= 30);
    for (std::size_t i = 0; i < cpuLoss.size(); ++i) {
        CHECK_MSG(lossesAgree(gpuLoss[i], cpuLoss[i]), "step " + std::to_string(i + 1) + ": cuda loss " +
                                                           std::to_string(gpuLoss[i]) + ", cpu loss " +
                                                           std::to_string(cpuLoss[i]));
    }
    // It actually learned: the loss fell well below its starting value (ln 10 = 2.30).
    CHECK_MSG(gpuLoss.back() < 0.5 * gpuLoss.front(),
              "loss went from " + std::to_string(gpuLoss.front()) + " to " + std::to_string(gpuLoss.back()));

    const EvalResult cpuEval = evaluate(*cpuModel, *cpu, testSet);
    const EvalResult gpuEval = evaluate(*gpuModel, *cuda, testSet);
    CHECK_EQ(gpuEval.count, cpuEval.count);
    CHECK_MSG(lossesAgree(gpuEval.loss, cpuEval.loss),
              "eval loss cuda " + std::to_string(gpuEval.loss) + " vs cpu " + std::to_string(cpuEval.loss));
    // At most one borderline sample may flip between backends.
    CHECK(std::abs(gpuEval.accuracy - cpuEval.accuracy) <= 1.0 / static_cast<double>(cpuEval.count) + 1e-12);
    CHECK_MSG(gpuEval.accuracy > 0.5, std::to_string(gpuEval.accuracy));
}

// One whole epoch of the zoo MLP on Fashion-MNIST (60,000 images, 469 steps of Adam at batch 128), CPU and CUDA
// from the same weights and batch order: the first steps follow the CPU's losses as closely as above; over the
// epoch the two drift apart only by rounding (different summation orders), so the epoch's mean loss and the test
// accuracy stay within a fraction of a percent.
TEST_CASE(mlpEpochOnFashionMnistMatchesCpu) {
    const auto [cuda, cpu] = backendsOrSkip();
    if (!test::haveFashionMnist()) SKIP(test::missingFashionMnistReason());
    const DatasetSplits data = loadDataset("fashion-mnist");
    TrainParams p;
    p.epochs = 1;
    p.batchSize = 128;
    p.optimizer = "adam";
    p.lr = 1e-3f;
    p.seed = 42;
    p.logInterval = 1;
    struct Run {
        std::vector<double> losses;
        EpochReport epoch;
        EvalResult eval;
    };
    auto run = [&](Backend& be) {
        auto model = Model::fromArchitecture(zooArchitecture("mlp-784-256-128-10"));
        model->initialize(be, 42);
        Run r;
        TrainCallbacks cb;
        cb.onStep = [&](const StepReport& s) { r.losses.push_back(s.loss); };
        cb.onEpoch = [&](const EpochReport& e) { r.epoch = e; };
        train(*model, be, data.train, p, cb);
        r.eval = evaluate(*model, be, data.test);
        return r;
    };
    const Run c = run(*cpu), g = run(*cuda);
    REQUIRE(c.losses.size() == g.losses.size() && c.epoch.steps == 469 && g.epoch.steps == 469);
    for (std::size_t i = 0; i < 20; ++i)
        CHECK_MSG(lossesAgree(g.losses[i], c.losses[i]),
                  "step " + std::to_string(i + 1) + ": cuda " + std::to_string(g.losses[i]) + ", cpu " +
                      std::to_string(c.losses[i]));
    std::printf("  one epoch: mean loss cpu %.5f cuda %.5f (%.1f s vs %.1f s); test accuracy cpu %.4f cuda %.4f\n",
                c.epoch.trainLoss, g.epoch.trainLoss, c.epoch.seconds, g.epoch.seconds, c.eval.accuracy,
                g.eval.accuracy);
    CHECK_MSG(std::abs(g.epoch.trainLoss - c.epoch.trainLoss) <= 5e-3 * c.epoch.trainLoss,
              "epoch mean loss cuda " + std::to_string(g.epoch.trainLoss) + " vs cpu " +
                  std::to_string(c.epoch.trainLoss));
    CHECK_MSG(std::abs(g.eval.accuracy - c.eval.accuracy) <= 0.005,
              "test accuracy cuda " + std::to_string(g.eval.accuracy) + " vs cpu " + std::to_string(c.eval.accuracy));
    CHECK(g.eval.accuracy > 0.80);
}

// The grouped convolution's backward (depthwise kernels on the GPU, direct loops on the CPU) through a
// whole training run: the same per-step tolerance as the MLP.
TEST_CASE(dwsTrainsLikeTheCpu) {
    const auto [cuda, cpu] = backendsOrSkip();
    const Dataset trainSet = syntheticImages(640, 1);
    auto cpuModel = Model::fromArchitecture(zooArchitecture("cnn-dws"));
    auto gpuModel = Model::fromArchitecture(zooArchitecture("cnn-dws"));
    cpuModel->initialize(*cpu, 42);
    gpuModel->initialize(*cuda, 42);
    const auto cpuLoss = trainLosses(*cpu, *cpuModel, trainSet, 20);
    const auto gpuLoss = trainLosses(*cuda, *gpuModel, trainSet, 20);
    REQUIRE(gpuLoss.size() == cpuLoss.size());
    REQUIRE(cpuLoss.size() == 20);
    for (std::size_t i = 0; i < cpuLoss.size(); ++i) {
        CHECK_MSG(lossesAgree(gpuLoss[i], cpuLoss[i]), "step " + std::to_string(i + 1) + ": cuda loss " +
                                                           std::to_string(gpuLoss[i]) + ", cpu loss " +
                                                           std::to_string(cpuLoss[i]));
    }
}

TEST_CASE(cnnForwardMatchesCpu) {
    const auto [cuda, cpu] = backendsOrSkip();
    for (const auto& [label, name, training] :
         {std::tuple{"cnn-2conv inference", "cnn-2conv", false},
          std::tuple{"cnn-2conv training (dropout on)", "cnn-2conv", true},
          std::tuple{"cnn-dws inference", "cnn-dws", false}}) {
        ROW(label);
        auto cpuModel = Model::fromArchitecture(zooArchitecture(name));
        auto gpuModel = Model::fromArchitecture(zooArchitecture(name));
        cpuModel->initialize(*cpu, 5);
        gpuModel->initialize(*cuda, 5);
        const auto x = test::randomVector(16 * 784, 9, 0.0f, 1.0f);
        ForwardContext ctx;
        ctx.training = training;
        ctx.seed = 77;
        ctx.step = 3;
        const Tensor cpuLogits = cpuModel->forward(cpu->upload(x, {16, 1, 28, 28}), ctx);
        const Tensor gpuLogits = gpuModel->forward(cuda->upload(x, {16, 1, 28, 28}), ctx);
        const auto ref = cpu->downloadF32(cpuLogits);
        const auto got = cuda->downloadF32(gpuLogits);
        // The f32 op tolerance of the op harness (1e-5) times a few layers of accumulated rounding.
        const double err = test::normalizedError(got, ref);
        CHECK_MSG(err <= 5e-5, "normalized error " + std::to_string(err));
    }
}

MINI_TEST_MAIN()

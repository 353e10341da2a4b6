// Model building from architecture JSON (round trip, errors naming the JSON pointer), the zoo,
// PyTorch-default initialisation, parameter naming, moving between backends, and save/load.
#include "engine/backends/cpu/cpu_backend.h"
#include "engine/backends/cpu/cpu_sgemm.h"
#include "engine/backends/registry.h"
#include "engine/core/errors.h"
#include "engine/io/model_io.h"
#include "engine/io/pretrained.h"
#include "engine/io/safetensors.h"
#include "engine/nn/optim.h"
#include "engine/nn/model.h"
#include "engine/io/zoo.h"
#include "tests/support/test_support.h"

#include <QtTest>

#include <algorithm>

#include <cmath>
#include <cstring>

using namespace lathe;
using namespace lathe::test;

namespace {

// Every layer type once, with non-default options, so the round trip covers every config() branch.
const char* kAllLayers = R"({"name":"all-layers","input":{"shape":[2,9,8],"scale":0.5,"mean":0.25,"std":2.0},
  "classes":3,"layers":[
    {"type":"conv2d","in":2,"out":4,"kernel":[3,2],"stride":[1,2],"padding":1,"groups":2,"bias":false},
    {"type":"batchnorm2d","features":4,"eps":0.001,"momentum":0.05},
    {"type":"gelu"},
    {"type":"maxpool2d","kernel":3,"stride":2,"padding":1},
    {"type":"relu"},
    {"type":"flatten"},
    {"type":"dropout","p":0.1},
    {"type":"linear","in":60,"out":7,"bias":false},
    {"type":"layernorm","dim":7,"eps":0.001},
    {"type":"linear","in":7,"out":3}]})";

std::vector<float> forwardEval(Model& m, Backend& be, const std::vector<float>& x, std::int64_t batch) {
    Shape xs = {batch};
    xs.insert(xs.end(), m.inputShape().begin(), m.inputShape().end());
    ForwardContext ctx;
    return be.downloadF32(m.forward(be.upload(x, xs), ctx));
}

} // namespace

class TestModel : public QObject {
    Q_OBJECT

private slots:
    void architectureRoundTrip_data();
    void architectureRoundTrip();
    void badArchitecture_data();
    void badArchitecture();
    void zooNamesAndUnknown();
    void zooParameters_data();
    void zooParameters();
    void initialization();
    void embeddingModel();
    void moveBetweenBackends();
    void forwardOnAnInstance();
    void inferenceScope();
    void inferenceScopeSixteenBitWeights();
    void saveAndLoad();
    void dropoutOnlyInTraining();
    void batchNormBuffers();
};

void TestModel::architectureRoundTrip_data() {
    QTest::addColumn<QString>("architecture");
    for (const auto& name : zooNames()) {
        // A pretrained model's architecture is read from its installed files: left out when not installed.
        const auto pretrained = std::find_if(pretrainedModels().begin(), pretrainedModels().end(),
                                             [&](const PretrainedInfo& p) { return p.name == name; });
        if (pretrained != pretrainedModels().end() && !pretrainedInstalled(*pretrained)) {
            qInfo("%s is not installed: its architecture is not round-tripped", name.c_str());
            continue;
        }
        QTest::newRow(name.c_str()) << QString::fromStdString(zooArchitecture(name).dump());
    }
    QTest::newRow("all-layers") << QString(kAllLayers);
}

void TestModel::architectureRoundTrip() {
    QFETCH(QString, architecture);
    const auto doc = nlohmann::json::parse(architecture.toStdString());
    auto m1 = Model::fromArchitecture(doc);
    const auto a1 = m1->architecture();
    QCOMPARE(a1["layers"], doc["layers"]); // the same layer configs, defaults left out as written
    QCOMPARE(a1["name"], doc["name"]);
    QCOMPARE(a1["classes"], doc["classes"]);
    QCOMPARE(a1["input"]["shape"], doc["input"]["shape"]);
    // Preprocessing is held in float: equal to the document's numbers at float precision.
    for (const char* k : {"scale", "mean", "std"})
        if (doc["input"].contains(k)) // token models (gpt-char) leave the pixel preprocessing out
            QCOMPARE(a1["input"][k].get<float>(), doc["input"][k].get<float>());
    auto m2 = Model::fromArchitecture(nlohmann::json::parse(a1.dump()));
    QCOMPARE(m2->architecture(), a1);
    QCOMPARE(m2->parameterCount(), m1->parameterCount());
}

void TestModel::badArchitecture_data() {
    QTest::addColumn<QString>("architecture");
    QTest::addColumn<QString>("expected"); // the JSON pointer and words the message must carry
    const QString ok = R"("input":{"shape":[1,4,4]},"classes":3)";
    auto row = [](const char* name, const QString& doc, const char* expected) {
        QTest::newRow(name) << doc << QString(expected);
    };
    row("not-an-object", "[1,2]", "/: expected an object");
    row("no-input", R"({"classes":3,"layers":[{"type":"flatten"}]})", "/input: missing");
    row("input-shape-entry", R"({"input":{"shape":[1,0,4]},"classes":3,"layers":[]})", "/input/shape/1: expected a positive integer");
    row("input-std-zero", R"({"input":{"shape":[1,4,4],"std":0},"classes":3,"layers":[]})", "/input/std: expected a positive number");
    row("input-unknown-key", R"({"input":{"shape":[1,4,4],"mena":0.5},"classes":3,"layers":[]})", "/input/mena: unknown field");
    row("classes-negative", R"({"input":{"shape":[1,4,4]},"classes":-1,"layers":[]})", "/classes: expected an integer >= 1, got -1");
    row("layers-empty", "{" + ok + R"(,"layers":[]})", "/layers: expected a non-empty array");
    row("layer-not-object", "{" + ok + R"(,"layers":[{"type":"flatten"}, 3]})", "/layers/1: expected an object");
    row("layer-type-missing", "{" + ok + R"(,"layers":[{"in":3}]})", "/layers/0/type: missing");
    row("layer-type-unknown", "{" + ok + R"(,"layers":[{"type":"flatten"},{"type":"lstm"}]})",
        "/layers/1/type: unknown layer type \"lstm\" (known: ");
    row("linear-out-missing", "{" + ok + R"(,"layers":[{"type":"flatten"},{"type":"linear","in":16}]})",
        "/layers/1/out: missing");
    row("linear-out-string", "{" + ok + R"(,"layers":[{"type":"flatten"},{"type":"linear","in":16,"out":"3"}]})",
        "/layers/1/out: expected an integer >= 1, got \"3\"");
    row("linear-in-mismatch", "{" + ok + R"(,"layers":[{"type":"flatten"},{"type":"linear","in":15,"out":3}]})",
        "/layers/1: linear expects (N, ..., 15), got shape [1, 16]");
    row("conv-kernel-bad", "{" + ok + R"(,"layers":[{"type":"conv2d","in":1,"out":2,"kernel":[3]}]})",
        "/layers/0/kernel: expected an integer >= 1 or [h, w]");
    row("conv-channels", "{" + ok + R"(,"layers":[{"type":"conv2d","in":3,"out":2,"kernel":3}]})",
        "/layers/0: conv2d expects (N, 3, H, W), got shape [1, 1, 4, 4]");
    row("conv-typo", "{" + ok + R"(,"layers":[{"type":"conv2d","in":1,"out":2,"kernal":3}]})",
        "/layers/0/kernal: unknown field");
    const QString in4 = R"("input":{"shape":[4,4,4]},"classes":3)";
    row("conv-groups-in", "{" + in4 + R"(,"layers":[{"type":"conv2d","in":4,"out":6,"kernel":1,"groups":3}]})",
        "/layers/0/groups: must divide both in (4) and out (6), got 3");
    row("conv-groups-out", "{" + in4 + R"(,"layers":[{"type":"conv2d","in":4,"out":6,"kernel":1,"groups":4}]})",
        "/layers/0/groups: must divide both in (4) and out (6), got 4");
    row("conv-groups-zero", "{" + in4 + R"(,"layers":[{"type":"conv2d","in":4,"out":4,"kernel":1,"groups":0}]})",
        "/layers/0/groups: expected an integer >= 1, got 0");
    row("conv-groups-string", "{" + in4 + R"(,"layers":[{"type":"conv2d","in":4,"out":4,"kernel":1,"groups":"4"}]})",
        "/layers/0/groups: expected an integer >= 1, got \"4\"");
    row("conv-groups-channels", "{" + in4 + R"(,"layers":[{"type":"conv2d","in":2,"out":2,"kernel":1,"groups":2}]})",
        "/layers/0: conv2d expects (N, 2, H, W), got shape [1, 4, 4, 4]");
    row("dropout-p", "{" + ok + R"(,"layers":[{"type":"flatten"},{"type":"dropout","p":1.5}]})",
        "/layers/1/p: expected a number in [0, 1), got 1.5");
    row("pool-padding", "{" + ok + R"(,"layers":[{"type":"maxpool2d","kernel":2,"padding":2}]})",
        "/layers/0/padding: must be at most half the kernel size");
    row("batchnorm-features", "{" + ok + R"(,"layers":[{"type":"batchnorm2d","features":2}]})",
        "/layers/0: batchnorm2d expects (N, 2, H, W), got shape [1, 1, 4, 4]");
    row("batchnorm-momentum", "{" + ok + R"(,"layers":[{"type":"batchnorm2d","features":1,"momentum":1.5}]})",
        "/layers/0/momentum: expected a number in [0, 1], got 1.5");
    row("wrong-output", "{" + ok + R"(,"layers":[{"type":"flatten"},{"type":"linear","in":16,"out":4}]})",
        "/layers/1: the model's output per sample is [1, 4], expected [1, 3] (/classes)");
}

void TestModel::badArchitecture() {
    QFETCH(QString, architecture);
    QFETCH(QString, expected);
    try {
        Model::fromArchitecture(nlohmann::json::parse(architecture.toStdString()));
        QFAIL("no ConfigError");
    } catch (const ConfigError& e) {
        QVERIFY2(QString(e.what()).startsWith(expected), e.what());
    }
}

void TestModel::zooNamesAndUnknown() {
    std::vector<std::string> expected = {"mlp-784-256-128-10", "cnn-2conv", "cnn-bn", "mlp-784-64-10",
                                         "mlp-784-32-10", "cnn-dws", "gpt-char-tiny", "gpt-char-small"};
    for (const auto& p : pretrainedModels()) expected.push_back(p.name); // after the built-in ones
    QCOMPARE(zooNames(), expected);
    QVERIFY(std::find(expected.begin(), expected.end(), "minilm-l6-v2") != expected.end());
    try {
        zooArchitecture("resnet-50");
        QFAIL("no ConfigError");
    } catch (const ConfigError& e) {
        QCOMPARE(QString(e.what()), QString("unknown model \"resnet-50\" (known: mlp-784-256-128-10, cnn-2conv, cnn-bn, mlp-784-64-10, "
                                         "mlp-784-32-10, cnn-dws, gpt-char-tiny, gpt-char-small, minilm-l6-v2)"));
    }
}

void TestModel::zooParameters_data() {
    QTest::addColumn<QString>("name");
    QTest::addColumn<qlonglong>("count");
    QTest::addColumn<QStringList>("names");
    // 784*256+256 + 256*128+128 + 128*10+10
    QTest::newRow("mlp") << "mlp-784-256-128-10" << 235146LL
                         << QStringList{"layers.1.weight", "layers.1.bias", "layers.3.weight", "layers.3.bias",
                                        "layers.5.weight", "layers.5.bias"};
    // 32*9+32 + 64*32*9+64 + 3136*128+128 + 128*10+10
    QTest::newRow("cnn") << "cnn-2conv" << 421642LL
                         << QStringList{"layers.0.weight", "layers.0.bias", "layers.3.weight", "layers.3.bias",
                                        "layers.7.weight", "layers.7.bias", "layers.10.weight", "layers.10.bias"};
    // cnn-2conv without the conv biases, with a BatchNorm2d's weight and bias per filter: 421642 - 96 + 2*96
    QTest::newRow("cnn-bn") << "cnn-bn" << 421738LL
                            << QStringList{"layers.0.weight", "layers.1.weight", "layers.1.bias", "layers.4.weight",
                                           "layers.5.weight", "layers.5.bias", "layers.9.weight", "layers.9.bias",
                                           "layers.12.weight", "layers.12.bias"};
    // 784*64+64 + 64*10+10
    QTest::newRow("mlp-64") << "mlp-784-64-10" << 50890LL
                            << QStringList{"layers.1.weight", "layers.1.bias", "layers.3.weight", "layers.3.bias"};
    // 784*32+32 + 32*10+10
    QTest::newRow("mlp-32") << "mlp-784-32-10" << 25450LL
                            << QStringList{"layers.1.weight", "layers.1.bias", "layers.3.weight", "layers.3.bias"};
    // 16*9+16 + 16*1*9+16 (depthwise) + 32*16+32 (pointwise) + 1568*10+10
    QTest::newRow("cnn-dws") << "cnn-dws" << 16554LL
                             << QStringList{"layers.0.weight", "layers.0.bias", "layers.3.weight", "layers.3.bias",
                                            "layers.5.weight", "layers.5.bias", "layers.9.weight", "layers.9.bias"};
}

void TestModel::zooParameters() {
    QFETCH(QString, name);
    QFETCH(qlonglong, count);
    QFETCH(QStringList, names);
    auto m = Model::fromArchitecture(zooArchitecture(name.toStdString()));
    QCOMPARE(m->parameterCount(), count);
    // What the file stores: the f32 parameters and the buffers (batch norms' running statistics and counter).
    std::uint64_t bufferBytes = 0;
    for (const auto& nb : m->namedBuffers()) bufferBytes += nb.buffer->value.bytes();
    QCOMPARE(m->parameterBytes(), static_cast<std::uint64_t>(count * 4) + bufferBytes);
    QStringList got;
    for (const auto& np : m->namedParameters()) got << QString::fromStdString(np.name);
    QCOMPARE(got, names);
    QCOMPARE(m->preprocess().mean, 0.2860f);
    QCOMPARE(m->preprocess().std, 0.3530f);
    QCOMPARE(m->preprocess().scale, 1.0f / 255.0f);
    // PyTorch layouts: linear (out, in), conv (out, in, kh, kw).
    if (name == "cnn-2conv") {
        QCOMPARE(m->namedParameters()[2].param->value.shape(), (Shape{64, 32, 3, 3}));
        QCOMPARE(m->namedParameters()[4].param->value.shape(), (Shape{128, 3136}));
    } else if (name == "cnn-bn") { // conv (no bias), then the norm's weight and bias (features)
        QCOMPARE(m->namedParameters()[1].param->value.shape(), (Shape{32}));
        QCOMPARE(m->namedParameters()[3].param->value.shape(), (Shape{64, 32, 3, 3}));
    } else if (name == "cnn-dws") { // grouped conv: (out, in / groups, kh, kw)
        QCOMPARE(m->namedParameters()[2].param->value.shape(), (Shape{16, 1, 3, 3}));
        QCOMPARE(m->namedParameters()[4].param->value.shape(), (Shape{32, 16, 1, 1}));
        QCOMPARE(m->namedParameters()[6].param->value.shape(), (Shape{10, 1568}));
    } else {
        const std::int64_t hidden = name.section('-', 2, 2).toLongLong(); // mlp-784-<first hidden>-...
        QCOMPARE(m->namedParameters()[0].param->value.shape(), (Shape{hidden, 784}));
    }
}

// kaiming_uniform(a = sqrt(5)) for weights and U(+-1/sqrt(fan_in)) for biases: every value inside the
// bound, and the sample standard deviation near bound/sqrt(3) (over >= 288 values the sampling error of
// the std is below 10%, the tolerance used). A grouped convolution's fan_in is (in / groups) * kh * kw,
// as in PyTorch: the depthwise layer below has fan_in 9, not 32 * 9. LayerNorm and BatchNorm2d start at ones
// and zeros, BatchNorm2d's running statistics at zeros (mean) and ones (variance).
void TestModel::initialization() {
    Backend& be = *cpuBackend();
    auto m = Model::fromArchitecture(nlohmann::json::parse(kAllLayers));
    auto cnn = Model::fromArchitecture(zooArchitecture("cnn-2conv"));
    auto depthwise = Model::fromArchitecture(nlohmann::json::parse(R"({"input":{"shape":[32,6,6]},"classes":1152,
        "layers":[{"type":"conv2d","in":32,"out":32,"kernel":3,"padding":1,"groups":32},{"type":"flatten"}]})"));
    cnn->initialize(be, 5);
    m->initialize(be, 5);
    depthwise->initialize(be, 5);
    struct Expect {
        Model* model;
        std::string name;
        double fanIn;
    };
    const std::vector<Expect> expects = {{cnn.get(), "layers.0.weight", 9},        {cnn.get(), "layers.0.bias", 9},
                                         {cnn.get(), "layers.3.weight", 32 * 9},   {cnn.get(), "layers.7.weight", 3136},
                                         {cnn.get(), "layers.10.bias", 128},       {m.get(), "layers.0.weight", 1 * 6},
                                         {m.get(), "layers.7.weight", 60},         {depthwise.get(), "layers.0.weight", 9},
                                         {depthwise.get(), "layers.0.bias", 9}};
    for (const auto& e : expects) {
        std::vector<float> v;
        for (const auto& np : e.model->namedParameters())
            if (np.name == e.name) v = be.downloadF32(np.param->value);
        QVERIFY2(!v.empty(), e.name.c_str());
        const double bound = 1.0 / std::sqrt(e.fanIn);
        double sq = 0;
        for (float x : v) {
            QVERIFY2(std::abs(x) <= bound, e.name.c_str());
            sq += static_cast<double>(x) * x;
        }
        if (v.size() >= 288) {
            const double sd = std::sqrt(sq / v.size());
            QVERIFY2(std::abs(sd / (bound / std::sqrt(3.0)) - 1.0) < 0.1, e.name.c_str());
        }
    }
    int norms = 0;
    for (const auto& np : m->namedParameters()) {
        if (np.name != "layers.8.weight" && np.name != "layers.8.bias" && np.name != "layers.1.weight" &&
            np.name != "layers.1.bias")
            continue;
        ++norms;
        const float expected = np.name.ends_with("weight") ? 1.0f : 0.0f;
        for (float x : be.downloadF32(np.param->value)) QCOMPARE(x, expected);
    }
    QCOMPARE(norms, 4);
    for (const auto& nb : m->namedBuffers()) {
        if (nb.name == "layers.1.num_batches_tracked") continue;
        const float expected = nb.name == "layers.1.running_var" ? 1.0f : 0.0f;
        for (float x : be.downloadF32(nb.buffer->value)) QCOMPARE(x, expected);
    }
    // Same seed, same weights; another seed, other weights.
    auto again = Model::fromArchitecture(zooArchitecture("cnn-2conv"));
    again->initialize(be, 5);
    auto other = Model::fromArchitecture(zooArchitecture("cnn-2conv"));
    other->initialize(be, 6);
    for (std::size_t i = 0; i < cnn->namedParameters().size(); ++i) {
        const auto a = be.downloadF32(cnn->namedParameters()[i].param->value);
        QCOMPARE(be.downloadF32(again->namedParameters()[i].param->value), a);
        QVERIFY(be.downloadF32(other->namedParameters()[i].param->value) != a);
    }
}

// Embedding tables start N(0, 1); a model can start with one (I32 ids in, classes out).
void TestModel::embeddingModel() {
    Backend& be = *cpuBackend();
    auto m = Model::fromArchitecture(nlohmann::json::parse(R"({"input":{"shape":[5]},"classes":4,
        "layers":[{"type":"embedding","num":1000,"dim":8},{"type":"flatten"},{"type":"linear","in":40,"out":4}]})"));
    m->initialize(be, 9);
    const auto table = be.downloadF32(m->namedParameters()[0].param->value);
    double mean = 0, sq = 0;
    for (float x : table) mean += x;
    mean /= table.size();
    for (float x : table) sq += (x - mean) * (x - mean);
    const double sd = std::sqrt(sq / table.size());
    // 8000 samples: the standard error of the mean is ~0.011 and of the std ~0.008.
    QVERIFY(std::abs(mean) < 0.05);
    QVERIFY(std::abs(sd - 1.0) < 0.05);
    Tensor ids = be.uploadI32({1, 2, 3, 999, 0, 7, 7, 7, 7, 7}, {2, 5});
    ForwardContext ctx;
    Tensor logits = m->forward(ids, ctx);
    QCOMPARE(logits.shape(), (Shape{2, 4}));
}

// Moving to another backend keeps the weights and the outputs.
void TestModel::moveBetweenBackends() {
    Backend& be = *cpuBackend();
    auto other = makeCpuBackend(1);
    auto m = Model::fromArchitecture(nlohmann::json::parse(kAllLayers));
    m->initialize(be, 3);
    const auto x = randomVector(2 * 2 * 9 * 8, 4);
    const auto before = forwardEval(*m, be, x, 2);
    m->to(*other);
    QCOMPARE(m->backend(), other.get());
    for (const auto& np : m->namedParameters()) {
        QCOMPARE(np.param->grad.shape(), np.param->value.shape());
        for (float g : other->downloadF32(np.param->grad)) QCOMPARE(g, 0.0f);
    }
    QVERIFY(normalizedError(forwardEval(*m, *other, x, 2), before) < 1e-6);
    m->to(be);
    QCOMPARE(forwardEval(*m, be, x, 2), before);
}

// Inference on another backend of the same device (serving's instances) gives the model's own outputs; training
// there is refused, naming both backends' roles.
void TestModel::forwardOnAnInstance() {
    Backend& be = *cpuBackend();
    auto other = makeCpuBackend(1);
    QVERIFY(be.makeInstance() == nullptr); // the CPU backend is re-entrant: no instances of its own
    auto m = Model::fromArchitecture(nlohmann::json::parse(kAllLayers));
    m->initialize(be, 5);
    const auto x = randomVector(2 * 2 * 9 * 8, 6);
    const Tensor xt = be.upload(x, {2, 2, 9, 8});
    const auto own = be.downloadF32(m->forward(xt, ForwardContext{}));
    QCOMPARE(other->downloadF32(m->forward(*other, xt, ForwardContext{})), own);
    ForwardContext training;
    training.training = true;
    try {
        m->forward(*other, xt, training);
        QFAIL("training on a backend the model is not placed on ran");
    } catch (const BackendError& e) {
        QVERIFY2(QString(e.what()).contains("training runs on the backend the model is placed on"), e.what());
    }
}

// Model::InferenceScope: every dense f32 Linear of the tree (one with a fused activation, one inside a residual
// block, the plain head) computes from a prepacked copy of its weight while a scope is open, with the same bits as
// without one; the copies are made by the first scope and dropped by the last; a weight replaced by another tensor,
// a training step, and an in-place edit between scopes are all seen.
void TestModel::inferenceScope() {
    auto be = makeCpuBackend(2);
    auto m = Model::fromArchitecture(nlohmann::json::parse(R"({"name":"scoped","input":{"shape":[40]},"classes":5,
      "layers":[{"type":"linear","in":40,"out":70,"activation":"relu"},
                {"type":"residual","layers":[{"type":"linear","in":70,"out":70},{"type":"gelu"}]},
                {"type":"linear","in":70,"out":5}]})"));
    m->initialize(*be, 31);
    const std::int64_t batch = 16;
    const auto x = randomVector(batch * 40, 32);
    const auto outside = forwardEval(*m, *be, x, batch);
    const std::vector<float> one(x.begin(), x.begin() + 40);
    const auto outsideOne = forwardEval(*m, *be, one, 1);
    // The packed copies: (ceil(out / 32) * 32) x in floats per Linear, where the own kernel runs.
    const bool packs = cpu::ownSgemmEnabled();
    const std::uint64_t packedBytes = packs ? 4 * (96 * 40 + 96 * 70 + 32 * 70) : 0;
    const std::uint64_t before = be->currentAllocatedBytes();
    {
        const Model::InferenceScope scope(*m);
        QVERIFY(m->inInferenceScope());
        QCOMPARE(be->currentAllocatedBytes() - before, packedBytes);
        QCOMPARE(forwardEval(*m, *be, x, batch), outside);
        QCOMPARE(forwardEval(*m, *be, one, 1), outsideOne); // one row: from W itself
        {
            const Model::InferenceScope inner(*m); // nested: shares the copies, and leaves them when it closes
            QCOMPARE(be->currentAllocatedBytes() - before, packedBytes);
        }
        QCOMPARE(be->currentAllocatedBytes() - before, packedBytes);
        QCOMPARE(forwardEval(*m, *be, x, batch), outside);

        // The head's weight replaced by another tensor: computed from the new one.
        Parameter* head = m->layers()[2]->parameters()[0];
        const Tensor original = head->value;
        head->value = be->upload(randomVector(5 * 70, 33), {5, 70});
        const auto replaced = forwardEval(*m, *be, x, batch);
        QVERIFY(replaced != outside);
        head->value = original;
        QCOMPARE(forwardEval(*m, *be, x, batch), outside);

        // A training step inside the scope: the optimizer edits the weights in place; the layers dropped their
        // copies in the training forward, so the next inference sees the new weights.
        ForwardContext training;
        training.training = true;
        m->zeroGrad();
        const Tensor y = m->forward(be->upload(x, {batch, 40}), training);
        m->backward(be->upload(std::vector<float>(static_cast<std::size_t>(batch * 5), 0.25f), {batch, 5}));
        OptimizerState state;
        makeSgd(SgdParams{0.5f})->step(*be, m->namedParameters(), state);
        m->releaseCache();
        const auto trained = forwardEval(*m, *be, x, batch);
        QVERIFY(trained != outside);
        QCOMPARE(be->currentAllocatedBytes() >= before, true);
        const Model::InferenceScope again(*m); // nested: the copies stay dropped, the weights as trained
        QCOMPARE(forwardEval(*m, *be, x, batch), trained);
    }
    QVERIFY(!m->inInferenceScope());
    QCOMPARE(be->currentAllocatedBytes(), before); // every copy released with the last scope
    const auto trained = forwardEval(*m, *be, x, batch);
    // An in-place edit between scopes: the next scope packs the edited weight.
    Parameter* first = m->layers()[0]->parameters()[0];
    first->value.ptr<float>()[3] += 1.0f;
    const auto edited = forwardEval(*m, *be, x, batch);
    QVERIFY(edited != trained);
    const Model::InferenceScope scope(*m);
    QCOMPARE(forwardEval(*m, *be, x, batch), edited);
}

// f16 and bf16 Linear weights in a scope: laid out in their own format (half the bytes of an f32 copy) and widened as
// the GEMM loads them: from two rows the same bits as the 16-bit GEMM outside a scope; one row sums in another
// order than that GEMM's GEMV, so it agrees within the 16-bit output's rounding.
void TestModel::inferenceScopeSixteenBitWeights() {
    if (!cpu::ownSgemmEnabled()) QSKIP("the CPU's own GEMM is off here: no 16-bit layout to test");
    auto be = makeCpuBackend(2);
    for (const char* dt : {"f16", "bf16"}) {
        auto m = Model::fromArchitecture(nlohmann::json::parse(std::string(R"({"name":"half","input":{"shape":[40]},
          "classes":5,"layers":[{"type":"linear","in":40,"out":70,"dtype":")") + dt + R"("},{"type":"relu"},
          {"type":"linear","in":70,"out":5,"dtype":")" + dt + R"("}]})"));
        m->initialize(*be, 41);
        const std::int64_t batch = 16;
        const auto x = randomVector(batch * 40, 42);
        const std::vector<float> one(x.begin(), x.begin() + 40);
        const auto outside = forwardEval(*m, *be, x, batch), outsideOne = forwardEval(*m, *be, one, 1);
        const std::uint64_t before = be->currentAllocatedBytes();
        const Model::InferenceScope scope(*m);
        QCOMPARE(be->currentAllocatedBytes() - before, std::uint64_t(2 * (96 * 40 + 32 * 70))); // 16-bit panels
        QCOMPARE(forwardEval(*m, *be, x, batch), outside);
        const auto inside = forwardEval(*m, *be, one, 1);
        for (std::size_t i = 0; i < inside.size(); ++i)
            QVERIFY2(std::fabs(inside[i] - outsideOne[i]) <= 1e-2f * std::max(1.0f, std::fabs(outsideOne[i])),
                     qPrintable(QString("%1 logit %2: %3 in the scope, %4 outside").arg(dt).arg(i).arg(inside[i])
                                    .arg(outsideOne[i])));
    }
}

void TestModel::saveAndLoad() {
    Backend& be = *cpuBackend();
    auto m = Model::fromArchitecture(nlohmann::json::parse(kAllLayers));
    m->initialize(be, 21);
    const std::string path = tempDir() + "/all_layers.safetensors";
    saveModel(*m, path);
    auto loaded = loadModel(path);
    QCOMPARE(loaded->architecture(), m->architecture());
    loaded->to(be);
    const auto x = randomVector(3 * 2 * 9 * 8, 22);
    QCOMPARE(forwardEval(*loaded, be, x, 3), forwardEval(*m, be, x, 3));
}

void TestModel::dropoutOnlyInTraining() {
    Backend& be = *cpuBackend();
    auto m = Model::fromArchitecture(zooArchitecture("cnn-2conv"));
    m->initialize(be, 1);
    Tensor x = be.upload(randomVector(4 * 784, 2), {4, 1, 28, 28});
    ForwardContext eval;
    const auto a = be.downloadF32(m->forward(x, eval));
    QCOMPARE(be.downloadF32(m->forward(x, eval)), a);
    ForwardContext train;
    train.training = true;
    train.seed = 8;
    train.step = 1;
    const auto t1 = be.downloadF32(m->forward(x, train));
    QVERIFY(t1 != a);
    QCOMPARE(be.downloadF32(m->forward(x, train)), t1); // same (seed, step): same mask
    train.step = 2;
    QVERIFY(be.downloadF32(m->forward(x, train)) != t1);
    m->releaseCache();
}

// BatchNorm2d's running statistics are buffers: not parameters (no gradient, never optimised), tracked by
// training forwards only, saved under PyTorch's names (num_batches_tracked as an i64 scalar) and reloaded so
// that evaluation gives the same logits bit for bit.
void TestModel::batchNormBuffers() {
    Backend& be = *cpuBackend();
    auto m = Model::fromArchitecture(zooArchitecture("cnn-bn"));
    m->initialize(be, 3);
    QStringList params, buffers;
    for (const auto& np : m->namedParameters()) params << QString::fromStdString(np.name);
    for (const auto& nb : m->namedBuffers()) buffers << QString::fromStdString(nb.name);
    QVERIFY(!params.contains("layers.1.running_mean"));
    QCOMPARE(buffers, (QStringList{"layers.1.running_mean", "layers.1.running_var", "layers.1.num_batches_tracked",
                                   "layers.5.running_mean", "layers.5.running_var", "layers.5.num_batches_tracked"}));
    auto buffer = [&](const char* name) -> Buffer& {
        for (const auto& nb : m->namedBuffers())
            if (nb.name == name) return *nb.buffer;
        throw std::runtime_error(name);
    };
    QCOMPARE(be.downloadF32(buffer("layers.1.running_var").value), std::vector<float>(32, 1.0f));

    ForwardContext train;
    train.training = true;
    auto optimizer = makeSgd(SgdParams{0.01f, 0.0f, 0.0f, false});
    OptimizerState state;
    for (int step = 1; step <= 3; ++step) {
        train.step = step;
        Tensor x = be.upload(randomVector(8 * 784, static_cast<std::uint64_t>(30 + step)), {8, 1, 28, 28});
        m->zeroGrad();
        Tensor logits = m->forward(x, train);
        m->backward(be.upload(randomVector(8 * 10, 40), {8, 10}));
        const auto mean = be.downloadF32(buffer("layers.1.running_mean").value);
        const auto w = be.downloadF32(m->namedParameters()[1].param->value); // layers.1.weight (gamma)
        optimizer->step(be, m->namedParameters(), state);
        m->releaseCache();
        QCOMPARE(be.downloadF32(buffer("layers.1.running_mean").value), mean); // the optimizer leaves buffers alone
        QVERIFY(be.downloadF32(m->namedParameters()[1].param->value) != w);
    }
    QCOMPARE(*buffer("layers.5.num_batches_tracked").value.ptr<std::int64_t>(), std::int64_t(3));
    QVERIFY(be.downloadF32(buffer("layers.1.running_var").value) != std::vector<float>(32, 1.0f));

    // Evaluation reads the running statistics and leaves them (and the count) as they are.
    const auto x = randomVector(5 * 784, 50);
    const auto rv = be.downloadF32(buffer("layers.5.running_var").value);
    const auto eval = forwardEval(*m, be, x, 5);
    QCOMPARE(forwardEval(*m, be, x, 5), eval);
    QCOMPARE(be.downloadF32(buffer("layers.5.running_var").value), rv);
    QCOMPARE(*buffer("layers.5.num_batches_tracked").value.ptr<std::int64_t>(), std::int64_t(3));

    const std::string path = tempDir() + "/cnn_bn.safetensors";
    saveModel(*m, path);
    const Tensor* count = nullptr;
    const auto file = readSafetensors(path);
    count = file.find("layers.1.num_batches_tracked");
    QVERIFY(count);
    QCOMPARE(count->dtype(), DType::I64);
    QCOMPARE(count->shape(), Shape{});
    auto loaded = loadModel(path);
    loaded->to(be);
    QCOMPARE(forwardEval(*loaded, be, x, 5), eval);
    const auto a = m->namedBuffers(), b = loaded->namedBuffers();
    QCOMPARE(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        QCOMPARE(b[i].name, a[i].name);
        QCOMPARE(b[i].buffer->value.dtype(), a[i].buffer->value.dtype());
        QCOMPARE(be.download(b[i].buffer->value).bytes(), be.download(a[i].buffer->value).bytes());
        QVERIFY(std::memcmp(be.download(b[i].buffer->value).data(), be.download(a[i].buffer->value).data(),
                            a[i].buffer->value.bytes()) == 0);
    }
}

QTEST_GUILESS_MAIN(TestModel)
#include "test_model.moc"

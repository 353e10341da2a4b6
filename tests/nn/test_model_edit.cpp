// Models that branch (residual and sequential blocks: names, forward, errors, safetensors round trip) and
// ModelEditor's operations (list, replace, insert, remove, structured shrinking of a Linear pair).
#include "engine/backends/registry.h"
#include "engine/core/errors.h"
#include "engine/io/model_io.h"
#include "engine/nn/model_edit.h"
#include "engine/nn/trainer.h"
#include "tests/nn/band_dataset.h"
#include "tests/support/test_support.h"

#include <QtTest>

using namespace lathe;
using namespace lathe::test;
using json = nlohmann::json;

namespace {

// flatten, linear, relu, residual{linear, relu, linear}, residual{sequential{linear, gelu}, layernorm}, linear
const char* kBranching = R"({"name":"branching","input":{"shape":[1,4,4],"scale":1,"mean":0,"std":1},"classes":5,
  "layers":[{"type":"flatten"},{"type":"linear","in":16,"out":8},{"type":"relu"},
  {"type":"residual","layers":[{"type":"linear","in":8,"out":6},{"type":"relu"},{"type":"linear","in":6,"out":8}]},
  {"type":"residual","layers":[{"type":"sequential","layers":[{"type":"linear","in":8,"out":8},{"type":"gelu"}]},
   {"type":"layernorm","dim":8}]},
  {"type":"linear","in":8,"out":8},{"type":"relu"},{"type":"dropout","p":0.1},{"type":"linear","in":8,"out":5,"bias":false}]})";

std::unique_ptr<Model> branching(std::uint64_t seed = 3) {
    auto m = Model::fromArchitecture(json::parse(kBranching));
    m->initialize(*cpuBackend(), seed);
    return m;
}

Tensor input(Backend& be, std::int64_t n, std::uint64_t seed) {
    return be.upload(randomVector(static_cast<std::size_t>(n * 16), seed), {n, 1, 4, 4});
}

std::vector<float> logits(Model& m, const Tensor& x) { return m.backend()->downloadF32(m.forward(x, {})); }

std::vector<std::string> names(Model& m) {
    std::vector<std::string> out;
    for (const auto& np : m.namedParameters()) out.push_back(np.name);
    return out;
}

// 4x4 images, 5 classes: class c has its row c bright (class 4: none).
Dataset images(std::int64_t n, std::uint64_t seed) { return bands(n, seed, 4, 5, 1); }

} // namespace

class TestModelEdit : public QObject {
    Q_OBJECT

private slots:
    void blockNamesAndArchitecture();
    void residualAddsItsInput();
    void blockConfigErrors_data();
    void blockConfigErrors();
    void saveLoadRoundTrip();
    void listLayers();
    void replaceLayer();
    void insertAndRemove();
    void badPaths();
    void shrinkLinearOutputs();
    void shrinkInsideBlockAndErrors();
};

// Names as PyTorch gives a module whose blocks hold an nn.Sequential called `layers`.
void TestModelEdit::blockNamesAndArchitecture() {
    auto m = branching();
    const std::vector<std::string> expected = {
        "layers.1.weight", "layers.1.bias",
        "layers.3.layers.0.weight", "layers.3.layers.0.bias", "layers.3.layers.2.weight", "layers.3.layers.2.bias",
        "layers.4.layers.0.layers.0.weight", "layers.4.layers.0.layers.0.bias",
        "layers.4.layers.1.weight", "layers.4.layers.1.bias",
        "layers.5.weight", "layers.5.bias", "layers.8.weight"};
    QCOMPARE(names(*m), expected);
    QCOMPARE(m->parameterCount(), 16 * 8 + 8 + 8 * 6 + 6 + 6 * 8 + 8 + 8 * 8 + 8 + 8 + 8 + 8 * 8 + 8 + 8 * 5);
    const json arch = m->architecture();
    QCOMPARE(arch["layers"], json::parse(kBranching)["layers"]);
    // Every parameter has its gradient beside it after initialize.
    for (const auto& np : m->namedParameters()) QCOMPARE(np.param->grad.shape(), np.param->value.shape());
}

void TestModelEdit::residualAddsItsInput() {
    Backend& be = *cpuBackend();
    auto block = makeLayer(json::parse(R"({"type":"residual","layers":[{"type":"linear","in":5,"out":5},{"type":"gelu"}]})"));
    Rng rng(4);
    block->initialize(be, rng);
    const Tensor x = be.upload(randomVector(15, 5), {3, 5});
    const std::vector<float> y = be.downloadF32(block->forward(be, x, {}));
    Tensor h = x;
    for (auto& l : *block->sublayers()) h = l->forward(be, h, {});
    const std::vector<float> xv = be.downloadF32(x), fv = be.downloadF32(h);
    for (std::size_t i = 0; i < y.size(); ++i) QCOMPARE(y[i], xv[i] + fv[i]);
    QVERIFY(normalizedError(y, xv) > 1e-2); // f is not zero
}

void TestModelEdit::blockConfigErrors_data() {
    QTest::addColumn<QString>("layer");
    QTest::addColumn<QString>("message");
    QTest::newRow("residual-changes-shape") << R"({"type":"residual","layers":[{"type":"linear","in":16,"out":8}]})"
                                            << "/layers/1: residual: its layers map [1, 16] to [1, 8]";
    QTest::newRow("missing-layers") << R"({"type":"residual"})" << "/layers/1/layers: missing";
    QTest::newRow("empty-layers") << R"({"type":"sequential","layers":[]})" << "/layers/1/layers: expected a non-empty";
    QTest::newRow("nested-unknown-type") << R"({"type":"sequential","layers":[{"type":"relu"},{"type":"lstm"}]})"
                                         << "/layers/1/layers/1/type: unknown layer type \"lstm\"";
    QTest::newRow("nested-bad-field") << R"({"type":"residual","layers":[{"type":"linear","in":16,"out":0}]})"
                                      << "/layers/1/layers/0/out: expected an integer >= 1";
    QTest::newRow("unknown-key") << R"({"type":"residual","layers":[{"type":"relu"}],"skip":2})"
                                 << "/layers/1/skip: unknown field";
}

void TestModelEdit::blockConfigErrors() {
    QFETCH(QString, layer);
    QFETCH(QString, message);
    json arch = json::parse(R"({"name":"bad","input":{"shape":[16]},"classes":16,"layers":[{"type":"relu"}]})");
    arch["layers"].push_back(json::parse(layer.toStdString()));
    const std::string err = errorOf<ConfigError>([&] { Model::fromArchitecture(arch); });
    QVERIFY2(err.find(message.toStdString()) != std::string::npos, err.c_str());
}

void TestModelEdit::saveLoadRoundTrip() {
    Backend& be = *cpuBackend();
    auto m = branching(9);
    const std::string path = tempDir() + "/branching.safetensors";
    saveModel(*m, path);
    auto loaded = loadModel(path);
    QCOMPARE(loaded->architecture(), m->architecture());
    QCOMPARE(names(*loaded), names(*m));
    const auto a = m->namedParameters(), b = loaded->namedParameters();
    for (std::size_t i = 0; i < a.size(); ++i) QCOMPARE(be.downloadF32(b[i].param->value), be.downloadF32(a[i].param->value));
    const Tensor x = input(be, 4, 10);
    QCOMPARE(logits(*loaded, x), logits(*m, x));
}

void TestModelEdit::listLayers() {
    auto m = branching();
    const std::vector<LayerInfo> l = ModelEditor(*m).list();
    QCOMPARE(l.size(), std::size_t{9 + 3 + 2 + 2});
    QCOMPARE(l[0].path, std::string("layers.0"));
    QCOMPARE(l[0].outputShape, (Shape{1, 16}));
    QCOMPARE(l[3].path, std::string("layers.3"));
    QCOMPARE(l[3].type, std::string("residual"));
    QCOMPARE(l[3].parameterCount, 8 * 6 + 6 + 6 * 8 + 8);
    QCOMPARE(l[4].path, std::string("layers.3.layers.0"));
    QCOMPARE(l[4].depth, 1);
    QCOMPARE(l[4].inputShape, (Shape{1, 8}));
    QCOMPARE(l[4].outputShape, (Shape{1, 6}));
    QCOMPARE(l[8].path, std::string("layers.4.layers.0"));
    QCOMPARE(l[9].path, std::string("layers.4.layers.0.layers.0"));
    QCOMPARE(l[9].depth, 2);
    QCOMPARE(l.back().path, std::string("layers.8"));
    QCOMPARE(l.back().outputShape, (Shape{1, 5}));
}

void TestModelEdit::replaceLayer() {
    Backend& be = *cpuBackend();
    auto m = branching();
    ModelEditor ed(*m);
    const Tensor x = input(be, 3, 11);
    const std::vector<float> before = logits(*m, x);
    // A fresh linear in a nested block: same names, new values, the model still runs.
    auto fresh = ed.create(json{{"type", "linear"}, {"in", 8}, {"out", 8}}, 21);
    const Layer* freshPtr = fresh.get();
    std::unique_ptr<Layer> old = ed.replace("layers.4.layers.0.layers.0", std::move(fresh));
    QCOMPARE(old->type(), std::string("linear"));
    QCOMPARE(&ed.layer("layers.4.layers.0.layers.0"), freshPtr);
    QCOMPARE(names(*m), names(*branching()));
    const std::vector<float> after = logits(*m, x);
    QCOMPARE(after.size(), before.size());
    QVERIFY(after != before);
    // Replacing with the layer that was there restores the outputs exactly.
    ed.replace("layers.4.layers.0.layers.0", std::move(old));
    QCOMPARE(logits(*m, x), before);
    // A layer with other shapes is refused, and the model is left as it was.
    const std::string err = errorOf<ConfigError>(
        [&] { ed.replace("layers.5", ed.create(json{{"type", "linear"}, {"in", 8}, {"out", 7}}, 1)); });
    QVERIFY2(err.find("edit undone") != std::string::npos, err.c_str());
    QCOMPARE(logits(*m, x), before);
    // A replaced layer with host-valued parameters is moved to the backend with its gradients.
    auto host = makeLayer(json{{"type", "linear"}, {"in", 8}, {"out", 8}});
    ed.replace("layers.5", std::move(host));
    for (const auto& np : m->namedParameters()) {
        QCOMPARE(np.param->value.device(), be.device());
        QCOMPARE(np.param->grad.shape(), np.param->value.shape());
    }
    // And training runs through the edited model.
    TrainParams p;
    p.epochs = 1;
    p.batchSize = 16;
    QCOMPARE(train(*m, be, images(64, 1), p).steps, 4LL);
}

void TestModelEdit::insertAndRemove() {
    Backend& be = *cpuBackend();
    auto m = branching();
    ModelEditor ed(*m);
    const Tensor x = input(be, 3, 12);
    const std::vector<float> before = logits(*m, x);
    // An identity-shaped layer inserted at the end of a residual branch: later paths are unchanged, the
    // block's own children shift.
    ed.insertAfter("layers.3.layers.2", ed.create(json{{"type", "gelu"}}, 0));
    QCOMPARE(ed.layer("layers.3.layers.3").type(), std::string("gelu"));
    QVERIFY(logits(*m, x) != before);
    QCOMPARE(ed.remove("layers.3.layers.3")->type(), std::string("gelu"));
    QCOMPARE(logits(*m, x), before);
    // Inserting before a top-level layer renames the layers after it.
    ed.insertBefore("layers.1", ed.create(json{{"type", "dropout"}, {"p", 0.5}}, 0));
    QCOMPARE(ed.layer("layers.1").type(), std::string("dropout"));
    QCOMPARE(names(*m).front(), std::string("layers.2.weight"));
    QCOMPARE(names(*m).back(), std::string("layers.9.weight"));
    QCOMPARE(logits(*m, x), before); // dropout is the identity in inference
    ed.remove("layers.1");
    QCOMPARE(names(*m), names(*branching()));
    // A whole block can go (its input and output shapes agree); its only child cannot.
    ed.remove("layers.4");
    QCOMPARE(ed.list().size(), std::size_t{8 + 3});
    QCOMPARE(logits(*m, x).size(), before.size());
    const std::string err = errorOf<ConfigError>([&] {
        ed.replace("layers.3", ed.create(json::parse(R"({"type":"residual","layers":[{"type":"relu"}]})"), 0));
        ed.remove("layers.3.layers.0");
    });
    QVERIFY2(err.find("only layer of its sequence") != std::string::npos, err.c_str());
    // A removal that breaks the shapes is undone.
    const std::size_t count = ed.list().size();
    QVERIFY_THROWS_EXCEPTION(ConfigError, ed.remove("layers.1"));
    QCOMPARE(ed.list().size(), count);
}

void TestModelEdit::badPaths() {
    auto m = branching();
    ModelEditor ed(*m);
    auto check = [&](const std::string& path, const std::string& needle) {
        const std::string err = errorOf<ConfigError>([&] { ed.layer(path); });
        QVERIFY2(err.find(needle) != std::string::npos, err.c_str());
    };
    check("layers.9", "out of range (9 layers there)");
    check("layers.1.layers.0", "the linear at \"layers.1\" has no sub-layers");
    check("layer.1", "expected \"layers\"");
    check("layers.x", "\"x\" is not an index");
    check("layers.3.layers", "expected layers.<i>");
    check("", "expected layers.<i>");
}

// The Linear keeps rows `keep` of weight and bias, the next Linear columns `keep` of its weight; with the
// dropped neurons' outgoing weights zeroed first, the model computes the same function.
void TestModelEdit::shrinkLinearOutputs() {
    Backend& be = *cpuBackend();
    auto m = branching();
    ModelEditor ed(*m);
    const std::vector<std::int64_t> keep = {0, 2, 3, 6};
    Parameter* w5 = ed.layer("layers.5").parameters()[0]; // (8, 8)
    Parameter* b5 = ed.layer("layers.5").parameters()[1]; // (8)
    Parameter* w8 = ed.layer("layers.8").parameters()[0]; // (5, 8)
    std::vector<float> w8v = be.downloadF32(w8->value);
    for (std::int64_t r = 0; r < 5; ++r)
        for (std::int64_t c : {1, 4, 5, 7}) w8v[static_cast<std::size_t>(r * 8 + c)] = 0.0f;
    be.copyFromHost(w8->value, w8v.data());
    const std::vector<float> w5v = be.downloadF32(w5->value), b5v = be.downloadF32(b5->value);
    const Tensor x = input(be, 5, 13);
    const std::vector<float> before = logits(*m, x);

    QCOMPARE(ed.shrinkLinearOutputs("layers.5", keep), std::string("layers.8"));
    const json c5 = ed.layer("layers.5").config(), c8 = ed.layer("layers.8").config();
    QCOMPARE(c5, (json{{"type", "linear"}, {"in", 8}, {"out", 4}}));
    QCOMPARE(c8, (json{{"type", "linear"}, {"in", 4}, {"out", 5}, {"bias", false}}));
    const std::vector<float> nw5 = be.downloadF32(ed.layer("layers.5").parameters()[0]->value);
    const std::vector<float> nb5 = be.downloadF32(ed.layer("layers.5").parameters()[1]->value);
    const std::vector<float> nw8 = be.downloadF32(ed.layer("layers.8").parameters()[0]->value);
    QCOMPARE(nw5.size(), std::size_t{4 * 8});
    QCOMPARE(nw8.size(), std::size_t{5 * 4});
    for (std::size_t k = 0; k < keep.size(); ++k) {
        const auto r = static_cast<std::size_t>(keep[k]);
        QCOMPARE(nb5[k], b5v[r]);
        for (std::size_t c = 0; c < 8; ++c) QCOMPARE(nw5[k * 8 + c], w5v[r * 8 + c]);
        for (std::size_t o = 0; o < 5; ++o) QCOMPARE(nw8[o * 4 + k], w8v[o * 8 + r]);
    }
    const std::vector<float> after = logits(*m, x);
    QVERIFY2(maxAbsDiff(after, before) < 1e-5, qPrintable(QString::number(maxAbsDiff(after, before))));
    QCOMPARE(ed.list()[13].outputShape, (Shape{1, 4})); // layers.6, the relu after the shrunk linear
    // The edited model trains and saves under the shrunk shapes.
    TrainParams p;
    p.epochs = 1;
    p.batchSize = 16;
    train(*m, be, images(48, 2), p);
    const std::string path = tempDir() + "/shrunk.safetensors";
    saveModel(*m, path);
    QCOMPARE(loadModel(path)->parameterCount(), m->parameterCount());
}

void TestModelEdit::shrinkInsideBlockAndErrors() {
    Backend& be = *cpuBackend();
    auto m = branching();
    ModelEditor ed(*m);
    // Inside a residual branch: linear 8 -> 6, relu, linear 6 -> 8 becomes 8 -> 3 -> 8.
    QCOMPARE(ed.shrinkLinearOutputs("layers.3.layers.0", {1, 4, 5}), std::string("layers.3.layers.2"));
    QCOMPARE(ed.layer("layers.3.layers.2").config()["in"].get<int>(), 3);
    QCOMPARE(logits(*m, input(be, 2, 14)).size(), std::size_t{10});
    const auto fails = [&](const std::string& path, const std::vector<std::int64_t>& keep, const std::string& needle) {
        const std::string err = errorOf<ConfigError>([&] { ed.shrinkLinearOutputs(path, keep); });
        QVERIFY2(err.find(needle) != std::string::npos, err.c_str());
    };
    fails("layers.2", {0}, "expected a linear layer, found relu");
    fails("layers.1", {0, 0}, "ascending, distinct");
    fails("layers.1", {8}, "in [0, 8)");
    fails("layers.1", {}, "keep at least one");
    fails("layers.4.layers.0.layers.0", {0, 1}, "no linear layer follows it"); // the gelu ends the sequence
    fails("layers.8", {0, 1}, "no linear layer follows it");
    // linear -> relu -> residual: a block stands between it and the next linear.
    fails("layers.1", {0, 1}, "a residual layer stands between");
}

QTEST_GUILESS_MAIN(TestModelEdit)
#include "test_model_edit.moc"

// Model files: save/load round trips of the zoo models (identical weights, identical logits) and
// the checks loading makes against the architecture (missing, unexpected, reshaped, retyped tensors).
#include "engine/backends/registry.h"
#include "engine/core/errors.h"
#include "engine/io/model_io.h"
#include "engine/io/pretrained.h"
#include "engine/io/safetensors.h"
#include "engine/io/zoo.h"
#include "tests/support/test_support.h"

#include <cstring>
#include <fstream>

using namespace lathe;

namespace {

using test::errorOf;

std::unique_ptr<Model> zooModel(const std::string& name, std::uint64_t seed) {
    auto m = Model::fromArchitecture(zooArchitecture(name));
    m->initialize(*cpuBackend(), seed);
    return m;
}

std::vector<float> logits(Model& m, std::int64_t batch, std::uint64_t seed) {
    Backend& be = *m.backend();
    Shape xs = {batch};
    xs.insert(xs.end(), m.inputShape().begin(), m.inputShape().end());
    if (m.inputDType() == DType::I32) { // a token model (gpt-char): ids drawn from its vocabulary
        const auto ids = test::randomLabels(static_cast<std::size_t>(numel(xs)), m.numClasses(), seed);
        return be.downloadF32(m.forward(be.uploadI32(ids, xs), ForwardContext{}));
    }
    const auto xv = test::randomVector(static_cast<std::size_t>(numel(xs)), seed, -2.0f, 2.0f);
    const Tensor y = m.forward(be.upload(xv, xs), ForwardContext{});
    return be.downloadF32(y);
}

std::string writeTensors(const std::string& name, std::vector<std::pair<std::string, Tensor>> tensors,
                         std::map<std::string, std::string> metadata) {
    const std::string path = test::tempDir() + "/" + name;
    writeSafetensors(path, tensors, metadata);
    return path;
}

// The saved tensors of a model, as host tensors (to edit before writing a broken file).
std::vector<std::pair<std::string, Tensor>> hostTensors(Model& m) {
    std::vector<std::pair<std::string, Tensor>> out;
    for (const auto& np : m.namedParameters()) out.emplace_back(np.name, m.backend()->download(np.param->value));
    return out;
}

std::map<std::string, std::string> archMeta(Model& m) { return {{kArchitectureKey, m.architecture().dump()}}; }

} // namespace

class TestModelIo : public QObject {
    Q_OBJECT

private slots:
    void roundTrip_data() {
        QTest::addColumn<QString>("zoo");
        // Pretrained models (minilm-l6-v2) bring their own weights and take token ids: test_bert saves and reloads them.
        for (const auto& n : zooNames())
            if (!findPretrained(n)) QTest::newRow(n.c_str()) << QString::fromStdString(n);
    }
    void roundTrip() {
        QFETCH(QString, zoo);
        auto m = zooModel(zoo.toStdString(), 1234);
        const std::string path = test::tempDir() + "/" + zoo.toStdString() + ".safetensors";
        saveModel(*m, path);

        const auto file = readSafetensors(path);
        QCOMPARE(file.metadata.at("format"), std::string("pt"));
        QCOMPARE(nlohmann::json::parse(file.metadata.at(kArchitectureKey)), m->architecture());

        auto loaded = loadModel(path);
        QCOMPARE(loaded->architecture(), m->architecture());
        QCOMPARE(loaded->backend()->name(), std::string("cpu"));
        auto a = m->namedParameters();
        auto b = loaded->namedParameters();
        QCOMPARE(a.size(), b.size());
        for (std::size_t i = 0; i < a.size(); ++i) {
            QCOMPARE(a[i].name, b[i].name);
            QCOMPARE(b[i].param->value.shape(), a[i].param->value.shape());
            const auto va = m->backend()->downloadF32(a[i].param->value);
            const auto vb = loaded->backend()->downloadF32(b[i].param->value);
            QVERIFY2(std::memcmp(va.data(), vb.data(), va.size() * sizeof(float)) == 0, a[i].name.c_str());
        }
        // Same weights, same arithmetic: bit-identical logits.
        const auto la = logits(*m, 8, 99);
        const auto lb = logits(*loaded, 8, 99);
        QCOMPARE(la.size(), std::size_t(8 * numel(m->outputShape()))); // (N, classes), or (N, T, V) for gpt-char
        QVERIFY(std::memcmp(la.data(), lb.data(), la.size() * sizeof(float)) == 0);
        // And the loaded model is usable for training (gradients allocated).
        for (const auto& np : loaded->namedParameters()) QVERIFY(np.param->grad.defined());
    }

    void missingTensor() {
        auto m = zooModel("mlp-784-256-128-10", 1);
        auto t = hostTensors(*m);
        t.erase(t.begin() + 1); // layers.1.bias
        const std::string path = writeTensors("missing.safetensors", t, archMeta(*m));
        const std::string msg = errorOf<DataError>([&] { loadModel(path); });
        QVERIFY2(msg.rfind(path + ": missing tensor \"" + m->namedParameters()[1].name + "\" (the architecture expects f32[",
                           0) == 0,
                 msg.c_str());
    }

    void unexpectedTensor() {
        auto m = zooModel("mlp-784-256-128-10", 2);
        auto t = hostTensors(*m);
        t.emplace_back("layers.9.weight", Tensor::host({2, 2}, DType::F32));
        const std::string path = writeTensors("unexpected.safetensors", t, archMeta(*m));
        const std::string msg = errorOf<DataError>([&] { loadModel(path); });
        QVERIFY2(msg.rfind(path + ": unexpected tensor \"layers.9.weight\"", 0) == 0, msg.c_str());
    }

    void shapeMismatch() {
        auto m = zooModel("mlp-784-256-128-10", 3);
        auto t = hostTensors(*m);
        const Shape s = t[0].second.shape();
        t[0].second = t[0].second.view({s[1], s[0]}); // transposed layout, as a non-PyTorch export might have
        const std::string path = writeTensors("shape.safetensors", t, archMeta(*m));
        const std::string msg = errorOf<DataError>([&] { loadModel(path); });
        QVERIFY2(msg == path + ": tensor \"" + t[0].first + "\" has shape " + shapeToString({s[1], s[0]}) +
                            ", the architecture expects " + shapeToString(s),
                 msg.c_str());
    }

    void dtypeMismatch() {
        auto m = zooModel("mlp-784-256-128-10", 4);
        auto t = hostTensors(*m);
        Tensor asInt = Tensor::host(t[0].second.shape(), DType::I32);
        std::memset(asInt.data(), 1, asInt.bytes());
        t[0].second = asInt;
        const std::string path = writeTensors("dtype.safetensors", t, archMeta(*m));
        const std::string msg = errorOf<DataError>([&] { loadModel(path); });
        QVERIFY2(msg.rfind(path + ": tensor \"" + t[0].first + "\" has dtype i32, the architecture expects f32", 0) == 0,
                 msg.c_str());
    }

    // f16/bf16 files load into f32 parameters, converted exactly (every half is a float).
    void halfPrecisionIsWidened_data() {
        QTest::addColumn<int>("dtype");
        QTest::newRow("f16") << int(DType::F16);
        QTest::newRow("bf16") << int(DType::BF16);
    }
    void halfPrecisionIsWidened() {
        QFETCH(int, dtype);
        const DType dt = static_cast<DType>(dtype);
        auto m = zooModel("mlp-784-256-128-10", 5);
        auto t = hostTensors(*m);
        std::vector<std::vector<float>> expected;
        for (auto& [name, tensor] : t) {
            Tensor half = Tensor::host(tensor.shape(), dt);
            const auto n = static_cast<std::size_t>(tensor.numel());
            traits(dt).fromFloat(tensor.ptr<float>(), half.data(), n);
            std::vector<float> back(n);
            traits(dt).toFloat(half.data(), back.data(), n);
            expected.push_back(back);
            tensor = half;
        }
        const std::string path = writeTensors(std::string("half-") + dtypeName(dt) + ".safetensors", t, archMeta(*m));
        auto loaded = loadModel(path);
        auto params = loaded->namedParameters();
        for (std::size_t i = 0; i < params.size(); ++i) {
            QCOMPARE(params[i].param->value.dtype(), DType::F32);
            QVERIFY(loaded->backend()->downloadF32(params[i].param->value) == expected[i]);
        }
    }

    void architectureBeside() {
        auto m = zooModel("cnn-2conv", 6);
        // A PyTorch export: tensors only, no Lathe metadata.
        const std::string path = writeTensors("export.safetensors", hostTensors(*m), {{"format", "pt"}});
        const std::string msg = errorOf<DataError>([&] { loadModel(path); });
        QVERIFY2(msg.rfind(path + ": no architecture", 0) == 0, msg.c_str());
        QVERIFY2(msg.find("architecture JSON given beside it") != std::string::npos, msg.c_str());

        const std::string archPath = test::tempDir() + "/cnn.json";
        std::ofstream(archPath) << m->architecture().dump(2);
        auto loaded = loadModel(path, archPath);
        QVERIFY(logits(*m, 3, 5) == logits(*loaded, 3, 5));

        std::ofstream(archPath) << "{\"name\": \"cnn\", \"layers\": [";
        const std::string bad = errorOf<DataError>([&] { loadModel(path, archPath); });
        QVERIFY2(bad.rfind(archPath + ": invalid architecture JSON", 0) == 0, bad.c_str());

        std::ofstream(archPath) << R"({"name": "x", "input": {"shape": [1, 28, 28]}, "classes": 10, "layers": []})";
        const std::string invalid = errorOf<ConfigError>([&] { loadModel(path, archPath); });
        QVERIFY2(invalid.rfind(archPath + ": ", 0) == 0 && invalid.find("/layers") != std::string::npos,
                 invalid.c_str());

        const std::string absent = errorOf<DataError>([&] { loadModel(path, archPath + ".nope"); });
        QVERIFY2(absent.rfind(archPath + ".nope: cannot open", 0) == 0, absent.c_str());
    }

    void architectureMetadataMustBeJson() {
        auto m = zooModel("mlp-784-256-128-10", 7);
        const std::string path =
            writeTensors("badmeta.safetensors", hostTensors(*m), {{kArchitectureKey, "{not json"}});
        const std::string msg = errorOf<DataError>([&] { loadModel(path); });
        QVERIFY2(msg.rfind(path + ": __metadata__/lathe.architecture: invalid architecture JSON", 0) == 0, msg.c_str());
    }

    void saveFailureNamesPath() {
        auto m = zooModel("mlp-784-256-128-10", 8);
        const std::string path = test::tempDir() + "/no-dir/model.safetensors";
        const std::string msg = errorOf<DataError>([&] { saveModel(*m, path); });
        QVERIFY2(msg.rfind(path + ": cannot create", 0) == 0, msg.c_str());
    }
};

QTEST_GUILESS_MAIN(TestModelIo)
#include "test_model_io.moc"

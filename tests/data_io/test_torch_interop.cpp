// Model files shared with PyTorch 1.13 (/usr/bin/python3, Debian python3-torch): a PyTorch state_dict
// saved as safetensors loads into Lathe with an architecture JSON beside it and gives PyTorch's logits;
// a Lathe-saved model loads into torch with load_state_dict(strict=True) and gives Lathe's, a structurally
// pruned one (shrunk filters and neurons, new shapes in its architecture metadata; with BatchNorm2d, its shrunk
// parameters and running statistics) included.
// Skipped when torch is not importable.
#include "engine/backends/registry.h"
#include "engine/io/model_io.h"
#include "engine/io/safetensors.h"
#include "engine/nn/model_edit.h"
#include "engine/strategies/prune/pruning.h"
#include "tests/support/test_support.h"

#include <QProcess>

#include <cmath>
#include <filesystem>

using namespace lathe;

namespace {

const char* const kPython = "/usr/bin/python3";

struct Run {
    int exitCode = -1;
    QString output;
};

Run runScript(const QStringList& args) {
    QProcess p;
    p.setProcessChannelMode(QProcess::MergedChannels);
    p.start(kPython, QStringList{QString::fromStdString(test::sourcePath("tests/tools/torch_interop.py"))} + args);
    if (!p.waitForFinished(180000)) return {-1, "timed out: " + p.readAll()};
    return {p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1, QString::fromUtf8(p.readAll())};
}

bool torchAvailable() {
    QProcess p;
    p.start(kPython, {"-c", "import torch"});
    return p.waitForFinished(120000) && p.exitStatus() == QProcess::NormalExit && p.exitCode() == 0;
}

// Lathe's logits for raw uint8 pixels (N, C, H, W), preprocessed as the model's architecture says.
std::vector<float> latheLogits(Model& m, const Tensor& pixels) {
    Dataset d;
    d.name = "interop";
    d.sampleShape = m.inputShape();
    d.numClasses = m.numClasses();
    d.pixels.assign(pixels.ptr<std::uint8_t>(), pixels.ptr<std::uint8_t>() + pixels.numel());
    d.labels.assign(static_cast<std::size_t>(pixels.dim(0)), 0);
    std::vector<std::int64_t> idx(static_cast<std::size_t>(d.size()));
    for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<std::int64_t>(i);
    std::vector<float> x(static_cast<std::size_t>(d.size() * d.sampleSize()));
    makeBatch(d, idx, m.preprocess(), x.data(), nullptr);
    Backend& be = *m.backend();
    return be.downloadF32(m.forward(be.upload(x, pixels.shape()), ForwardContext{}));
}

std::vector<float> floats(const Tensor& t) {
    return {t.ptr<float>(), t.ptr<float>() + t.numel()};
}

} // namespace

class TestTorchInterop : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() {
        if (!torchAvailable()) QSKIP("PyTorch is not importable by /usr/bin/python3 (Debian package python3-torch)");
    }

    void models_data() {
        QTest::addColumn<QString>("kind");
        QTest::newRow("mlp") << "mlp";
        QTest::newRow("cnn") << "cnn";
        QTest::newRow("grouped") << "grouped"; // grouped and depthwise convolutions (weights (K, C/groups, kh, kw))
        // BatchNorm2d in evaluation mode: weight and bias, running statistics and the i64 num_batches_tracked
        QTest::newRow("cnn-bn") << "cnn-bn";
    }
    void models() {
        QFETCH(QString, kind);
        const std::string dir = test::tempDir() + "/interop-" + kind.toStdString();
        std::filesystem::create_directories(dir);

        // PyTorch -> Lathe
        const Run exported = runScript({"export", QString::fromStdString(dir), kind});
        QVERIFY2(exported.exitCode == 0, qPrintable(exported.output));
        auto model = loadModel(dir + "/torch_model.safetensors", dir + "/architecture.json");
        const auto io = readSafetensors(dir + "/torch_io.safetensors");
        const Tensor* pixels = io.find("pixels");
        const Tensor* torchLogits = io.find("logits");
        QVERIFY(pixels && torchLogits);
        const auto ours = latheLogits(*model, *pixels);
        const double err = test::normalizedError(ours, floats(*torchLogits));
        qInfo("%s: PyTorch -> Lathe logits normalized error %.3g, max abs diff %.3g", qPrintable(kind), err,
              test::maxAbsDiff(ours, floats(*torchLogits)));
        // float32 sums in a different order (OpenBLAS vs PyTorch's kernels): ~1e-7 is typical.
        QVERIFY2(err < 1e-5, qPrintable(QString::number(err)));

        // Lathe -> PyTorch: fresh weights from Lathe, saved by Lathe, loaded by torch.
        auto fresh = Model::fromArchitecture(model->architecture());
        fresh->initialize(*cpuBackend(), 777);
        saveModel(*fresh, dir + "/lathe_model.safetensors");
        const auto freshLogits = latheLogits(*fresh, *pixels);
        Tensor logitsTensor = Tensor::host({pixels->dim(0), fresh->numClasses()}, DType::F32);
        std::copy(freshLogits.begin(), freshLogits.end(), logitsTensor.ptr<float>());
        writeSafetensors(dir + "/lathe_io.safetensors", {{"pixels", *pixels}, {"logits", logitsTensor}}, {});
        const Run checked = runScript({"check", QString::fromStdString(dir)});
        qInfo("%s: Lathe -> PyTorch %s", qPrintable(kind), qPrintable(checked.output.trimmed()));
        QVERIFY2(checked.exitCode == 0, qPrintable(checked.output));
    }

    void structurallyPrunedModelLoadsInTorch_data() {
        QTest::addColumn<QString>("kind");
        QTest::addColumn<QStringList>("paths");
        QTest::addColumn<QString>("classifierInput"); // the hidden Linear, whose inputs follow the last conv
        QTest::newRow("cnn") << "cnn" << QStringList{"layers.0", "layers.3", "layers.7"} << "layers.7";
        // Convolutions ranked by the |gamma| of the batch norm after them (bn_gamma), which shrinks with them.
        QTest::newRow("cnn-bn") << "cnn-bn" << QStringList{"layers.0", "layers.4", "layers.9"} << "layers.9";
    }
    void structurallyPrunedModelLoadsInTorch() {
        // The CNN's two convolutions and hidden Linear lose 40% of their filters and neurons (smallest L1 norm, or
        // smallest batch-norm |gamma| for a conv followed by one, as prune.structured ranks them) with their
        // consumers' inputs; torch builds the module from the saved architecture (the new shapes) and must give the
        // shrunk model's logits.
        QFETCH(QString, kind);
        QFETCH(QStringList, paths);
        QFETCH(QString, classifierInput);
        const std::string dir = test::tempDir() + "/interop-structured-" + kind.toStdString();
        std::filesystem::create_directories(dir);
        const Run exported = runScript({"export", QString::fromStdString(dir), kind});
        QVERIFY2(exported.exitCode == 0, qPrintable(exported.output));
        auto model = loadModel(dir + "/torch_model.safetensors", dir + "/architecture.json");
        ModelEditor editor(*model);
        auto weightOf = [&](const std::string& path) {
            for (Parameter* p : editor.layer(path).parameters())
                if (p->name == "weight") return cpuBackend()->downloadF32(p->value);
            return std::vector<float>();
        };
        for (const QString& qpath : paths) {
            const std::string path = qpath.toStdString();
            const std::int64_t out = editor.layer(path).config().at("out").get<std::int64_t>();
            const std::string next = "layers." + std::to_string(std::stoi(path.substr(7)) + 1);
            std::vector<double> scores;
            if (editor.layer(next).type() == "batchnorm2d") {
                for (float g : weightOf(next)) scores.push_back(std::fabs(double(g)));
            } else {
                scores = prune::rowNorms(weightOf(path), out, false);
            }
            const auto keep = prune::keptUnits(scores, 0.4, 1);
            if (editor.layer(path).type() == "conv2d") editor.shrinkConvOutputs(path, keep);
            else editor.shrinkLinearOutputs(path, keep);
        }
        QCOMPARE(editor.layer(classifierInput.toStdString()).config().at("in").get<std::int64_t>(),
                 std::int64_t(10 * 49)); // 16 -> 10 channels
        saveModel(*model, dir + "/lathe_model.safetensors");
        const auto io = readSafetensors(dir + "/torch_io.safetensors");
        const Tensor* pixels = io.find("pixels");
        QVERIFY(pixels);
        const auto ours = latheLogits(*model, *pixels);
        Tensor logitsTensor = Tensor::host({pixels->dim(0), model->numClasses()}, DType::F32);
        std::copy(ours.begin(), ours.end(), logitsTensor.ptr<float>());
        writeSafetensors(dir + "/lathe_io.safetensors", {{"pixels", *pixels}, {"logits", logitsTensor}}, {});
        const Run checked = runScript({"check", QString::fromStdString(dir)});
        qInfo("structured: Lathe -> PyTorch %s", qPrintable(checked.output.trimmed()));
        QVERIFY2(checked.exitCode == 0, qPrintable(checked.output));
    }
};

LATHE_TEST_GUILESS_MAIN(TestTorchInterop)
#include "test_torch_interop.moc"

// A transformer Lathe saves as safetensors loads into PyTorch 1.13 (/usr/bin/python3) with
// load_state_dict(strict=True) -- PyTorch's parameter names and shapes -- and gives the same logits
// (tests/tools/gpt_torch_check.py builds the module from the architecture in the file). Skipped when torch is not
// importable.
#include "engine/backends/registry.h"
#include "engine/io/model_io.h"
#include "engine/io/safetensors.h"
#include "engine/io/zoo.h"
#include "tests/support/test_support.h"

#include <QProcess>

using namespace lathe;

class TestGptTorch : public QObject {
    Q_OBJECT

private slots:
    void gptCharLoadsInPyTorch() {
        QProcess probe;
        probe.start("/usr/bin/python3", {"-c", "import torch"});
        if (!probe.waitForFinished(120000) || probe.exitCode() != 0)
            QSKIP("PyTorch is not importable by /usr/bin/python3 (Debian package python3-torch)");
        Backend& be = *cpuBackend();
        auto model = Model::fromArchitecture(zooArchitecture("gpt-char-tiny"));
        model->initialize(be, 99);
        const std::string dir = test::tempDir();
        saveModel(*model, dir + "/lathe_gpt.safetensors");
        std::vector<std::int32_t> ids;
        for (int i = 0; i < 2 * 128; ++i) ids.push_back((i * 37 + 11) % 256);
        Tensor idsHost = Tensor::host({2, 128}, DType::I32);
        std::copy(ids.begin(), ids.end(), idsHost.ptr<std::int32_t>());
        Tensor logits = be.download(model->forward(be.upload(idsHost), ForwardContext{}));
        writeSafetensors(dir + "/lathe_gpt_io.safetensors", {{"ids", idsHost}, {"logits", logits}}, {});
        QProcess p;
        p.setProcessChannelMode(QProcess::MergedChannels);
        p.start("/usr/bin/python3", {QString::fromStdString(test::sourcePath("tests/tools/gpt_torch_check.py")),
                                     QString::fromStdString(dir)});
        QVERIFY(p.waitForFinished(180000));
        const QString out = QString::fromUtf8(p.readAll());
        qInfo().noquote() << out.trimmed();
        QVERIFY2(p.exitStatus() == QProcess::NormalExit && p.exitCode() == 0, qPrintable(out));
    }
};

QTEST_GUILESS_MAIN(TestGptTorch)
#include "test_gpt_torch.moc"

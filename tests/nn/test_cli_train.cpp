// lathe-cli train / eval end to end on a Fashion-MNIST subset: JSON keys and values, --save then eval
// giving the same accuracy, --init, and bad input (unknown model lists the zoo; exit code 2).
#include "tests/support/test_support.h"

#include "engine/data/dataset.h"
#include "engine/io/zoo.h"

#include <QProcess>
#include <QtTest>

#include <filesystem>
#include <nlohmann/json.hpp>

namespace {

struct CliResult {
    int exitCode = -1;
    QString out, err;
};

CliResult runCli(const QStringList& args) {
    QProcess p;
    p.start(QString::fromLocal8Bit(qgetenv("LATHE_CLI")), args);
    CliResult r;
    if (!p.waitForFinished(600000)) return r;
    r.exitCode = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1;
    r.out = QString::fromUtf8(p.readAllStandardOutput());
    r.err = QString::fromUtf8(p.readAllStandardError());
    return r;
}

} // namespace

class TestCliTrain : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void trainSaveEval();
    void unknownModel();
};

void TestCliTrain::initTestCase() {
    if (qEnvironmentVariableIsEmpty("LATHE_CLI")) QSKIP("LATHE_CLI (path of lathe-cli) not set");
}

void TestCliTrain::trainSaveEval() {
    LATHE_REQUIRE_FASHION_MNIST();
    const QString model = QString::fromStdString(lathe::test::tempDir()) + "/mlp.safetensors";
    const auto t = runCli({"train", "--model", "mlp-784-256-128-10", "--dataset", "fashion-mnist", "--epochs", "2",
                           "--limit", "1000", "--seed", "7", "--device", "cpu", "--save", model, "--json"});
    QVERIFY2(t.exitCode == 0, qPrintable(t.err));
    QVERIFY(t.err.contains("epoch 2/2"));
    const auto j = nlohmann::json::parse(t.out.toStdString());
    for (const char* key : {"accuracy", "loss", "params", "model_bytes", "device", "epochs", "seconds"})
        QVERIFY2(j.contains(key), key);
    QCOMPARE(j["params"].get<long long>(), 235146LL);
    QCOMPARE(j["model_bytes"].get<long long>(), 235146LL * 4);
    QCOMPARE(j["device"].get<std::string>(), std::string("cpu"));
    QCOMPARE(j["epochs"].get<int>(), 2);
    QCOMPARE(j["steps"].get<int>(), 16); // 2 * ceil(1000 / 128)
    QCOMPARE(j["count"].get<int>(), 10000);
    QVERIFY(j["accuracy"].get<double>() > 0.6); // 1,000 images, 2 epochs: measured 0.71
    QVERIFY(j["seconds"].get<double>() > 0);

    const auto e = runCli({"eval", model, "--dataset", "fashion-mnist", "--device", "cpu", "--json"});
    QVERIFY2(e.exitCode == 0, qPrintable(e.err));
    const auto k = nlohmann::json::parse(e.out.toStdString());
    QCOMPARE(k["accuracy"].get<double>(), j["accuracy"].get<double>());
    QVERIFY(std::abs(k["loss"].get<double>() - j["loss"].get<double>()) < 1e-9);
    QCOMPARE(k["per_class_accuracy"].size(), std::size_t{10});

    // Continuing from the saved weights starts where they left off (not from chance).
    const auto c = runCli({"train", "--init", model, "--epochs", "1", "--limit", "500", "--max-steps", "1", "--json"});
    QVERIFY2(c.exitCode == 0, qPrintable(c.err));
    QVERIFY(nlohmann::json::parse(c.out.toStdString())["accuracy"].get<double>() > 0.6);
}

void TestCliTrain::unknownModel() {
    const auto r = runCli({"train", "--model", "vgg16", "--epochs", "1"});
    QCOMPARE(r.exitCode, 2);
    // Every zoo name, in zoo order (the list grows with the zoo).
    QString known;
    for (const auto& n : lathe::zooNames()) known += (known.isEmpty() ? "" : ", ") + QString::fromStdString(n);
    QVERIFY2(r.err.contains("unknown model \"vgg16\" (known: " + known + ")"), qPrintable(r.err));
}

LATHE_TEST_GUILESS_MAIN(TestCliTrain)
#include "test_cli_train.moc"

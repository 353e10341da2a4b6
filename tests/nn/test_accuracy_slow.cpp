// Full-accuracy training of the zoo models on Fashion-MNIST (issue 2's targets: MLP >= 0.885, CNN >= 0.910
// on the 10k test split) from scratch with a fixed seed. Minutes to tens of minutes on two cores: labelled
// `slow` so CI can leave it out (ctest -LE slow). Figures and timings: docs/benchmarks/training.md.
#include "engine/backends/registry.h"
#include "engine/nn/trainer.h"
#include "engine/io/zoo.h"
#include "tests/support/test_support.h"

#include <QtTest>

#include <filesystem>

using namespace lathe;

namespace {
// Seed 42 reaches 0.8939 after 15 epochs (MLP) and 0.9200 after 7 (CNN); docs/benchmarks/training.md has
// the whole per-epoch curve: the MLP is >= 0.885 from epoch 9 on, the CNN from epoch 6 on (and at 4).
constexpr int kMlpEpochs = 15;
constexpr int kCnnEpochs = 7;
} // namespace

class TestAccuracySlow : public QObject {
    Q_OBJECT

private slots:
    void fashionMnist_data();
    void fashionMnist();
};

void TestAccuracySlow::fashionMnist_data() {
    QTest::addColumn<QString>("model");
    QTest::addColumn<int>("epochs");
    QTest::addColumn<double>("target");
    QTest::newRow("mlp") << "mlp-784-256-128-10" << kMlpEpochs << 0.885;
    QTest::newRow("cnn") << "cnn-2conv" << kCnnEpochs << 0.910;
}

void TestAccuracySlow::fashionMnist() {
    QFETCH(QString, model);
    QFETCH(int, epochs);
    QFETCH(double, target);
    LATHE_REQUIRE_FASHION_MNIST();
    const DatasetSplits data = loadDataset("fashion-mnist");
    Backend& be = *cpuBackend();
    auto m = Model::fromArchitecture(zooArchitecture(model.toStdString()));
    m->initialize(be, 42);
    TrainParams p; // Adam, lr 1e-3, batch 128, as `lathe-cli train` defaults
    p.epochs = epochs;
    p.seed = 42;
    TrainCallbacks cb;
    cb.onEpoch = [&](const EpochReport& r) {
        qInfo("%s epoch %d/%d: train loss %.4f, %.1f s", qPrintable(model), r.epoch, epochs, r.trainLoss, r.seconds);
    };
    const TrainResult tr = train(*m, be, data.train, p, cb);
    const EvalResult ev = evaluate(*m, be, data.test);
    qInfo("%s: test accuracy %.4f, loss %.4f after %d epochs, %.0f s of training", qPrintable(model), ev.accuracy,
          ev.loss, tr.epochs, tr.seconds);
    QCOMPARE(ev.count, 10000LL);
    QVERIFY2(ev.accuracy >= target, qPrintable(QString("accuracy %1 < %2").arg(ev.accuracy).arg(target)));
}

LATHE_TEST_GUILESS_MAIN(TestAccuracySlow)
#include "test_accuracy_slow.moc"

// Datasets: Fashion-MNIST from the Debian package (skipped when it is not installed), folders laid
// out like it, the errors for missing files and unknown names, batch assembly and the seeded order.
#include "engine/core/errors.h"
#include "engine/core/rng.h"
#include "engine/data/dataset.h"
#include "tests/support/test_support.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

using namespace lathe;
namespace fs = std::filesystem;

namespace {

std::vector<std::uint8_t> makeIdx(const std::vector<std::uint32_t>& dims, const std::vector<std::uint8_t>& payload) {
    std::vector<std::uint8_t> out = {0, 0, 0x08, static_cast<std::uint8_t>(dims.size())};
    for (auto d : dims)
        for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<std::uint8_t>(d >> s));
    out.insert(out.end(), payload.begin(), payload.end());
    return out;
}

void writeFile(const std::string& path, const std::vector<std::uint8_t>& bytes, bool gz) {
    if (gz) {
        gzFile f = gzopen(path.c_str(), "wb");
        gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
        gzclose(f);
    } else {
        std::ofstream out(path, std::ios::binary);
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    }
}

struct TinySet {
    std::vector<std::uint8_t> trainPixels, testPixels;
    std::vector<std::uint8_t> trainLabels, testLabels;
};

// A folder with the four files: 12 train and 5 test images of 4 x 3 pixels, labels 0..9.
TinySet writeTinyFolder(const std::string& dir, bool gz, int labelLimit = 10) {
    fs::create_directories(dir);
    Rng rng(77);
    TinySet s;
    for (int i = 0; i < 12 * 12; ++i) s.trainPixels.push_back(static_cast<std::uint8_t>(rng.below(256)));
    for (int i = 0; i < 5 * 12; ++i) s.testPixels.push_back(static_cast<std::uint8_t>(rng.below(256)));
    for (int i = 0; i < 12; ++i) s.trainLabels.push_back(static_cast<std::uint8_t>(i % labelLimit));
    for (int i = 0; i < 5; ++i) s.testLabels.push_back(static_cast<std::uint8_t>((3 * i) % labelLimit));
    const std::string ext = gz ? ".gz" : "";
    writeFile(dir + "/train-images-idx3-ubyte" + ext, makeIdx({12, 4, 3}, s.trainPixels), gz);
    writeFile(dir + "/train-labels-idx1-ubyte" + ext, makeIdx({12}, s.trainLabels), gz);
    // Mixed: the test images always plain, so one folder holds both forms.
    writeFile(dir + "/t10k-images-idx3-ubyte", makeIdx({5, 4, 3}, s.testPixels), false);
    writeFile(dir + "/t10k-labels-idx1-ubyte" + ext, makeIdx({5}, s.testLabels), gz);
    return s;
}

using test::errorOf;

} // namespace

class TestDataset : public QObject {
    Q_OBJECT

private slots:
    void fashionMnist() {
        LATHE_REQUIRE_FASHION_MNIST();
        const DatasetSplits d = loadDataset("fashion-mnist");
        QCOMPARE(d.train.size(), std::int64_t{60000});
        QCOMPARE(d.test.size(), std::int64_t{10000});
        QCOMPARE(d.train.sampleShape, (Shape{1, 28, 28}));
        QCOMPARE(d.train.pixels.size(), std::size_t{60000 * 784});
        QCOMPARE(d.test.pixels.size(), std::size_t{10000 * 784});
        QCOMPARE(d.train.numClasses, 10);
        QCOMPARE(d.train.classNames.front(), std::string("T-shirt/top"));
        QCOMPARE(d.train.classNames.back(), std::string("Ankle boot"));
        QCOMPARE(d.train.name, std::string("fashion-mnist/train"));
        QCOMPARE(d.test.name, std::string("fashion-mnist/test"));
        QCOMPARE(d.train.sourceFiles.size(), std::size_t{2});
        // The published split is balanced: 6000 training and 1000 test images per class.
        std::vector<int> trainHist(10), testHist(10);
        for (auto l : d.train.labels) ++trainHist[static_cast<std::size_t>(l)];
        for (auto l : d.test.labels) ++testHist[static_cast<std::size_t>(l)];
        QCOMPARE(trainHist, std::vector<int>(10, 6000));
        QCOMPARE(testHist, std::vector<int>(10, 1000));
        // Real images: neither blank nor saturated on average.
        double mean = 0;
        for (std::size_t i = 0; i < 784 * 1000; ++i) mean += d.train.pixels[i];
        mean /= 784 * 1000;
        QVERIFY2(mean > 40 && mean < 110, qPrintable(QString::number(mean)));
    }

    void folder_data() {
        QTest::addColumn<bool>("gz");
        QTest::newRow("plain") << false;
        QTest::newRow("gzipped") << true;
    }
    void folder() {
        QFETCH(bool, gz);
        const std::string dir = test::tempDir() + (gz ? "/tiny-gz" : "/tiny-plain");
        const TinySet s = writeTinyFolder(dir, gz);
        const DatasetSplits d = loadDataset(dir);
        QCOMPARE(d.train.size(), std::int64_t{12});
        QCOMPARE(d.test.size(), std::int64_t{5});
        QCOMPARE(d.train.sampleShape, (Shape{1, 4, 3}));
        QVERIFY(d.train.pixels == s.trainPixels);
        QVERIFY(d.test.pixels == s.testPixels);
        for (std::size_t i = 0; i < 12; ++i) QCOMPARE(d.train.labels[i], std::int32_t{s.trainLabels[i]});
        QCOMPARE(d.train.numClasses, 10);
        QCOMPARE(d.train.name, fs::path(dir).filename().string() + "/train");
        QCOMPARE(d.train.sourceFiles[0], dir + "/train-images-idx3-ubyte" + (gz ? ".gz" : ""));
        QCOMPARE(d.test.sourceFiles[0], dir + "/t10k-images-idx3-ubyte");
    }

    void classNamesFile() {
        const std::string dir = test::tempDir() + "/named";
        writeTinyFolder(dir, false, 3);
        std::ofstream(dir + "/classes.txt") << "cat\ndog\r\nbird\n";
        const DatasetSplits d = loadDataset(dir);
        QCOMPARE(d.train.numClasses, 3);
        QCOMPARE(d.train.classNames, (std::vector<std::string>{"cat", "dog", "bird"}));
        // With two classes named, label 2 is out of range: the label file and sample are named.
        std::ofstream(dir + "/classes.txt") << "cat\ndog\n";
        const std::string msg = errorOf<DataError>([&] { loadDataset(dir); });
        QVERIFY2(msg.find(dir + "/train-labels-idx1-ubyte: label 2 of sample 2 is not below the number of classes (2)") !=
                     std::string::npos,
                 msg.c_str());
    }

    void missingFileIsNamed() {
        const std::string dir = test::tempDir() + "/missing";
        writeTinyFolder(dir, true);
        fs::remove(dir + "/t10k-labels-idx1-ubyte.gz");
        const std::string msg = errorOf<DataError>([&] { loadDataset(dir); });
        QVERIFY2(msg.rfind(dir + "/t10k-labels-idx1-ubyte.gz: missing", 0) == 0, msg.c_str());
        QVERIFY2(msg.find("dataset-fashion-mnist") == std::string::npos, msg.c_str()); // only for the default
    }

    void nonexistentPathNamesFileAndPackage() {
        const std::string dir = test::tempDir() + "/does/not/exist";
        const std::string msg = errorOf<DataError>([&] { loadDataset(dir); });
        QVERIFY2(msg.rfind(dir + "/train-images-idx3-ubyte.gz: missing", 0) == 0, msg.c_str());
        QVERIFY2(msg.find("Debian package dataset-fashion-mnist") != std::string::npos, msg.c_str());
    }

    void unknownNameListsKnown() {
        const std::string msg = errorOf<ConfigError>([&] { loadDataset("fashion-mnits"); });
        QVERIFY2(msg.find("unknown dataset \"fashion-mnits\"") != std::string::npos, msg.c_str());
        QVERIFY2(msg.find("known: fashion-mnist") != std::string::npos, msg.c_str());
    }

    void countMismatch() {
        const std::string dir = test::tempDir() + "/mismatch";
        writeTinyFolder(dir, false);
        writeFile(dir + "/train-labels-idx1-ubyte", makeIdx({11}, std::vector<std::uint8_t>(11, 1)), false);
        const std::string msg = errorOf<DataError>([&] { loadDataset(dir); });
        QVERIFY2(msg.find("holds 12 images but") != std::string::npos && msg.find("holds 11 labels") != std::string::npos,
                 msg.c_str());
    }

    void wrongRank() {
        const std::string dir = test::tempDir() + "/rank";
        writeTinyFolder(dir, false);
        writeFile(dir + "/train-images-idx3-ubyte", makeIdx({12, 12}, std::vector<std::uint8_t>(144, 3)), false);
        const std::string msg = errorOf<DataError>([&] { loadDataset(dir); });
        QVERIFY2(msg.find("train-images-idx3-ubyte: expected unsigned-byte images with 3 dimensions") != std::string::npos,
                 msg.c_str());
    }

    void headAndBatch() {
        const std::string dir = test::tempDir() + "/batch";
        const TinySet s = writeTinyFolder(dir, false);
        const DatasetSplits d = loadDataset(dir);
        const Dataset h = d.train.head(4);
        QCOMPARE(h.size(), std::int64_t{4});
        QCOMPARE(h.pixels.size(), std::size_t{4 * 12});
        QCOMPARE(d.train.head(0).size(), std::int64_t{12});
        QCOMPARE(d.train.head(100).size(), std::int64_t{12});

        const InputPreprocess pre{1.0f / 255.0f, 0.2860f, 0.3530f};
        const std::vector<std::int64_t> idx = {7, 0, 11};
        std::vector<float> x(3 * 12);
        std::vector<std::int32_t> y(3);
        makeBatch(d.train, idx, pre, x.data(), y.data());
        for (std::size_t b = 0; b < idx.size(); ++b) {
            QCOMPARE(y[b], std::int32_t{s.trainLabels[static_cast<std::size_t>(idx[b])]});
            for (std::size_t k = 0; k < 12; ++k) {
                const float p = s.trainPixels[static_cast<std::size_t>(idx[b]) * 12 + k];
                QCOMPARE(x[b * 12 + k], (p * pre.scale - pre.mean) / pre.std);
            }
        }
        const std::vector<std::int64_t> bad = {12};
        QVERIFY(errorOf<DataError>([&] { makeBatch(d.train, bad, pre, x.data(), y.data()); }).find("out of range") !=
                std::string::npos);
    }

    void batchIterator_data() {
        QTest::addColumn<int>("size");
        QTest::addColumn<int>("batch");
        QTest::addColumn<bool>("dropLast");
        QTest::addColumn<int>("batches");
        QTest::addColumn<int>("lastBatch");
        QTest::newRow("exact") << 96 << 32 << false << 3 << 32;
        QTest::newRow("partial kept") << 100 << 32 << false << 4 << 4;
        QTest::newRow("partial dropped") << 100 << 32 << true << 3 << 32;
        QTest::newRow("batch larger than data") << 10 << 32 << false << 1 << 10;
        QTest::newRow("batch larger, dropped") << 10 << 32 << true << 0 << 0;
    }
    void batchIterator() {
        QFETCH(int, size);
        QFETCH(int, batch);
        QFETCH(bool, dropLast);
        QFETCH(int, batches);
        QFETCH(int, lastBatch);
        BatchIterator it(size, batch, true, 42, dropLast);
        QCOMPARE(it.batchesPerEpoch(), std::int64_t{batches});
        std::vector<std::int64_t> seen;
        std::span<const std::int64_t> b;
        int count = 0;
        std::size_t last = 0;
        while (it.next(b)) {
            ++count;
            last = b.size();
            seen.insert(seen.end(), b.begin(), b.end());
        }
        QCOMPARE(count, batches);
        QCOMPARE(int(last), lastBatch);
        // Every index at most once; all of them when nothing is dropped.
        std::set<std::int64_t> unique(seen.begin(), seen.end());
        QCOMPARE(unique.size(), seen.size());
        if (!dropLast) QCOMPARE(int(seen.size()), size);
        for (auto i : seen) QVERIFY(i >= 0 && i < size);
    }

    void shuffleIsSeededPerEpoch() {
        auto order = [](std::uint64_t seed, int epoch, bool shuffle) {
            BatchIterator it(1000, 64, shuffle, seed);
            it.startEpoch(epoch);
            std::vector<std::int64_t> out;
            std::span<const std::int64_t> b;
            while (it.next(b)) out.insert(out.end(), b.begin(), b.end());
            return out;
        };
        const auto a = order(42, 0, true);
        QCOMPARE(order(42, 0, true), a);      // same (seed, epoch): same order
        QVERIFY(order(42, 1, true) != a);     // next epoch: another order
        QVERIFY(order(43, 0, true) != a);     // another seed: another order
        std::vector<std::int64_t> identity(1000);
        for (int i = 0; i < 1000; ++i) identity[static_cast<std::size_t>(i)] = i;
        QVERIFY(a != identity);
        QCOMPARE(order(42, 3, false), identity);
        auto sorted = a;
        std::sort(sorted.begin(), sorted.end());
        QCOMPARE(sorted, identity);
        // Restarting an epoch replays it.
        BatchIterator it(1000, 64, true, 42);
        it.startEpoch(5);
        std::span<const std::int64_t> first;
        it.next(first);
        const std::vector<std::int64_t> firstCopy(first.begin(), first.end());
        it.startEpoch(5);
        std::span<const std::int64_t> again;
        it.next(again);
        QVERIFY(std::equal(again.begin(), again.end(), firstCopy.begin(), firstCopy.end()));
    }

    void badBatchSize() {
        QVERIFY(errorOf<ConfigError>([] { BatchIterator(10, 0, false, 1); }).find("batch size must be positive") !=
                std::string::npos);
    }
};

LATHE_TEST_GUILESS_MAIN(TestDataset)
#include "test_dataset.moc"

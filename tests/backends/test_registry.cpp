// The backend registry on any machine: the CPU is always there, the CUDA entry is either a usable
// device or says why not, "auto" falls back to the CPU, and asking for a missing CUDA device is a
// BackendError carrying the runtime's reason. Nothing here may crash on a machine without a driver.
#include "engine/backends/registry.h"
#include "engine/core/errors.h"
#include "tests/support/test_support.h"

#include <QtTest>

using namespace lathe;

class TestRegistry : public QObject {
    Q_OBJECT

private:
    static const BackendEntry* cudaEntry(const std::vector<BackendEntry>& entries) {
        for (const auto& e : entries)
            if (e.info.backend == "cuda") return &e;
        return nullptr;
    }

private slots:
    void cpuIsAlwaysAvailable() {
        const auto entries = probeBackends();
        QVERIFY(!entries.empty());
        QCOMPARE(QString::fromStdString(entries.front().info.backend), QStringLiteral("cpu"));
        QVERIFY(entries.front().info.available);
        QVERIFY(entries.front().info.threads > 0);
    }

    void cudaEntryIsUsableOrSaysWhy() {
        const auto entries = probeBackends();
        const BackendEntry* cuda = cudaEntry(entries);
        QVERIFY2(cuda, "the registry lists no cuda entry at all");
        if (cuda->info.available) {
            QVERIFY(!cuda->info.name.empty());
            QVERIFY(cuda->info.memoryTotalBytes > 0);
            QVERIFY(cuda->info.computeCapabilityMajor > 0);
        } else {
            QVERIFY2(!cuda->info.reason.empty(), "an unavailable cuda entry must say why");
            qInfo("cuda unavailable: %s", cuda->info.reason.c_str());
        }
    }

    void autoPicksCudaOnlyWhenPresent() {
        const auto entries = probeBackends();
        const BackendEntry* cuda = cudaEntry(entries);
        QVERIFY(cuda);
        auto be = backendFor("auto");
        QVERIFY(be);
        if (cuda->info.available)
            QCOMPARE(be->device().kind, DeviceKind::Cuda);
        else
            QCOMPARE(QString::fromStdString(be->name()), QStringLiteral("cpu"));
        QCOMPARE(backendFor("cpu").get(), cpuBackend().get());
    }

    void missingCudaThrowsWithTheReason_data() {
        QTest::addColumn<QString>("device");
        QTest::newRow("cuda") << "cuda";
        QTest::newRow("cuda:0") << "cuda:0";
    }
    void missingCudaThrowsWithTheReason() {
        QFETCH(QString, device);
        const auto entries = probeBackends();
        const BackendEntry* cuda = cudaEntry(entries);
        QVERIFY(cuda);
        if (cuda->info.available) QSKIP("a CUDA device is present: nothing is missing");
        try {
            backendFor(device.toStdString());
            QFAIL("backendFor did not throw for a missing CUDA device");
        } catch (const BackendError& e) {
            const std::string msg = e.what();
            QVERIFY2(msg.find(cuda->info.reason) != std::string::npos, msg.c_str());
            QVERIFY2(msg.find(device.toStdString()) != std::string::npos, msg.c_str());
        }
    }

    void badNamesAreConfigErrors_data() {
        QTest::addColumn<QString>("device");
        QTest::newRow("unknown") << "tpu";
        QTest::newRow("empty index") << "cuda:";
        QTest::newRow("not a number") << "cuda:x";
    }
    void badNamesAreConfigErrors() {
        QFETCH(QString, device);
        const auto entries = probeBackends();
        const BackendEntry* cuda = cudaEntry(entries);
        QVERIFY(cuda);
        // With no CUDA device "cuda:" names fail on availability first; either way it is an engine error.
        if (device == "tpu" || cuda->info.available) {
            QVERIFY_THROWS_EXCEPTION(ConfigError, backendFor(device.toStdString()));
        } else {
            QVERIFY_THROWS_EXCEPTION(Error, backendFor(device.toStdString()));
        }
    }

    void probingRepeatedlyIsStable() {
        // The runtime caches its initialisation failure; probing again must give the same answer.
        const auto a = probeBackends();
        const auto b = probeBackends();
        QCOMPARE(a.size(), b.size());
        for (std::size_t i = 0; i < a.size(); ++i) {
            QCOMPARE(a[i].info.available, b[i].info.available);
            QCOMPARE(QString::fromStdString(a[i].info.reason), QString::fromStdString(b[i].info.reason));
        }
    }

    void cpuBackendWorksWithoutAGpu() {
        // The CPU path end to end: upload, an op, download.
        auto be = backendFor("auto");
        auto cpu = cpuBackend();
        const auto values = test::randomVector(12, 7);
        Tensor x = cpu->upload(values, {3, 4});
        Tensor y = cpu->empty({3, 4});
        cpu->relu(x, y);
        const auto out = cpu->downloadF32(y);
        for (std::size_t i = 0; i < values.size(); ++i) QCOMPARE(out[i], values[i] > 0 ? values[i] : 0.0f);
        QVERIFY(be);
    }
};

QTEST_GUILESS_MAIN(TestRegistry)
#include "test_registry.moc"

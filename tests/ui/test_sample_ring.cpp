// SampleRing: order and content without overflow, drop-oldest accounting on overflow, and a
// two-thread stress test where every sample is either delivered once, in order, or counted dropped.
#include "engine/experiment/sample_ring.h"

#include <QtTest>

#include <atomic>
#include <thread>

using lathe::MetricSample;
using lathe::SampleRing;

class TestSampleRing : public QObject {
    Q_OBJECT
private slots:
    void capacityRoundsUpToPowerOfTwo() {
        SampleRing ring(1000);
        QCOMPARE(ring.capacity(), std::size_t(1024));
    }

    void deliversInOrderWithoutOverflow() {
        SampleRing ring(64);
        for (int i = 0; i < 50; ++i) {
            ring.push(lathe::makeSample(7, "latency_ms/b1", i, i * 0.5, 1.0 + i * 0.25));
        }
        QCOMPARE(ring.sizeApprox(), std::size_t(50));
        std::vector<MetricSample> out;
        QCOMPARE(ring.drain(out, 20), std::size_t(20));
        QCOMPARE(ring.drain(out), std::size_t(30));
        QCOMPARE(out.size(), std::size_t(50));
        for (int i = 0; i < 50; ++i) {
            QCOMPARE(out[i].step, std::int64_t(i));
            QCOMPARE(out[i].value, 1.0 + i * 0.25);
            QCOMPARE(QString::fromLatin1(out[i].series), QStringLiteral("latency_ms/b1"));
        }
        QCOMPARE(ring.dropped(), std::uint64_t(0));
        QCOMPARE(ring.drain(out), std::size_t(0));
    }

    void overflowDropsTheOldest() {
        SampleRing ring(16);
        for (int i = 0; i < 40; ++i) {
            ring.push(lathe::makeSample(1, "loss", i, i, 2.0 - i * 0.01));
        }
        QCOMPARE(ring.dropped(), std::uint64_t(24));
        std::vector<MetricSample> out;
        QCOMPARE(ring.drain(out), std::size_t(16));
        QCOMPARE(out.front().step, std::int64_t(24)); // the newest 16 survive
        QCOMPARE(out.back().step, std::int64_t(39));
    }

    void seriesNameIsTruncatedNotOverrun() {
        MetricSample s;
        s.setSeries(std::string(100, 'x'));
        QCOMPARE(s.seriesName().size(), sizeof(s.series) - 1);
    }

    void stressTwoThreads_data() {
        QTest::addColumn<int>("capacity");
        QTest::addColumn<int>("consumerPauseUs");
        QTest::newRow("roomy ring, fast consumer") << 65536 << 0;
        QTest::newRow("small ring, slow consumer (overflow)") << 64 << 50;
        QTest::newRow("tiny ring, busy consumer") << 2 << 0;
    }
    void stressTwoThreads() {
        QFETCH(int, capacity);
        QFETCH(int, consumerPauseUs);
        const std::int64_t kTotal = 2'000'000;
        SampleRing ring(static_cast<std::size_t>(capacity));
        std::atomic<bool> done{false};
        std::thread producer([&] {
            for (std::int64_t i = 0; i < kTotal; ++i) {
                // value and tMs are derived from the step, so a torn copy would be detected.
                ring.push(lathe::makeSample(i * 3 + 1, "latency_ms/b64", i, static_cast<double>(i) * 2.0,
                                            static_cast<double>(i) * 0.5 + 0.25));
            }
            done.store(true, std::memory_order_release);
        });
        std::vector<MetricSample> out;
        std::int64_t received = 0, lastStep = -1;
        bool ok = true;
        QString problem;
        auto consume = [&] {
            out.clear();
            ring.drain(out, 4096);
            for (const MetricSample& s : out) {
                if (s.step <= lastStep || s.runId != s.step * 3 + 1 || s.tMs != s.step * 2.0 ||
                    s.value != s.step * 0.5 + 0.25 || s.seriesName() != "latency_ms/b64") {
                    ok = false;
                    problem = QStringLiteral("bad sample after step %1: step %2").arg(lastStep).arg(s.step);
                }
                lastStep = s.step;
                ++received;
            }
        };
        while (!done.load(std::memory_order_acquire)) {
            consume();
            if (consumerPauseUs > 0) {
                std::this_thread::sleep_for(std::chrono::microseconds(consumerPauseUs));
            }
        }
        producer.join();
        for (std::int64_t before = -1; before != received;) {
            before = received;
            consume();
        }
        QVERIFY2(ok, qPrintable(problem));
        QCOMPARE(static_cast<std::uint64_t>(received) + ring.dropped(), static_cast<std::uint64_t>(kTotal));
        QCOMPARE(lastStep, kTotal - 1); // the newest sample always survives
        qInfo("capacity %zu: received %lld, dropped %llu", ring.capacity(), static_cast<long long>(received),
              static_cast<unsigned long long>(ring.dropped()));
        if (capacity == 64) {
            QVERIFY(ring.dropped() > 0); // the slow consumer case must exercise the overflow path
        }
    }
};

QTEST_GUILESS_MAIN(TestSampleRing)
#include "test_sample_ring.moc"

// Deciding between runs: the Pareto front on hand-made point sets (ties, duplicates, one point, all
// dominated but one, NaN, mixed directions) and the latency significance test on synthetic samples with
// known shifts (a 5% shift at n = 200 with low noise is found; identical distributions are called
// different in about 5% of seeds at most), plus Mann-Whitney U and its p-value on small samples worked by
// hand (scipy.stats.mannwhitneyu's asymptotic method: tie-corrected variance, continuity correction).
#include "engine/core/errors.h"
#include "engine/core/rng.h"
#include "engine/measure/comparison.h"

#include <QtTest>

#include <cmath>

using namespace lathe;

namespace {
constexpr MetricDirection kHigher = MetricDirection::HigherIsBetter;
constexpr MetricDirection kLower = MetricDirection::LowerIsBetter;

std::vector<std::size_t> front(const std::vector<std::vector<double>>& points, std::vector<MetricDirection> dirs) {
    return paretoFront(points, dirs);
}

// Latency-like samples: median `median` ms, multiplicative log-normal noise of `sigma`, and 2% of the
// repeats hit by a 3x stall (a scheduler hiccup), as timed forwards look on a busy machine.
std::vector<double> latencies(Rng& rng, int n, double median, double sigma) {
    std::vector<double> v;
    for (int i = 0; i < n; ++i) {
        // Box-Muller from two uniforms in (0, 1].
        const double u1 = 1.0 - rng.uniform(), u2 = rng.uniform();
        const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
        double x = median * std::exp(sigma * z);
        if (rng.uniform() < 0.02) x *= 3.0;
        v.push_back(x);
    }
    return v;
}
} // namespace

class TestComparison : public QObject {
    Q_OBJECT

private slots:
    void paretoFrontOfHandMadeSets() {
        // accuracy (higher), p99 latency (lower)
        const std::vector<std::vector<double>> points{
            {0.88, 1.0}, // 0: front (most accurate)
            {0.87, 0.5}, // 1: front
            {0.86, 0.6}, // 2: dominated by 1
            {0.80, 0.2}, // 3: front (fastest)
            {0.87, 0.5}, // 4: duplicate of 1: stays
            {0.87, 0.7}, // 5: tie in accuracy with 1, slower: dominated
        };
        QCOMPARE(front(points, {kHigher, kLower}), (std::vector<std::size_t>{0, 1, 3, 4}));
        // The same points judged the other way round on latency.
        QCOMPARE(front(points, {kHigher, kHigher}), (std::vector<std::size_t>{0}));
        QCOMPARE(front({{0.5, 3.0}}, {kHigher, kLower}), (std::vector<std::size_t>{0}));
        QCOMPARE(front({}, {kHigher, kLower}), (std::vector<std::size_t>{}));
        // All dominated but one.
        QCOMPARE(front({{0.1, 9}, {0.2, 8}, {0.9, 1}, {0.3, 7}}, {kHigher, kLower}), (std::vector<std::size_t>{2}));
        // Identical points: none dominates another.
        QCOMPARE(front({{1, 1}, {1, 1}, {1, 1}}, {kHigher, kLower}), (std::vector<std::size_t>{0, 1, 2}));
        // A NaN (or a missing value) leaves the point out instead of letting it dominate or be dominated.
        QCOMPARE(front({{0.9, std::nan("")}, {0.5, 1.0}, {0.4}}, {kHigher, kLower}), (std::vector<std::size_t>{1}));
        // Three objectives: accuracy, latency, size.
        QCOMPARE(front({{0.88, 1.0, 900}, {0.87, 0.6, 470}, {0.87, 0.6, 940}, {0.85, 0.9, 240}}, {kHigher, kLower, kLower}),
                 (std::vector<std::size_t>{0, 1, 3}));
        QVERIFY_THROWS_EXCEPTION(ConfigError, front({{1, 2}}, {kHigher, MetricDirection::Neutral}));
    }

    void mannWhitneyMatchesTheWorkedExamples() {
        // No overlap: U = 25, z = (25 - 12.5 - 0.5) / sqrt(25 / 12 * 11).
        const std::vector<double> a{1, 2, 3, 4, 5}, b{6, 7, 8, 9, 10};
        LatencyDifference d = compareLatency(a, b);
        QCOMPARE(d.mannWhitneyU, 25.0);
        QVERIFY(std::fabs(d.pValue - 0.012185780355344818) < 1e-12);
        QCOMPARE(d.medianA, 3.0);
        QCOMPARE(d.medianB, 8.0);
        QCOMPARE(d.delta, 5.0);
        // Ties: mid-ranks 3 and 6, U = 13, variance 16 / 12 * (9 - 48 / 56).
        d = compareLatency(std::vector<double>{1, 2, 2, 3}, std::vector<double>{2, 3, 3, 4});
        QCOMPARE(d.mannWhitneyU, 13.0);
        QVERIFY(std::fabs(d.pValue - 0.17203370892182296) < 1e-12);
        QCOMPARE(d.medianA, 2.0);
        QCOMPARE(d.medianB, 3.0);
        // Every value equal: nothing to tell apart.
        d = compareLatency(std::vector<double>{2, 2, 2}, std::vector<double>{2, 2});
        QCOMPARE(d.pValue, 1.0);
        QVERIFY(!d.significant);
        QCOMPARE(d.ciLow, 0.0);
        QCOMPARE(d.ciHigh, 0.0);
        QVERIFY_THROWS_EXCEPTION(ConfigError, compareLatency(std::vector<double>{1}, b));
    }

    void bootstrapIsReproducible() {
        Rng rng(3);
        const auto a = latencies(rng, 50, 1.0, 0.05), b = latencies(rng, 50, 1.02, 0.05);
        const auto d1 = compareLatency(a, b, 7), d2 = compareLatency(a, b, 7);
        QCOMPARE(d1.ciLow, d2.ciLow);
        QCOMPARE(d1.ciHigh, d2.ciHigh);
        QVERIFY(d1.ciLow <= d1.delta && d1.delta <= d1.ciHigh);
    }

    void findsAFivePercentShiftAtN200() {
        // Low noise (2% spread): every one of 50 seeds finds the 5% slowdown, in the right direction.
        int found = 0, pFound = 0;
        for (std::uint64_t seed = 1; seed <= 50; ++seed) {
            Rng rng(seed);
            const auto a = latencies(rng, 200, 1.00, 0.02), b = latencies(rng, 200, 1.05, 0.02);
            const auto d = compareLatency(a, b, seed, 1000);
            found += d.significant && d.ciLow > 0 ? 1 : 0;
            pFound += d.pValue < 0.05 ? 1 : 0;
            QVERIFY(std::fabs(d.relative - 0.05) < 0.02);
        }
        QCOMPARE(found, 50);
        QCOMPARE(pFound, 50);
    }

    void identicalDistributionsAreRarelyCalledDifferent() {
        // Same distribution, independent draws: at 95% confidence about 5% of the seeds may look
        // different by chance; more than 8% of 400 would mean the interval is too narrow.
        int ciFalse = 0, pFalse = 0;
        const int seeds = 400;
        for (int seed = 1; seed <= seeds; ++seed) {
            Rng rng(1000 + static_cast<std::uint64_t>(seed));
            const auto a = latencies(rng, 200, 1.0, 0.05), b = latencies(rng, 200, 1.0, 0.05);
            const auto d = compareLatency(a, b, static_cast<std::uint64_t>(seed), 1000);
            ciFalse += d.significant ? 1 : 0;
            pFalse += d.pValue < 0.05 ? 1 : 0;
        }
        qInfo("identical distributions called different: bootstrap CI %d / %d, Mann-Whitney p < 0.05 %d / %d", ciFalse,
              seeds, pFalse, seeds);
        QVERIFY2(ciFalse <= seeds * 8 / 100, qPrintable(QString::number(ciFalse)));
        QVERIFY2(pFalse <= seeds * 8 / 100, qPrintable(QString::number(pFalse)));
    }
};

QTEST_APPLESS_MAIN(TestComparison)
#include "test_comparison.moc"

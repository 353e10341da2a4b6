// The 2:4 weight format (sparse24.h) and the CPU backend's spmm_24: the layout locked on a hand-packed
// matrix, pack/unpack exact on random 2:4 matrices with partial groups, refusal of a group with 3+
// nonzeros naming its row and group, and the kernel against a double-precision reference and the dense
// GEMM on odd shapes (columns not a multiple of 4, batches on both sides of the gather/tiled switch).
#include "engine/backends/cpu/cpu_backend.h"
#include "engine/backends/sparse24.h"
#include "engine/core/errors.h"
#include "tests/support/test_support.h"

#include <QtTest>

using namespace lathe;
using lathe::test::maxAbsDiff;
using lathe::test::normalizedError;
using lathe::test::randomSparse24;
using lathe::test::randomVector;

namespace {

// f32 results against a double reference: each output sums at most in / 2 products, so the error
// grows like sqrt(in / 2) * 2^-24 (below 2e-6 for in = 787); 1e-5 leaves a wide margin while any
// wrong position or value moves the normalized error far above it.
constexpr double kSpmm24Tol = 1e-5;

} // namespace

class TestSparse24 : public QObject {
    Q_OBJECT
    std::shared_ptr<Backend> m_be = makeCpuBackend(2);

private slots:
    void layoutOfAHandPackedMatrix() {
        // cols 11: groups of 4, 4 and 3 columns; 2 metadata bytes per row.
        const std::vector<float> dense{0, 1.5f, 0, -2, /**/ 3, 0, 0, 0, /**/ 0, 0, 0};
        const HostSparse24 s = sparse24FromDense(dense.data(), 1, 11);
        // group 0: positions 1, 3; group 1: the 3 at position 0, padded at 1; group 2: empty, 0 and 1.
        QCOMPARE(s.values, (std::vector<float>{1.5f, -2, 3, 0, 0, 0}));
        QCOMPARE(s.meta, (std::vector<std::uint8_t>{0x4d, 0x04}));
        QCOMPARE(s.bytes(), std::int64_t(6 * 4 + 2));
        QCOMPARE(sparse24ToDense(s), dense);
        // A width-1 last group names column 0 of the group twice.
        const std::vector<float> one{0, 0, 0, 0, 7};
        const HostSparse24 t = sparse24FromDense(one.data(), 1, 5);
        QCOMPARE(t.values, (std::vector<float>{0, 0, 7, 0}));
        QCOMPARE(t.meta, (std::vector<std::uint8_t>{0x04}));
    }

    void roundTripIsExact_data() {
        QTest::addColumn<int>("rows");
        QTest::addColumn<int>("cols");
        QTest::newRow("784x256 (the MLP's first layer)") << 256 << 784;
        QTest::newRow("rows 1, cols 1") << 1 << 1;
        QTest::newRow("rows 7, cols 13") << 7 << 13;
        QTest::newRow("rows 130, cols 30") << 130 << 30;
        QTest::newRow("rows 3, cols 787") << 3 << 787;
    }
    void roundTripIsExact() {
        QFETCH(int, rows);
        QFETCH(int, cols);
        const auto w = randomSparse24(rows, cols, 51);
        QVERIFY(isSparse24(w.data(), rows, cols));
        const HostSparse24 s = sparse24FromDense(w.data(), rows, cols);
        const std::int64_t groups = (cols + 3) / 4;
        QCOMPARE(std::int64_t(s.values.size()), rows * 2 * groups);
        QCOMPARE(std::int64_t(s.meta.size()), rows * ((groups + 1) / 2));
        QCOMPARE(s.bytes(), std::int64_t(s.values.size() * sizeof(float) + s.meta.size()));
        QCOMPARE(sparse24ToDense(s), w);
    }

    void refusesThreeNonzerosInAGroup() {
        auto w = randomSparse24(4, 10, 52);
        // Row 2, group 1 (columns 4..7): three nonzeros.
        std::fill(w.begin() + 2 * 10 + 4, w.begin() + 2 * 10 + 8, 0.0f);
        w[2 * 10 + 4] = w[2 * 10 + 5] = w[2 * 10 + 7] = 0.5f;
        QVERIFY(!isSparse24(w.data(), 4, 10));
        const std::string msg = lathe::test::errorOf<BackendError>([&] { sparse24FromDense(w.data(), 4, 10); });
        QVERIFY2(msg.find("row 2, group 1 (columns 4..7) has 3 nonzeros") != std::string::npos, msg.c_str());
        // A full last, partial group (3 of 3 columns) is refused as well.
        std::vector<float> tail(7, 0.0f);
        tail[4] = tail[5] = tail[6] = 1.0f;
        const std::string tailMsg =
            lathe::test::errorOf<BackendError>([&] { sparse24FromDense(tail.data(), 1, 7); });
        QVERIFY2(tailMsg.find("row 0, group 1 (columns 4..6)") != std::string::npos, tailMsg.c_str());
    }

    void spmm24MatchesTheDenseReference_data() {
        QTest::addColumn<int>("n");
        QTest::addColumn<int>("in");
        QTest::addColumn<int>("out");
        QTest::newRow("b1 784->256") << 1 << 784 << 256;
        QTest::newRow("b256 784->256") << 256 << 784 << 256;
        QTest::newRow("b1 256->128") << 1 << 256 << 128;
        QTest::newRow("b256 256->128") << 256 << 256 << 128;
        QTest::newRow("b3 13->7 (gather, partial group of 1)") << 3 << 13 << 7;
        QTest::newRow("b17 30->130 (tiled, partial tile and group of 2)") << 17 << 30 << 130;
        QTest::newRow("b256 787->1 (one row, partial group of 3)") << 256 << 787 << 1;
        QTest::newRow("b4 786->7 (last gathered batch)") << 4 << 786 << 7;
        QTest::newRow("b5 785->130 (first tiled batch)") << 5 << 785 << 130;
        QTest::newRow("b17 1->7 (one column)") << 17 << 1 << 7;
        QTest::newRow("b1 2->1") << 1 << 2 << 1;
    }
    void spmm24MatchesTheDenseReference() {
        QFETCH(int, n);
        QFETCH(int, in);
        QFETCH(int, out);
        const auto w = randomSparse24(out, in, 53); // (out, in)
        const HostSparse24 s = sparse24FromDense(w.data(), out, in);
        const std::int64_t groups = (in + 3) / 4;
        const auto vx = randomVector(static_cast<std::size_t>(n * in), 54); // (N, in)
        Tensor x = m_be->upload(vx, {n, in});
        Tensor y = m_be->upload(randomVector(static_cast<std::size_t>(n * out), 55), {n, out}); // overwritten
        m_be->spmm24(x, m_be->upload(s.values, {out, 2 * groups}), m_be->uploadU8(s.meta, {out, (groups + 1) / 2}),
                     y);
        Tensor yDense = m_be->empty({n, out});
        m_be->gemm(x, Trans::No, m_be->upload(w, {out, in}), Trans::Yes, yDense);
        std::vector<float> ref(static_cast<std::size_t>(n * out));
        for (int r = 0; r < n; ++r)
            for (int o = 0; o < out; ++o) {
                double acc = 0;
                for (int j = 0; j < in; ++j) acc += double(vx[r * in + j]) * w[o * in + j];
                ref[r * out + o] = static_cast<float>(acc);
            }
        const auto got = m_be->downloadF32(y), dense = m_be->downloadF32(yDense);
        const double eRef = normalizedError(got, ref), eDense = normalizedError(got, dense);
        QVERIFY2(eRef <= kSpmm24Tol, qPrintable(QString("vs reference: %1").arg(eRef)));
        QVERIFY2(eDense <= kSpmm24Tol, qPrintable(QString("vs dense gemm: %1").arg(eDense)));
        QVERIFY(maxAbsDiff(got, std::vector<float>(got.size(), 0.0f)) > 0); // not a zero result passing by luck
    }

    void spmm24RejectsBadInput() {
        // in = 6: groups of 4 and 2, one metadata byte per row; out = 2.
        Tensor x = m_be->upload(randomVector(12, 56), {2, 6});
        Tensor values = m_be->upload(randomVector(8, 57), {2, 4});
        Tensor y = m_be->empty({2, 2});
        auto run = [&](std::vector<std::uint8_t> meta, const Tensor& v, Tensor& yy) {
            m_be->spmm24(x, v, m_be->uploadU8(meta, {2, 1}), yy);
        };
        run({0x4d, 0x4d}, values, y); // well-formed: the last group (width 2) uses positions 0 and 1
        auto expectError = [&](const char* what, const char* needle, auto fn) {
            const std::string msg = lathe::test::errorOf<BackendError>(fn);
            QVERIFY2(msg.find("spmm_24") != std::string::npos && msg.find(needle) != std::string::npos,
                     qPrintable(QString(what) + ": " + QString::fromStdString(msg)));
        };
        expectError("a position past the last column", "row 1, group 1", [&] { run({0x4d, 0x8d}, values, y); });
        Tensor narrow = m_be->upload(randomVector(6, 58), {2, 3});
        expectError("values of the wrong width", "values", [&] { run({0x4d, 0x4d}, narrow, y); });
        Tensor wrongY = m_be->empty({2, 3});
        expectError("a y of the wrong shape", "y", [&] { run({0x4d, 0x4d}, values, wrongY); });
        expectError("metadata of the wrong dtype", "meta",
                    [&] { m_be->spmm24(x, values, m_be->upload(std::vector<float>{0, 0}, {2, 1}), y); });
    }
};

QTEST_GUILESS_MAIN(TestSparse24)
#include "test_sparse24.moc"

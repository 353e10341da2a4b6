// The IDX reader on valid files (plain and gzipped, every element type) and on the malformed files
// committed under tests/data/malformed/idx/: each must be a DataError naming the file and the problem.
#include "engine/core/errors.h"
#include "engine/core/rng.h"
#include "engine/data/idx.h"
#include "tests/support/test_support.h"

#include <zlib.h>

#include <fstream>
#include <iterator>

using namespace lathe;

namespace {

std::string malformed(const std::string& name) { return test::sourcePath("tests/data/malformed/idx/" + name); }

using test::fileBytes;

std::vector<std::uint8_t> makeIdx(std::uint8_t type, const std::vector<std::uint32_t>& dims,
                                  const std::vector<std::uint8_t>& payload) {
    std::vector<std::uint8_t> out = {0, 0, type, static_cast<std::uint8_t>(dims.size())};
    for (auto d : dims)
        for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<std::uint8_t>(d >> s));
    out.insert(out.end(), payload.begin(), payload.end());
    return out;
}

std::vector<std::uint8_t> randomBytes(std::size_t n, std::uint64_t seed) {
    Rng rng(seed);
    std::vector<std::uint8_t> v(n);
    for (auto& b : v) b = static_cast<std::uint8_t>(rng.next() >> 56);
    return v;
}

void writePlain(const std::string& path, const std::vector<std::uint8_t>& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void writeGz(const std::string& path, const std::vector<std::uint8_t>& bytes) {
    gzFile f = gzopen(path.c_str(), "wb");
    QVERIFY(f);
    QCOMPARE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
    gzclose(f);
}

template <class Fn>
std::string dataErrorOf(Fn fn) {
    return test::errorOf<DataError>(fn);
}

} // namespace

class TestIdx : public QObject {
    Q_OBJECT

private slots:
    void readsEveryElementType_data() {
        QTest::addColumn<int>("type");
        QTest::addColumn<int>("elemBytes");
        QTest::addColumn<bool>("gzipped");
        const std::pair<int, int> types[] = {{0x08, 1}, {0x09, 1}, {0x0B, 2}, {0x0C, 4}, {0x0D, 4}, {0x0E, 8}};
        for (auto [type, bytes] : types)
            for (bool gz : {false, true})
                QTest::addRow("type %02x %s", type, gz ? "gz" : "plain") << type << bytes << gz;
    }
    void readsEveryElementType() {
        QFETCH(int, type);
        QFETCH(int, elemBytes);
        QFETCH(bool, gzipped);
        const std::vector<std::uint32_t> dims = {7, 5, 3};
        const auto payload = randomBytes(7 * 5 * 3 * static_cast<std::size_t>(elemBytes), 100 + type);
        const auto bytes = makeIdx(static_cast<std::uint8_t>(type), dims, payload);
        const std::string path = test::tempDir() + "/valid-" + std::to_string(type) + (gzipped ? ".idx.gz" : ".idx");
        if (gzipped) writeGz(path, bytes);
        else writePlain(path, bytes);

        const IdxArray a = readIdx(path);
        QCOMPARE(int(a.typeCode), type);
        QCOMPARE(a.dims, (std::vector<std::int64_t>{7, 5, 3}));
        QVERIFY(a.bytes == payload);
        // The in-memory parser sees the same array from the same file bytes.
        const auto raw = fileBytes(path);
        const IdxArray b = parseIdx(raw.data(), raw.size(), "memory");
        QCOMPARE(b.dims, a.dims);
        QVERIFY(b.bytes == a.bytes);
    }

    void largeGzippedPayloadSpansChunks() {
        // Over 1 MiB, so the gzipped path grows its buffer more than once.
        const std::vector<std::uint32_t> dims = {3, 700, 700};
        const auto payload = randomBytes(3 * 700 * 700, 9);
        const std::string path = test::tempDir() + "/large.idx.gz";
        writeGz(path, makeIdx(0x08, dims, payload));
        const IdxArray a = readIdx(path);
        QVERIFY(a.bytes == payload);
    }

    void malformedFiles_data() {
        QTest::addColumn<QString>("file");
        QTest::addColumn<QString>("problem");
        QTest::newRow("truncated") << "truncated.idx" << "truncated: dimensions 10 x 4 x 4 need 160 data bytes, the file holds 100";
        QTest::newRow("truncated gz") << "truncated.idx.gz" << "truncated: dimensions 10 x 4 x 4 need 160 data bytes, the stream holds 100";
        QTest::newRow("trailing") << "trailing.idx" << "3 trailing bytes after the 160 data bytes its header declares";
        QTest::newRow("trailing gz") << "trailing.idx.gz" << "trailing bytes after the 160 data bytes its header declares";
        QTest::newRow("wrong magic") << "wrong_magic.idx" << "not an IDX file (magic bytes 50 4b 03 04";
        QTest::newRow("bad type") << "bad_type.idx" << "unknown IDX element type 0x07";
        QTest::newRow("oversized dim") << "oversized_dim.idx" << "dimensions 4294967295 x 4294967295 x 28 exceed the limit";
        QTest::newRow("oversized dim gz") << "oversized_dim.idx.gz" << "dimensions 4294967295 x 4294967295 x 28 exceed the limit";
        QTest::newRow("truncated header") << "truncated_header.idx" << "truncated header: 3 dimensions need 12 bytes, found 5";
        QTest::newRow("zero dims") << "zero_dims.idx" << "bad IDX dimension count 0";
        QTest::newRow("bomb") << "bomb.idx.gz" << "trailing bytes after the 100 data bytes its header declares";
        QTest::newRow("corrupt gz") << "corrupt.idx.gz" << "corrupt gzip data";
        QTest::newRow("cut gz stream") << "cut_stream.idx.gz" << "truncated gzip stream";
    }
    void malformedFiles() {
        QFETCH(QString, file);
        QFETCH(QString, problem);
        const std::string path = malformed(file.toStdString());
        QVERIFY2(QFile::exists(QString::fromStdString(path)), path.c_str());

        const QString msg = QString::fromStdString(dataErrorOf([&] { readIdx(path); }));
        QVERIFY2(msg.startsWith(QString::fromStdString(path) + ": "), qPrintable(msg));
        QVERIFY2(msg.contains(problem), qPrintable(msg));

        // Same verdict from memory, with the given name.
        const auto raw = fileBytes(path);
        const QString memMsg = QString::fromStdString(dataErrorOf([&] { parseIdx(raw.data(), raw.size(), "mem.idx"); }));
        QVERIFY2(memMsg.startsWith("mem.idx: "), qPrintable(memMsg));
        QVERIFY2(memMsg.contains(problem), qPrintable(memMsg));
    }

    void limitIsCheckedBeforeAllocating() {
        // 64 x 1024 x 1024 bytes declared: over a 1 MiB limit, rejected without reading the payload.
        const auto bytes = makeIdx(0x08, {64, 1024, 1024}, randomBytes(16, 1));
        const QString msg = QString::fromStdString(
            dataErrorOf([&] { parseIdx(bytes.data(), bytes.size(), "limit.idx", 1u << 20); }));
        QVERIFY2(msg.contains("limit.idx: dimensions 64 x 1024 x 1024 exceed the limit of 1048576 data bytes"),
                 qPrintable(msg));
        // Element size counts: 512 x 512 i32 is 1 MiB exactly and passes the same limit.
        const auto exact = makeIdx(0x0C, {512, 512}, randomBytes(512 * 512 * 4, 2));
        QCOMPARE(parseIdx(exact.data(), exact.size(), "exact.idx", 1u << 20).bytes.size(), std::size_t{1} << 20);
        QVERIFY(QString::fromStdString(dataErrorOf([&] { parseIdx(exact.data(), exact.size(), "x", (1u << 20) - 1); }))
                    .contains("exceed the limit"));
    }

    void zeroExtentIsAnEmptyArray() {
        const auto bytes = makeIdx(0x0D, {0, 28}, {});
        const IdxArray a = parseIdx(bytes.data(), bytes.size(), "empty.idx");
        QCOMPARE(a.dims, (std::vector<std::int64_t>{0, 28}));
        QVERIFY(a.bytes.empty());
    }

    void missingFileNamesIt() {
        const std::string path = test::tempDir() + "/no-such-file.idx";
        const QString msg = QString::fromStdString(dataErrorOf([&] { readIdx(path); }));
        QVERIFY2(msg.startsWith(QString::fromStdString(path) + ": cannot open: No such file"), qPrintable(msg));
    }
};

QTEST_GUILESS_MAIN(TestIdx)
#include "test_idx.moc"

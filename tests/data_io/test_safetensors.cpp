// safetensors: round trips of random tensors of every dtype, the header layout the format asks
// for, the malformed files under tests/data/malformed/safetensors/, and write failures that must
// leave no half-written file behind.
#include "engine/core/errors.h"
#include "engine/core/rng.h"
#include "engine/io/safetensors.h"
#include "tests/support/test_support.h"

#include <nlohmann/json.hpp>

#include <sys/resource.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

using namespace lathe;
namespace fs = std::filesystem;

namespace {

std::string malformed(const std::string& name) {
    return test::sourcePath("tests/data/malformed/safetensors/" + name);
}

using test::fileBytes;

template <class Fn>
std::string dataErrorOf(Fn fn) {
    return test::errorOf<DataError>(fn);
}

// A host tensor of random values valid for its dtype (never all zeros).
Tensor randomTensor(const Shape& shape, DType dtype, std::uint64_t seed) {
    Tensor t = Tensor::host(shape, dtype);
    const auto n = static_cast<std::size_t>(t.numel());
    const auto values = test::randomVector(n, seed, -100.0f, 100.0f);
    traits(dtype).fromFloat(values.data(), t.data(), n);
    return t;
}

bool sameBytes(const Tensor& a, const Tensor& b) {
    return a.bytes() == b.bytes() && (a.bytes() == 0 || std::memcmp(a.data(), b.data(), a.bytes()) == 0);
}

std::vector<std::string> filesIn(const std::string& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    return out;
}

} // namespace

class TestSafetensors : public QObject {
    Q_OBJECT

private slots:
    void roundTripEveryDtype_data() {
        QTest::addColumn<int>("dtype");
        for (DType t : {DType::F32, DType::F16, DType::BF16, DType::I8, DType::I32, DType::U8, DType::F8E4M3})
            QTest::newRow(dtypeName(t)) << int(t);
    }
    void roundTripEveryDtype() {
        QFETCH(int, dtype);
        const DType dt = static_cast<DType>(dtype);
        // Odd sizes so the data offsets are not all multiples of 8, plus a scalar and an empty tensor.
        std::vector<std::pair<std::string, Tensor>> tensors = {
            {"layers.0.weight", randomTensor({13, 7}, dt, 1 + dtype)},
            {"layers.0.bias", randomTensor({13}, dt, 2 + dtype)},
            {"conv.weight", randomTensor({3, 2, 5, 5}, dt, 3 + dtype)},
            {"scalar", randomTensor({}, dt, 4 + dtype)},
            {"empty", randomTensor({0, 4}, dt, 5 + dtype)},
        };
        const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "ünïcode ✓"}};
        const std::string path = test::tempDir() + "/roundtrip-" + dtypeName(dt) + ".safetensors";
        writeSafetensors(path, tensors, metadata);

        const SafetensorsFile f = readSafetensors(path);
        QCOMPARE(f.metadata, metadata);
        QCOMPARE(f.tensors.size(), tensors.size());
        for (std::size_t i = 0; i < tensors.size(); ++i) {
            // File order is the order given to the writer.
            QCOMPARE(f.tensors[i].first, tensors[i].first);
            const Tensor& got = f.tensors[i].second;
            QCOMPARE(got.dtype(), dt);
            QCOMPARE(got.shape(), tensors[i].second.shape());
            QVERIFY(got.isHost());
            QVERIFY2(sameBytes(got, tensors[i].second), tensors[i].first.c_str());
        }
        QVERIFY(f.find("conv.weight") != nullptr);
        QVERIFY(f.find("nope") == nullptr);
    }

    void headerLayout() {
        const std::string path = test::tempDir() + "/layout.safetensors";
        writeSafetensors(path, {{"b", randomTensor({3}, DType::F32, 7)}, {"a", randomTensor({2}, DType::F16, 8)}},
                         {{"format", "pt"}});
        const auto bytes = fileBytes(path);
        QVERIFY(bytes.size() >= 8);
        std::uint64_t n = 0;
        for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[static_cast<std::size_t>(i)];
        // The data section starts 8-byte aligned; the padding is spaces, as the format specifies.
        QCOMPARE((8 + n) % 8, std::uint64_t{0});
        const std::string header(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
        const auto trimmed = header.find_last_not_of(' ');
        QVERIFY(header.substr(trimmed + 1).find_first_not_of(' ') == std::string::npos);
        const auto j = nlohmann::json::parse(header);
        QCOMPARE(j["b"]["dtype"].get<std::string>(), std::string("F32"));
        QCOMPARE(j["b"]["data_offsets"], nlohmann::json({0, 12}));
        QCOMPARE(j["a"]["dtype"].get<std::string>(), std::string("F16"));
        QCOMPARE(j["a"]["data_offsets"], nlohmann::json({12, 16}));
        QCOMPARE(j["__metadata__"]["format"].get<std::string>(), std::string("pt"));
        QCOMPARE(bytes.size(), static_cast<std::size_t>(8 + n + 16));
    }

    void malformedFiles_data() {
        QTest::addColumn<QString>("file");
        QTest::addColumn<QString>("problem");
        QTest::newRow("truncated") << "truncated.safetensors" << "tensor \"bias\": data_offsets [24, 36] reach past the end of the data section (26 bytes";
        QTest::newRow("tiny") << "tiny.safetensors" << "truncated: 5 bytes, a safetensors file starts with an 8-byte header length";
        QTest::newRow("header larger than file") << "header_larger_than_file.safetensors" << "header length 4096 is larger than the file (196 bytes)";
        QTest::newRow("header huge") << "header_huge.safetensors" << "header length 4611686018427387904 exceeds the limit of 100000000 bytes";
        QTest::newRow("bad json") << "bad_json.safetensors" << "invalid JSON header: [json.exception.parse_error";
        QTest::newRow("not an object") << "not_object.safetensors" << "the JSON header is not an object";
        QTest::newRow("wrong dtype") << "wrong_dtype.safetensors" << "tensor \"weight\": unsupported dtype \"F64\" (supported: F32, F16, BF16, I8, I32, U8, F8_E4M3, I64)";
        QTest::newRow("overlap") << "overlapping_offsets.safetensors" << "tensor \"bias\": data_offsets [20, 32] overlap tensor \"weight\" [0, 24]";
        QTest::newRow("past end") << "offsets_past_end.safetensors" << "tensor \"bias\": data_offsets [24, 60] reach past the end of the data section (36 bytes";
        QTest::newRow("reversed") << "offsets_reversed.safetensors" << "tensor \"bias\": data_offsets [36,24] begin after they end";
        QTest::newRow("size mismatch") << "size_mismatch.safetensors" << "tensor \"bias\": data_offsets [24,36] span 12 bytes, but F32 [4] needs 16";
        QTest::newRow("shape overflow") << "shape_overflow.safetensors" << "tensor \"weight\": shape [4611686018427387904,4611686018427387904] has more elements than can be addressed";
        QTest::newRow("negative shape") << "negative_shape.safetensors" << "tensor \"weight\": every shape extent must be a non-negative integer, got -2";
        QTest::newRow("trailing bytes") << "trailing_bytes.safetensors" << "14 trailing bytes after the last tensor";
        QTest::newRow("metadata not string") << "metadata_not_string.safetensors" << "__metadata__ \"epochs\" must be a string, got 3";
        QTest::newRow("missing offsets") << "missing_offsets.safetensors" << "tensor \"bias\": missing \"data_offsets\"";
        QTest::newRow("deep nesting") << "deep_nesting.safetensors" << "JSON header nests deeper than 64 levels";
    }
    void malformedFiles() {
        QFETCH(QString, file);
        QFETCH(QString, problem);
        const std::string path = malformed(file.toStdString());
        QVERIFY2(QFile::exists(QString::fromStdString(path)), path.c_str());
        const QString msg = QString::fromStdString(dataErrorOf([&] { readSafetensors(path); }));
        QVERIFY2(msg.startsWith(QString::fromStdString(path) + ": "), qPrintable(msg));
        QVERIFY2(msg.contains(problem), qPrintable(msg));
        const auto raw = fileBytes(path);
        const QString memMsg =
            QString::fromStdString(dataErrorOf([&] { parseSafetensors(raw.data(), raw.size(), "mem.safetensors"); }));
        QVERIFY2(memMsg.startsWith("mem.safetensors: "), qPrintable(memMsg));
        QVERIFY2(memMsg.contains(problem), qPrintable(memMsg));
    }

    void gapBetweenTensorsIsRejected() {
        const std::string header = R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                                   R"("b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}})";
        std::vector<std::uint8_t> bytes(8);
        bytes[0] = static_cast<std::uint8_t>(header.size());
        bytes.insert(bytes.end(), header.begin(), header.end());
        for (int i = 0; i < 6; ++i) bytes.push_back(static_cast<std::uint8_t>(i + 1));
        const QString msg = QString::fromStdString(dataErrorOf([&] { parseSafetensors(bytes.data(), bytes.size(), "gap"); }));
        QVERIFY2(msg.contains("gap: 2 unindexed bytes before tensor \"b\" at data offset 2"), qPrintable(msg));
    }

    void missingFileNamesIt() {
        const std::string path = test::tempDir() + "/absent.safetensors";
        const QString msg = QString::fromStdString(dataErrorOf([&] { readSafetensors(path); }));
        QVERIFY2(msg.startsWith(QString::fromStdString(path) + ": cannot open: No such file"), qPrintable(msg));
    }

    void overwriteReplacesAtomically() {
        const std::string dir = test::tempDir() + "/atomic";
        fs::create_directories(dir);
        const std::string path = dir + "/model.safetensors";
        writeSafetensors(path, {{"x", randomTensor({4}, DType::F32, 1)}}, {});
        const Tensor second = randomTensor({5}, DType::F32, 2);
        writeSafetensors(path, {{"y", second}}, {});
        QCOMPARE(filesIn(dir), std::vector<std::string>{"model.safetensors"});
        const auto f = readSafetensors(path);
        QCOMPARE(f.tensors.size(), std::size_t{1});
        QVERIFY(sameBytes(*f.find("y"), second));
    }

    // A write that fails midway (the file-size limit stands in for a full disk: write() fails the
    // same way, with EFBIG instead of ENOSPC) leaves neither a temp file nor a partial model.
    void failedWriteLeavesNothing() {
        const std::string dir = test::tempDir() + "/full";
        fs::create_directories(dir);
        const std::string path = dir + "/big.safetensors";
        writeSafetensors(path, {{"old", randomTensor({8}, DType::F32, 3)}}, {});
        const auto before = fileBytes(path);

        rlimit old{};
        QCOMPARE(getrlimit(RLIMIT_FSIZE, &old), 0);
        auto oldHandler = std::signal(SIGXFSZ, SIG_IGN);
        rlimit small = old;
        small.rlim_cur = 64 * 1024;
        QCOMPARE(setrlimit(RLIMIT_FSIZE, &small), 0);
        const QString msg = QString::fromStdString(
            dataErrorOf([&] { writeSafetensors(path, {{"w", randomTensor({256, 1024}, DType::F32, 4)}}, {}); }));
        setrlimit(RLIMIT_FSIZE, &old);
        std::signal(SIGXFSZ, oldHandler);

        QVERIFY2(msg.startsWith(QString::fromStdString(path) + ": cannot write: " + std::strerror(EFBIG)),
                 qPrintable(msg));
        QCOMPARE(filesIn(dir), std::vector<std::string>{"big.safetensors"});
        QVERIFY(fileBytes(path) == before);
    }

    void unwritableDirectoryNamesPath() {
        const std::string path = test::tempDir() + "/no/such/dir/m.safetensors";
        const QString msg = QString::fromStdString(
            dataErrorOf([&] { writeSafetensors(path, {{"x", randomTensor({2}, DType::F32, 5)}}, {}); }));
        QVERIFY2(msg.startsWith(QString::fromStdString(path) + ": cannot create"), qPrintable(msg));
        QVERIFY2(msg.contains(std::strerror(ENOENT)), qPrintable(msg));
    }

    void writerRejectsBadNames() {
        const std::string path = test::tempDir() + "/names.safetensors";
        const Tensor t = randomTensor({2}, DType::F32, 6);
        QVERIFY(QString::fromStdString(dataErrorOf([&] { writeSafetensors(path, {{"a", t}, {"a", t}}, {}); }))
                    .contains("tensor \"a\" given twice"));
        QVERIFY(QString::fromStdString(dataErrorOf([&] { writeSafetensors(path, {{"__metadata__", t}}, {}); }))
                    .contains("invalid tensor name"));
        QVERIFY(!fs::exists(path));
    }
};

QTEST_GUILESS_MAIN(TestSafetensors)
#include "test_safetensors.moc"

// Text corpora (issue 14): UTF-8 repair (every invalid byte replaced and counted, with a warning naming the
// file) on a real malformed file, fortune and paragraph records, the deterministic train/validation split, the
// Debian fortunes text when installed, and the errors for missing paths.
#include "engine/core/errors.h"
#include "engine/data/text_corpus.h"
#include "tests/support/test_support.h"

#include <QTemporaryDir>
#include <QtTest>

#include <filesystem>
#include <fstream>

using namespace lathe;

class TestTextCorpus : public QObject {
    Q_OBJECT

private slots:
    void sanitizeKeepsValidAndReplacesInvalid() {
        std::int64_t replaced = 0, first = 0;
        const std::string ok = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
        QCOMPARE(sanitizeUtf8(ok, replaced, first), ok);
        QCOMPARE(replaced, std::int64_t{0});
        QCOMPARE(first, std::int64_t{-1});
        // Latin-1 e-acute, an overlong '/', a surrogate, a code point above U+10FFFF, a truncated sequence.
        const std::string bad = "a\xe9" "b\xc0\xaf" "c\xed\xa0\x80" "d\xf4\x90\x80\x80" "e\xe2\x82";
        const std::string fixed = sanitizeUtf8(bad, replaced, first);
        QCOMPARE(first, std::int64_t{1});
        QCOMPARE(replaced, std::int64_t{1 + 2 + 3 + 4 + 2});
        std::int64_t again = 0, f2 = 0;
        QCOMPARE(sanitizeUtf8(fixed, again, f2), fixed); // the result is valid
        QCOMPARE(again, std::int64_t{0});
        QVERIFY(fixed.find("a\xEF\xBF\xBD" "b") == 0);
    }

    void malformedFileIsRepairedWithAWarning() {
        const std::string path = test::sourcePath("tests/data/malformed/text/latin1_mixed.txt");
        const TextCorpus c = loadTextCorpus(path);
        QCOMPARE(c.records.size(), std::size_t{3}); // paragraphs
        QCOMPARE(c.replacedBytes, std::int64_t{4 + 2 + 3 + 2}); // 4 Latin-1 letters, overlong, surrogate, cut euro
        QCOMPARE(c.warnings.size(), std::size_t{1});
        QVERIFY2(c.warnings[0].find(path) != std::string::npos && c.warnings[0].find("11 byte") != std::string::npos,
                 c.warnings[0].c_str());
        QVERIFY(c.records[2].text.find("caf\xc3\xa9") != std::string::npos); // valid text untouched
    }

    void fortuneRecordsAndFolders() {
        QTemporaryDir dir;
        const std::filesystem::path root = dir.path().toStdString();
        std::filesystem::create_directories(root / "sub");
        std::ofstream(root / "a.txt") << "first paragraph\nstill first\n\n\nsecond\n";
        std::ofstream(root / "sub" / "b.txt") << "third\n";
        const TextCorpus c = loadTextCorpus(root.string());
        QCOMPARE(c.records.size(), std::size_t{3});
        QCOMPARE(c.records[0].text, std::string("first paragraph\nstill first"));
        QCOMPARE(c.sourceFiles.size(), std::size_t{2});
        QCOMPARE(c.replacedBytes, std::int64_t{0});

        // A fortune folder: records between "%" lines; files with an extension (indexes) are skipped.
        std::filesystem::create_directories(root / "fortunes");
        std::ofstream(root / "fortunes" / "wisdom") << "one\n%\ntwo\nlines\n%\n%\nthree\n";
        std::ofstream(root / "fortunes" / "wisdom.dat") << "\x02\x00\xff binary";
        qputenv("LATHE_FORTUNES_DIR", QByteArray::fromStdString((root / "fortunes").string()));
        const TextCorpus f = loadTextCorpus("fortunes");
        qunsetenv("LATHE_FORTUNES_DIR");
        QCOMPARE(f.records.size(), std::size_t{3});
        QCOMPARE(f.records[1].text, std::string("two\nlines"));
        QCOMPARE(f.sourceFiles.size(), std::size_t{1});
    }

    void splitIsDeterministicAndDisjoint() {
        TextCorpus c;
        c.name = "synthetic";
        c.sourceFiles = {"x"};
        for (int i = 0; i < 2000; ++i) c.records.push_back({"record number " + std::to_string(i), 0});
        const auto s1 = splitTextCorpus(c, 0.1), s2 = splitTextCorpus(c, 0.1);
        QCOMPARE(s1.train.records.size() + s1.validation.records.size(), std::size_t{2000});
        QVERIFY(s1.validation.records.size() > 140 && s1.validation.records.size() < 260); // ~10 %
        QCOMPARE(s1.validation.records.size(), s2.validation.records.size());
        for (std::size_t i = 0; i < s1.validation.records.size(); ++i)
            QCOMPARE(s1.validation.records[i].text, s2.validation.records[i].text);
        // The side depends on the text alone: reversing the corpus keeps each record's side.
        TextCorpus rev = c;
        std::reverse(rev.records.begin(), rev.records.end());
        QCOMPARE(splitTextCorpus(rev, 0.1).validation.records.size(), s1.validation.records.size());
        QVERIFY(test::errorOf<ConfigError>([&] { splitTextCorpus(c, 1.0); }).find("[0, 1)") != std::string::npos);
    }

    void debianFortunes() {
        if (!std::filesystem::is_directory(fortunesDir())) QSKIP("the Debian package fortunes is not installed");
        const TextCorpus c = loadTextCorpus("fortunes");
        QVERIFY(c.records.size() > 1000);
        QVERIFY(c.textBytes() > 1000000);
        for (const auto& f : c.sourceFiles) QVERIFY(std::filesystem::path(f).extension().empty());
    }

    void missingPathsAreClearErrors() {
        const std::string e = test::errorOf<DataError>([] { loadTextCorpus("/nonexistent/corpus.txt"); });
        QVERIFY2(e.find("/nonexistent/corpus.txt") != std::string::npos, e.c_str());
        qputenv("LATHE_FORTUNES_DIR", "/nonexistent/fortunes");
        const std::string f = test::errorOf<DataError>([] { loadTextCorpus("fortunes"); });
        qunsetenv("LATHE_FORTUNES_DIR");
        QVERIFY2(f.find("apt-get install fortunes") != std::string::npos, f.c_str());
    }
};

QTEST_GUILESS_MAIN(TestTextCorpus)
#include "test_text_corpus.moc"

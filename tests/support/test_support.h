// The Qt Test side of the shared test helpers (tests/support/test_common.h): QtTest itself, the main() of
// every suite (exit 77, CTest "skipped", when every test function skipped, e.g. no Fashion-MNIST), and the
// main() for suites that need a GPU, which exits 77 when there is none.
#pragma once

#include "tests/support/test_common.h"

#include <QDir>
#include <QFile>
#include <QTemporaryFile>
#include <QtTest>

#include <cstdio>

namespace lathe::test {

// QTest::qExec, then exit code 77 (CTest: skipped) when the suite passed but every test function
// in it skipped: a suite that tested nothing must not count as passed. Only when the command line
// chooses no output of its own (as under CTest); otherwise qExec's result unchanged.
inline int execSuite(QObject* suite, int argc, char** argv) {
    QStringList args;
    for (int i = 0; i < argc; ++i) args << QString::fromLocal8Bit(argv[i]);
    // Output options of QTest: leave a caller who chose one alone.
    static const QStringList kOutputOptions{"-o", "-txt", "-csv", "-xml", "-lightxml", "-junitxml", "-teamcity", "-tap"};
    for (int i = 1; i < args.size(); ++i)
        if (kOutputOptions.contains(args[i])) return QTest::qExec(suite, args);

    // The usual text on stdout, and a TAP copy that says which functions passed and which skipped.
    QTemporaryFile tap(QDir::tempPath() + "/lathe-test-XXXXXX.tap");
    if (!tap.open()) return QTest::qExec(suite, args);
    tap.close();
    args << "-o" << "-,txt" << "-o" << tap.fileName() + ",tap";
    const int rc = QTest::qExec(suite, args);
    if (rc != 0) return rc;

    QFile in(tap.fileName());
    if (!in.open(QIODevice::ReadOnly | QIODevice::Text)) return rc;
    int passed = 0, skipped = 0;
    while (!in.atEnd()) {
        const QString line = QString::fromUtf8(in.readLine()).trimmed();
        // "ok 3 - name(row)" or "ok 3 - name() # SKIP reason"; initTestCase and cleanupTestCase pass
        // even when every real test function skipped, so they do not count.
        if (!line.startsWith("ok ")) continue;
        if (line.contains(" # SKIP")) ++skipped;
        else if (!line.contains("initTestCase()") && !line.contains("cleanupTestCase()")) ++passed;
    }
    if (skipped > 0 && passed == 0) {
        std::fprintf(stderr, "SKIPPED: every test function of %s skipped\n", suite->metaObject()->className());
        return kSkipExitCode;
    }
    return rc;
}

} // namespace lathe::test

// In a test function that needs Fashion-MNIST: skips it (not the suite) when the data is missing.
#define LATHE_REQUIRE_FASHION_MNIST()                                                                \
    do {                                                                                             \
        if (!lathe::test::haveFashionMnist())                                                        \
            QSKIP(lathe::test::missingFashionMnistReason().c_str());                                 \
    } while (false)

// QTEST_MAIN and QTEST_GUILESS_MAIN through execSuite.
#define LATHE_TEST_MAIN_WRAPPER(TestObject, ...)                                                     \
    int main(int argc, char* argv[]) {                                                               \
        QT_PREPEND_NAMESPACE(QTest::Internal::callInitMain)<TestObject>();                          \
        __VA_ARGS__                                                                                  \
        TestObject tc;                                                                               \
        QTEST_SET_MAIN_SOURCE_PATH                                                                   \
        return lathe::test::execSuite(&tc, argc, argv);                                              \
    }
#define LATHE_TEST_MAIN(TestObject) LATHE_TEST_MAIN_WRAPPER(TestObject, QTEST_MAIN_SETUP())
#define LATHE_TEST_GUILESS_MAIN(TestObject) LATHE_TEST_MAIN_WRAPPER(TestObject, QTEST_QAPP_SETUP(QCoreApplication))

// main() for suites that need a CUDA device: exits 77 (CTest "skipped") when there is none.
#define LATHE_GPU_TEST_MAIN(TestObject)                                                              \
    int main(int argc, char** argv) {                                                                \
        std::string reason;                                                                          \
        if (!lathe::test::cudaBackendOrNull(&reason)) {                                              \
            std::fprintf(stderr, "SKIPPED: no CUDA device: %s\n", reason.c_str());                   \
            return lathe::test::kSkipExitCode;                                                       \
        }                                                                                            \
        QCoreApplication app(argc, argv);                                                            \
        TestObject tc;                                                                               \
        QTEST_SET_MAIN_SOURCE_PATH                                                                   \
        return lathe::test::execSuite(&tc, argc, argv);                                              \
    }

// The Qt Test side of the shared test helpers (tests/support/test_common.h): QtTest itself and the main()
// for suites that need a GPU, which exits 77 (CTest "skipped") when there is none.
#pragma once

#include "tests/support/test_common.h"

#include <QtTest>

#include <cstdio>

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
        return QTest::qExec(&tc, argc, argv);                                                        \
    }

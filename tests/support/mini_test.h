// A small Qt-free test runner for the tests that must build where Qt is absent (GPU servers, the
// headless preset): TEST_CASE registration, CHECK/REQUIRE with file:line, labelled data rows, SKIP -> 77.
#pragma once

#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace lathe::minitest {

struct TestCase {
    const char* name;
    void (*fn)();
};

inline std::vector<TestCase>& registry() {
    static std::vector<TestCase> cases;
    return cases;
}

struct Registrar {
    Registrar(const char* name, void (*fn)()) { registry().push_back({name, fn}); }
};

// REQUIRE's failure and SKIP end the current case by exception; CHECK's failure only counts.
struct RequireFailed {};
struct Skipped {
    std::string reason;
};

struct RunState {
    int checkFailures = 0;
    std::vector<std::string> rows; // labels of the data rows entered, for messages
};

inline RunState& state() {
    static RunState s;
    return s;
}

inline std::string context() {
    std::string out;
    for (const auto& r : state().rows) out += "[" + r + "] ";
    return out;
}

inline void fail(const char* file, int line, const std::string& what) {
    ++state().checkFailures;
    std::fprintf(stderr, "  FAIL %s:%d: %s%s\n", file, line, context().c_str(), what.c_str());
}

// A value as text for CHECK_EQ's message, where the type can be streamed.
template <class T>
std::string describe(const T& v) {
    if constexpr (requires(std::ostream& os) { os << v; }) {
        std::ostringstream os;
        os << v;
        return os.str();
    } else {
        return "(value not printable)";
    }
}

// One data row of a case: `for (auto& [label, x] : rows) { ROW(label); ... }`. Failures name the row.
class RowScope {
public:
    explicit RowScope(std::string label) { state().rows.push_back(std::move(label)); }
    ~RowScope() { state().rows.pop_back(); }
    RowScope(const RowScope&) = delete;
    RowScope& operator=(const RowScope&) = delete;
};

// Runs the cases whose name contains argv[1] (all without an argument) and prints one line per case
// and "N passed, N failed, N skipped". Exit: 1 when any failed, 77 when every case run skipped, else 0.
inline int runAll(int argc, char** argv) {
    const char* filter = argc > 1 ? argv[1] : nullptr;
    int passed = 0, failed = 0, skipped = 0;
    for (const auto& tc : registry()) {
        if (filter && !std::strstr(tc.name, filter)) continue;
        state() = RunState{};
        std::string skipReason;
        bool skippedCase = false;
        try {
            tc.fn();
        } catch (const RequireFailed&) {
        } catch (const Skipped& s) {
            skippedCase = true;
            skipReason = s.reason;
        } catch (const std::exception& e) {
            fail(tc.name, 0, context() + "unexpected exception: " + e.what());
        } catch (...) {
            fail(tc.name, 0, context() + "unexpected exception of unknown type");
        }
        if (state().checkFailures > 0) {
            ++failed;
            std::printf("FAIL   %s (%d failed check(s))\n", tc.name, state().checkFailures);
        } else if (skippedCase) {
            ++skipped;
            std::printf("SKIP   %s: %s\n", tc.name, skipReason.c_str());
        } else {
            ++passed;
            std::printf("PASS   %s\n", tc.name);
        }
        std::fflush(stdout);
    }
    std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    if (failed > 0) return 1;
    if (skipped > 0 && passed == 0) return 77;
    return 0;
}

} // namespace lathe::minitest

#define MINI_TEST_CAT2(a, b) a##b
#define MINI_TEST_CAT(a, b) MINI_TEST_CAT2(a, b)

#define TEST_CASE(name)                                                                               \
    static void name();                                                                               \
    static const ::lathe::minitest::Registrar MINI_TEST_CAT(name, _registrar)(#name, &name);          \
    static void name()

#define ROW(label) const ::lathe::minitest::RowScope MINI_TEST_CAT(row_scope_, __LINE__)(label)

#define CHECK_MSG(cond, msg)                                                                          \
    do {                                                                                              \
        if (!(cond)) ::lathe::minitest::fail(__FILE__, __LINE__, std::string(#cond) + ": " + (msg));  \
    } while (0)
#define CHECK(cond) CHECK_MSG(cond, std::string("false"))

#define REQUIRE_MSG(cond, msg)                                                                        \
    do {                                                                                              \
        if (!(cond)) {                                                                                \
            ::lathe::minitest::fail(__FILE__, __LINE__, std::string(#cond) + ": " + (msg));           \
            throw ::lathe::minitest::RequireFailed{};                                                 \
        }                                                                                             \
    } while (0)
#define REQUIRE(cond) REQUIRE_MSG(cond, std::string("false"))

#define CHECK_EQ(a, b)                                                                                \
    do {                                                                                              \
        const auto& mini_a = (a);                                                                     \
        const auto& mini_b = (b);                                                                     \
        if (!(mini_a == mini_b))                                                                      \
            ::lathe::minitest::fail(__FILE__, __LINE__,                                               \
                                    std::string(#a " == " #b ": ") + ::lathe::minitest::describe(mini_a) + \
                                        " != " + ::lathe::minitest::describe(mini_b));                \
    } while (0)

// The expression must throw exactly Type (or a class derived from it).
#define CHECK_THROWS_AS(expr, Type)                                                                   \
    do {                                                                                              \
        bool mini_thrown = false;                                                                     \
        try {                                                                                         \
            (void)(expr);                                                                             \
        } catch (const Type&) {                                                                       \
            mini_thrown = true;                                                                       \
        } catch (const std::exception& e) {                                                           \
            ::lathe::minitest::fail(__FILE__, __LINE__,                                               \
                                    std::string(#expr " threw another type than " #Type ": ") + e.what()); \
            mini_thrown = true;                                                                       \
        }                                                                                             \
        if (!mini_thrown) ::lathe::minitest::fail(__FILE__, __LINE__, #expr " did not throw " #Type); \
    } while (0)

#define FAIL(msg)                                                                                     \
    do {                                                                                              \
        ::lathe::minitest::fail(__FILE__, __LINE__, (msg));                                           \
        throw ::lathe::minitest::RequireFailed{};                                                     \
    } while (0)

#define SKIP(reason) throw ::lathe::minitest::Skipped{std::string(reason)}

#define MINI_TEST_MAIN()                                                                              \
    int main(int argc, char** argv) { return ::lathe::minitest::runAll(argc, argv); }

// A search killed with SIGKILL in the middle of a trial resumes (issue 18): `lathe-cli run` on the same file
// finds the search's run, counts the trials that finished before the kill, runs only the rest, and stores
// no configuration twice; a sweep beside a search runs one search per plan and writes one winner file each.
// Qt-free: the CLI is spawned with fork/exec (tests/store/child_process.h).
#include "engine/experiment/search_runner.h"
#include "engine/experiment/spec.h"
#include "engine/store/run_store.h"
#include "tests/store/child_process.h"
#include "tests/search/search_fixture.h"
#include "tests/support/mini_test.h"
#include "tests/support/test_common.h"

#include <fstream>
#include <set>

using namespace lathe;
using json = nlohmann::json;

TEST_CASE(aKilledSearchResumesWithoutRerunningFinishedTrials) {
    if (!test::haveFashionMnist()) SKIP(test::missingFashionMnistReason());
    const std::string dir = test::tempDir();
    const std::string file = dir + "/killed.json", db = dir + "/runs.sqlite", cache = dir + "/cache";
    json doc = test::tinySearchBase("killed-search");
    doc.update(json::parse(R"({
        "search": {
            "algorithm": "random",
            "objectives": [{"minimize": "model_bytes"}],
            "space": [
                {"optional": true, "strategy": "prune.structured", "params": {"ratio": {"min": 0.1, "max": 0.9}}},
                {"strategy": "finetune", "params": {"epochs": 1, "limit": 2000, "batch_size": 50}}
            ],
            "budget": {"trials": 5},
            "seed": 5
        }
    })"));
    std::ofstream(file) << doc.dump(2);

    std::vector<std::string> lines;
    {
        test::ChildProcess cli({LATHE_CLI, "run", file, "--db", db, "--cache-dir", cache, "--json", "--out", dir + "/best.json"});
        REQUIRE(cli.started());
        int trials = 0;
        for (int polls = 0; polls < 600 && trials < 2; ++polls) {
            const bool open = cli.readLines(lines, 100);
            trials = 0;
            for (const auto& l : lines) trials += l.find("\"trial\"") != std::string::npos ? 1 : 0;
            REQUIRE_MSG(open || trials >= 2, "lathe-cli ended before its second trial");
        }
        REQUIRE(trials >= 2);
    } // ~ChildProcess: SIGKILL in the middle of the third trial (or between trials)

    std::set<std::int64_t> finishedBefore;
    for (const auto& l : lines)
        if (l.find("\"trial\"") != std::string::npos) finishedBefore.insert(json::parse(l).at("run_id").get<std::int64_t>());

    test::ChildProcess again({LATHE_CLI, "run", file, "--db", db, "--cache-dir", cache, "--json", "--out", dir + "/best.json"});
    std::vector<std::string> second;
    while (again.readLines(second, 60000)) {
    }
    const int status = again.wait();
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    REQUIRE(!second.empty());
    const json last = json::parse(second.back());
    CHECK_EQ(last.at("trials").get<int>(), 5);

    RunStore store(db);
    const SearchResult r = inspectSearch(store, last.at("search_run_id").get<std::int64_t>());
    int resumed = 0;
    std::set<std::string> chains;
    for (const auto& t : r.trials) {
        if (t.origin == "resumed") {
            ++resumed;
            CHECK(finishedBefore.count(t.runId) == 1);
        }
        CHECK_MSG(chains.insert(t.steps.dump()).second, "stored twice: " + t.steps.dump());
    }
    CHECK(resumed >= 2);
    CHECK_EQ(resumed, static_cast<int>(finishedBefore.size()));
    CHECK_EQ(r.ran, 5 - resumed);
    // The run the kill interrupted is marked so, not counted.
    int interrupted = 0;
    for (const auto& run : store.listRuns({}))
        interrupted += run.status == run_status::kInterrupted && run.strategyChain != "search" ? 1 : 0;
    CHECK(interrupted <= 1);
}

TEST_CASE(aSweepOfSearchesWritesOneWinnerPerPlan) {
    if (!test::haveFashionMnist()) SKIP(test::missingFashionMnistReason());
    const std::string dir = test::tempDir();
    const std::string file = dir + "/two.json", db = dir + "/runs.sqlite", cache = dir + "/cache";
    json doc = test::tinySearchBase("two-searches");
    doc.update(json::parse(R"({
        "search": {
            "algorithm": "random",
            "objectives": [{"minimize": "model_bytes"}],
            "space": [{"optional": true, "strategy": "prune.structured", "params": {"ratio": {"min": 0.1, "max": 0.9}}}],
            "budget": {"trials": 2}
        },
        "sweep": {"search.seed": [1, 2]}
    })"));
    std::ofstream(file) << doc.dump(2);
    test::ChildProcess cli({LATHE_CLI, "run", file, "--db", db, "--cache-dir", cache, "--json", "--out", dir + "/best.json"});
    std::vector<std::string> lines;
    while (cli.readLines(lines, 60000)) {
    }
    const int status = cli.wait();
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    std::set<std::int64_t> searches;
    std::set<std::string> winners;
    for (const auto& l : lines)
        if (l.find("\"search_run_id\"") != std::string::npos) {
            const json j = json::parse(l);
            searches.insert(j.at("search_run_id").get<std::int64_t>());
            winners.insert(j.at("winner_file").get<std::string>());
        }
    CHECK_EQ(searches.size(), std::size_t{2});
    CHECK(winners == (std::set<std::string>{dir + "/best.0.json", dir + "/best.1.json"}));
    for (const auto& w : winners) {
        std::ifstream in(w);
        REQUIRE_MSG(in.good(), "no winner file " + w);
        const json winner = json::parse(in);
        CHECK(!winner.contains("search"));
        CHECK(validateExperiment(winner).empty());
    }
    RunStore store(db);
    for (const std::int64_t id : searches) {
        const auto run = store.run(id);
        REQUIRE(run.has_value());
        CHECK_MSG(run->name.find("two-searches [seed=") == 0, run->name);
    }

    // --plan 1 (what a cluster task runs): that plan's search alone, into a store of its own.
    test::ChildProcess one({LATHE_CLI, "run", file, "--plan", "1", "--db", dir + "/one.sqlite", "--cache-dir", cache,
                            "--json", "--out", dir + "/one.json"});
    std::vector<std::string> oneLines;
    while (one.readLines(oneLines, 60000)) {
    }
    const int oneStatus = one.wait();
    CHECK(WIFEXITED(oneStatus) && WEXITSTATUS(oneStatus) == 0);
    REQUIRE(!oneLines.empty());
    const json last = json::parse(oneLines.back());
    CHECK_EQ(last.at("trials").get<int>(), 2);
    CHECK_EQ(last.at("winner_file").get<std::string>(), dir + "/one.1.json");
    RunStore oneStore(dir + "/one.sqlite");
    const auto oneSearch = oneStore.run(last.at("search_run_id").get<std::int64_t>());
    REQUIRE(oneSearch.has_value());
    CHECK_EQ(oneSearch->name, std::string("two-searches [seed=2] (search)"));
}

MINI_TEST_MAIN()

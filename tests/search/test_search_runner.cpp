// SearchRunner end to end on the CPU with Fashion-MNIST subsets (issue 18): the `search` section's
// validation errors at their pointers; a sweep beside a search (one search per plan); trials stored as runs
// under the search's run; a cancelled search
// resumes without re-running its finished trials; identical configurations looked up; warm start from a
// plain run of the same baseline; an infeasible constraint reported with the closest trials; the winner
// written as an experiment file that validates. Qt-free (tests/support/mini_test.h).
#include "engine/core/errors.h"
#include "engine/experiment/search_runner.h"
#include "engine/experiment/spec.h"
#include "engine/store/run_store.h"
#include "tests/search/search_fixture.h"
#include "tests/support/mini_test.h"
#include "tests/support/test_common.h"

#include <atomic>
#include <set>

using namespace lathe;
using json = nlohmann::json;

namespace {

json searchExperiment(int trials) {
    json doc = test::tinySearchBase("tiny-search");
    doc.update(json::parse(R"({
        "search": {
            "algorithm": "tpe",
            "objectives": [{"minimize": "model_bytes"}],
            "constraints": [{"metric": "accuracy_delta", ">=": -0.05}],
            "space": [
                {"optional": true, "strategy": "prune.structured", "params": {"ratio": {"min": 0.1, "max": 0.9}}},
                {"optional": true, "options": [
                    {"strategy": "quantize.int8", "params": {"activations": {"choices": ["dynamic", "none"]},
                                                              "warmup": 1, "repeats": 3}},
                    {"strategy": "quantize.int4", "params": {"group": {"choices": [64, 128]}, "warmup": 1, "repeats": 3}}]}
            ],
            "budget": {"trials": 4},
            "startup_trials": 2,
            "seed": 3
        }
    })"));
    doc["search"]["budget"]["trials"] = trials;
    return doc;
}

std::vector<std::string> pointersOf(const json& doc) {
    std::vector<std::string> out;
    for (const auto& i : validateExperiment(doc)) out.push_back(i.pointer + ": " + i.message);
    return out;
}

bool hasIssue(const json& doc, const std::string& pointer, const std::string& fragment) {
    for (const auto& i : validateExperiment(doc))
        if (i.pointer == pointer && i.message.find(fragment) != std::string::npos) return true;
    std::string all;
    for (const auto& s : pointersOf(doc)) all += "\n    " + s;
    std::fprintf(stderr, "  expected %s: ...%s... among:%s\n", pointer.c_str(), fragment.c_str(), all.c_str());
    return false;
}

RunnerOptions options() {
    RunnerOptions o;
    o.cacheDir = test::tempDir() + "/cache";
    return o;
}

std::vector<RunRecord> childrenOf(RunStore& store, std::int64_t parent) {
    std::vector<RunRecord> out;
    for (auto& r : store.listRuns({}))
        if (r.parentRunId && *r.parentRunId == parent) out.push_back(r);
    return out;
}

} // namespace

TEST_CASE(validSearchSectionValidates) {
    const auto issues = pointersOf(searchExperiment(4));
    for (const auto& i : issues) std::fprintf(stderr, "  %s\n", i.c_str());
    CHECK(issues.empty());
    const SearchSpec ss = parseSearchSection(searchExperiment(4).at("search"), "x.json");
    CHECK_EQ(ss.trials, 4);
    REQUIRE(ss.space.size() == 2);
    REQUIRE(ss.space[0].options.size() == 1);
    REQUIRE(ss.space[0].options[0].fields.size() == 1);
    CHECK_EQ(ss.space[0].options[0].fields[0].low, 0.1);
    // {} takes the schema's range: prune.magnitude's sparsity is [0, 1), so the searched range ends below 1.
    json doc = searchExperiment(4);
    doc["search"]["space"][0] = json::parse(R"({"strategy": "prune.magnitude", "params": {"sparsity": {}, "scope": {}}})");
    const SearchSpec def = parseSearchSection(doc.at("search"), "x.json");
    const auto& fields = def.space[0].options[0].fields; // in key order: scope, sparsity
    REQUIRE(fields.size() == 2);
    CHECK_EQ(fields[1].name, std::string("sparsity"));
    CHECK_EQ(fields[1].low, 0.0);
    CHECK(fields[1].high < 1.0 && fields[1].high > 0.999);
    CHECK(fields[0].categorical);
    CHECK_EQ(fields[0].choices.size(), std::size_t{2});
}

TEST_CASE(badSearchSectionsAreRefusedAtTheirPointers) {
    json doc = searchExperiment(4);
    doc["search"]["space"][1]["options"][0]["strategy"] = "quantize.int9";
    CHECK(hasIssue(doc, "/search/space/1/options/0/strategy", "unknown strategy \"quantize.int9\""));

    doc = searchExperiment(4);
    doc["search"]["space"][0]["params"]["ratio"]["max"] = 1.5;
    CHECK(hasIssue(doc, "/search/space/0/params/ratio/max", "expected a number in"));

    doc = searchExperiment(4);
    doc["search"]["budget"]["trials"] = 0;
    CHECK(hasIssue(doc, "/search/budget/trials", "expected an integer in [1, 100000], got 0"));

    doc = searchExperiment(4);
    doc["search"]["space"][0]["params"]["ratios"] = 0.5;
    CHECK(hasIssue(doc, "/search/space/0/params/ratios", "did you mean \"ratio\""));

    doc = searchExperiment(4);
    doc["search"]["space"][1]["options"][1]["params"]["group"] = json::parse(R"({"min": 0, "max": 128, "log": true})");
    CHECK(hasIssue(doc, "/search/space/1/options/1/params/group/min", "expected"));

    doc = searchExperiment(4);
    doc["search"]["objectives"] = json::array();
    CHECK(hasIssue(doc, "/search/objectives", "expected a non-empty list"));

    doc = searchExperiment(4);
    doc["search"]["constraints"][0] = json::parse(R"({"metric": "accuracy_delta", ">=": "high"})");
    CHECK(hasIssue(doc, "/search/constraints/0/>=", "expected a number"));

    doc = searchExperiment(4);
    doc["search"]["space"][0]["params"]["lr"] = json::parse(R"({"min": 0.1})");
    CHECK(hasIssue(doc, "/search/space/0/params/lr", "unknown key"));

    // A sweep beside a search may address the search; a value it puts there is checked like the rest.
    doc = searchExperiment(4);
    doc["sweep"] = json::parse(R"({"search.budget.trials": [2, 0]})");
    CHECK(hasIssue(doc, "/sweep/search.budget.trials/1", "expected an integer in [1, 100000], got 0"));

    doc = searchExperiment(4);
    doc["search"]["multivariate"] = "yes";
    CHECK(hasIssue(doc, "/search/multivariate", "expected true or false, got \"yes\""));

    // lathe-cli names the file with the pointer: the same text through parseExperiment.
    doc = searchExperiment(4);
    doc["search"]["budget"]["trials"] = 0;
    const std::string msg = test::errorOf<ConfigError>([&] { parseExperiment(doc, "exp/s.json"); });
    CHECK_MSG(msg.find("exp/s.json: /search/budget/trials: expected an integer") != std::string::npos, msg);
}

TEST_CASE(aSweepBesideASearchRunsOneSearchPerPlan) {
    json doc = searchExperiment(2);
    doc["sweep"] = json::parse(R"({"search.seed": [3, 4]})");
    CHECK(pointersOf(doc).empty());
    const ExperimentSpec spec = parseExperiment(doc, "tiny-search");
    const auto plans = expandSweep(spec, doc);
    REQUIRE(plans.size() == 2);
    for (std::size_t i = 0; i < 2; ++i) {
        CHECK(!plans[i].spec.search.is_null());
        CHECK(!plans[i].resolved.contains("sweep"));
        CHECK_EQ(plans[i].resolved.at("search").at("seed").get<int>(), 3 + static_cast<int>(i));
        CHECK_EQ(plans[i].spec.name, "tiny-search [seed=" + std::to_string(3 + i) + "]");
    }
    if (!test::haveFashionMnist()) SKIP(test::missingFashionMnistReason());
    RunStore store(test::tempDir() + "/sweep-of-searches.sqlite");
    std::atomic<bool> cancel{false};
    std::set<std::int64_t> searchRuns;
    for (const RunPlan& plan : plans) {
        const SearchResult r = SearchRunner(store, options()).run(plan.spec, plan.resolved, {}, cancel);
        CHECK_EQ(r.own(), 2);
        searchRuns.insert(r.searchRunId);
        const auto searchRun = store.run(r.searchRunId);
        REQUIRE(searchRun.has_value());
        CHECK_EQ(searchRun->name, plan.spec.name + " (search)");
        // Running a plan again resumes its own search, not the other plan's.
        CHECK_EQ(SearchRunner(store, options()).run(plan.spec, plan.resolved, {}, cancel).searchRunId, r.searchRunId);
    }
    CHECK_EQ(searchRuns.size(), std::size_t{2});
}

TEST_CASE(aCancelledSearchResumesWithoutRerunningAndLooksUpRepeats) {
    if (!test::haveFashionMnist()) SKIP(test::missingFashionMnistReason());
    RunStore store(test::tempDir() + "/resume.sqlite");
    const json doc = searchExperiment(4);
    const ExperimentSpec spec = parseExperiment(doc, "tiny-search");

    // Cancel after the second trial, as Ctrl-C would between runs.
    std::atomic<bool> cancel{false};
    SearchEvents events;
    events.trialFinished = [&](const SearchTrial&, const SearchResult& soFar) {
        if (soFar.own() == 2) cancel = true;
    };
    const SearchResult first = SearchRunner(store, options()).run(spec, doc, events, cancel);
    CHECK_EQ(first.stopReason, std::string("cancelled"));
    CHECK_EQ(first.own(), 2);
    CHECK_EQ(store.run(first.searchRunId)->status, std::string(run_status::kCancelled));
    const auto before = childrenOf(store, first.searchRunId);
    CHECK_EQ(before.size(), std::size_t{2});

    cancel = false;
    const SearchResult second = SearchRunner(store, options()).run(spec, doc, {}, cancel);
    CHECK_EQ(second.searchRunId, first.searchRunId);
    CHECK_EQ(second.resumed, 2);
    CHECK_EQ(second.own(), 4);
    CHECK_EQ(second.ran + second.lookedUp, 2);
    CHECK_EQ(second.stopReason, std::string("trials"));
    CHECK_EQ(store.run(second.searchRunId)->status, std::string(run_status::kDone));
    // The two finished trials are the same runs, not run again.
    const auto after = childrenOf(store, first.searchRunId);
    CHECK_EQ(after.size(), std::size_t{2} + static_cast<std::size_t>(second.ran));
    std::set<std::int64_t> ids;
    for (const auto& r : after) ids.insert(r.id);
    for (const auto& r : before) CHECK(ids.count(r.id) == 1);

    // The same file again runs nothing; a new search (another budget) over the same baseline looks every
    // configuration it repeats up and starts warm from the stored runs.
    const SearchResult third = SearchRunner(store, options()).run(spec, doc, {}, cancel);
    CHECK_EQ(third.ran, 0);
    CHECK_EQ(third.resumed, 4);
    const json more = searchExperiment(6);
    const SearchResult fourth = SearchRunner(store, options()).run(parseExperiment(more, "tiny-search"), more, {}, cancel);
    CHECK(fourth.searchRunId != first.searchRunId);
    CHECK(fourth.warm >= 3);
    CHECK_EQ(fourth.own(), 6);
    std::set<std::string> keys;
    for (const auto& t : fourth.trials) {
        if (t.origin == "run") CHECK_MSG(keys.insert(t.steps.dump()).second, "ran twice: " + t.steps.dump());
        if (t.origin == "warm") keys.insert(t.steps.dump());
    }

    // The winner: a plain experiment file without a search, that validates; the importances are stored.
    REQUIRE(second.best >= 0);
    REQUIRE(!second.winner.is_null());
    CHECK(!second.winner.contains("search"));
    CHECK(validateExperiment(second.winner).empty());
    const auto notes = store.notes(second.searchRunId);
    CHECK(notes.count("search_result") == 1 && notes.count("search_best_experiment") == 1);
    CHECK(json::parse(notes.at("search_result")).at("importance").size() >= 2);
    CHECK(second.explanation.find("why") != std::string::npos);
    // Read back from the store as the window does: the same trials, best and winner.
    const SearchResult back = inspectSearch(store, second.searchRunId);
    CHECK_EQ(back.own(), second.own());
    CHECK_EQ(back.best, second.best);
    CHECK(back.winner == second.winner);
    // Every trial is a normal run: its own config, status and summary, the search's run as parent.
    for (const auto& r : after) {
        CHECK_EQ(r.status, std::string(run_status::kDone));
        CHECK(r.summary.count("model_bytes") == 1);
    }
}

TEST_CASE(warmStartFromAPlainRunAndInfeasibleConstraints) {
    if (!test::haveFashionMnist()) SKIP(test::missingFashionMnistReason());
    RunStore store(test::tempDir() + "/warm.sqlite");
    std::atomic<bool> cancel{false};
    // A plain run of the same baseline whose chain the space holds (int8 dynamic alone).
    json plain = searchExperiment(2);
    plain.erase("search");
    plain["steps"] = json::parse(R"([{"strategy": "quantize.int8", "params": {"activations": "dynamic", "warmup": 1, "repeats": 3}}])");
    Runner runner(store, options());
    const auto outcomes = runner.run(parseExperiment(plain, "plain"), plain, {}, cancel);
    REQUIRE(outcomes.size() == 1 && outcomes[0].status == run_status::kDone);

    // Nothing can gain half a point of accuracy here: the search says so, with the closest trials.
    json doc = searchExperiment(3);
    doc["search"]["constraints"][0][">="] = 0.5;
    const SearchResult r = SearchRunner(store, options()).run(parseExperiment(doc, "s"), doc, {}, cancel);
    CHECK_EQ(r.warm, 1);
    CHECK_EQ(r.trials[0].runId, outcomes[0].runId);
    CHECK_EQ(r.best, -1);
    CHECK(r.winner.is_null());
    CHECK(!r.closest.empty());
    CHECK_MSG(r.explanation.find("no trial met the constraints; the closest") != std::string::npos, r.explanation);
}

TEST_CASE(halvingGivesTheBetterConfigurationMoreEpochs) {
    if (!test::haveFashionMnist()) SKIP(test::missingFashionMnistReason());
    RunStore store(test::tempDir() + "/halving.sqlite");
    std::atomic<bool> cancel{false};
    json doc = test::tinySearchBase("halving");
    doc["search"] = json::parse(R"({
        "algorithm": "random",
        "objectives": [{"maximize": "accuracy"}],
        "space": [
            {"strategy": "finetune", "params": {"lr": {"min": 0.00001, "max": 0.01, "log": true},
                                                "limit": 1000, "batch_size": 50}}
        ],
        "halving": {"min_epochs": 1, "max_epochs": 2, "eta": 2},
        "budget": {"trials": 3},
        "seed": 2
    })");
    // Hyperband's first bracket: two configurations at 1 epoch, the better one again at 2.
    const SearchResult r = SearchRunner(store, options()).run(parseExperiment(doc, "h"), doc, {}, cancel);
    REQUIRE(r.own() == 3);
    auto epochsOf = [](const SearchTrial& t) { return t.steps.at(0).at("params").at("epochs").get<int>(); };
    auto lrOf = [](const SearchTrial& t) { return t.steps.at(0).at("params").at("lr").get<double>(); };
    CHECK_EQ(epochsOf(r.trials[0]), 1);
    CHECK_EQ(epochsOf(r.trials[1]), 1);
    CHECK_EQ(epochsOf(r.trials[2]), 2);
    const std::size_t better = r.trials[0].summary.at("accuracy") >= r.trials[1].summary.at("accuracy") ? 0 : 1;
    CHECK_EQ(lrOf(r.trials[2]), lrOf(r.trials[better]));
    // Resumed from the store, the rungs' epochs are the runs' own.
    const SearchResult back = inspectSearch(store, r.searchRunId);
    REQUIRE(back.own() == 3);
    CHECK_EQ(epochsOf(back.trials[2]), 2);
    // A halving without a finetune in the space is refused.
    json bad = doc;
    bad["search"]["space"][0] = json::parse(R"({"strategy": "prune.structured"})");
    CHECK(hasIssue(bad, "/search/halving", "the space has none"));
}

MINI_TEST_MAIN()

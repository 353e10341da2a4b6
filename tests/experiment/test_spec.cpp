// Experiment files: every validation error class with a real malformed file under
// tests/data/experiments/, messages checked word for word; sweep expansion; the strategy registry;
// every bundled experiments/*.json validates.
#include "engine/core/errors.h"
#include "engine/experiment/spec.h"
#include "engine/strategies/strategy.h"
#include "tests/support/test_support.h"

#include <QtTest>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

using namespace lathe;
using json = nlohmann::json;

namespace {

// Every registered strategy, as the messages list them: families add strategies from their own folders,
// so the expected text follows the registry instead of a list kept here.
std::string knownStrategies() {
    std::string out;
    for (const auto& n : StrategyRegistry::instance().names()) out += (out.empty() ? "" : ", ") + n;
    return out;
}

std::vector<std::string> splitLines(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream in(s);
    std::string line;
    while (std::getline(in, line)) out.push_back(line);
    return out;
}

std::string loadError(const std::string& path) {
    try {
        loadExperimentFile(path);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return {};
}

json minimal() {
    return json::parse(R"({"name": "t", "model": {"zoo": "mlp-784-256-128-10"},
                           "steps": [{"strategy": "finetune", "params": {"epochs": 1}}, {"strategy": "measure"}]})");
}

} // namespace

class TestSpec : public QObject {
    Q_OBJECT

private slots:
    // Each row: a malformed file and lines its error must contain ("<file>: <pointer>: <message>",
    // the file part added here), and how many issues in all.
    void malformedFiles_data() {
        QTest::addColumn<QString>("file");
        QTest::addColumn<QStringList>("expected");
        QTest::addColumn<int>("count");
        auto row = [](const char* name, const char* file, QStringList lines, int count) {
            QTest::newRow(name) << QString(file) << lines << count;
        };
        row("unknown key", "unknown_key.json",
            {"/baseline/train/epoch: unknown key \"epoch\" (did you mean \"epochs\"?)"}, 1);
        row("unknown top-level key", "unknown_top_key.json",
            {"/mesure: unknown key \"mesure\" (did you mean \"measure\"?)"}, 1);
        row("wrong type", "wrong_type.json",
            {"/steps/0/params/noisy_ci: expected a number in (0, 10], got \"high\""}, 1);
        const char* renamed = "\"noisy_cv\" was renamed \"noisy_ci\": noise is now judged by the width of the median's "
                              "95% confidence interval relative to the median (default 0.05), not by the CV; see "
                              "docs/experiments.md";
        row("renamed key", "renamed_key.json",
            {QString("/steps/0/params/noisy_cv: ") + renamed, QString("/measure/noisy_cv: ") + renamed}, 2);
        row("out of range", "out_of_range.json",
            {"/baseline/train/epochs: expected an integer in [1, 1000], got 0",
             "/baseline/train/lr: expected a number in (0, 10], got -0.1",
             "/baseline/train/momentum: expected a number in [0, 1), got 1.0"},
            3);
        row("bad choice", "bad_choice.json",
            {"/baseline/train/optimizer: expected one of \"adam\", \"adamw\" or \"sgd\", got \"adan\" (did you mean "
             "\"adam\"?)"},
            1);
        row("unknown strategy", "unknown_strategy.json",
            {"/steps/0/strategy: unknown strategy \"finetun\" (did you mean \"finetune\"?)",
             QString::fromStdString("/steps/1/strategy: unknown strategy \"compress.zip\" (known: " + knownStrategies() + ")")},
            2);
        row("unknown model", "unknown_model.json",
            {"/model/zoo: unknown model \"mlp-784-256-10\" (did you mean \"mlp-784-64-10\"?)"}, 1);
        row("missing model", "missing_model.json",
            {"missing required key \"model\" (e.g. {\"zoo\": \"mlp-784-256-128-10\"})"}, 1);
        row("zoo and path", "model_zoo_and_path.json",
            {"/model: give either \"zoo\" (a model zoo name) or \"path\" (a .safetensors file), not both"}, 1);
        row("missing strategy", "missing_strategy.json",
            {QString::fromStdString("/steps/0: missing required key \"strategy\" (one of: " + knownStrategies() + ")")}, 1);
        row("bad sweep paths", "bad_sweep_path.json",
            {"/sweep/steps[3].params.epochs: path \"steps[3].params.epochs\" addresses nothing: steps[3] does not "
             "exist (steps has 1 element)",
             "/sweep/steps[0.params.lr: bad path \"steps[0.params.lr\": expected names separated by dots, each "
             "optionally followed by [index], e.g. \"steps[0].params.epochs\"",
             "/sweep/steps[0].params.epochs: expected a non-empty list of values, got 2"},
            3);
        row("bad sweep value", "bad_sweep_value.json",
            {"/sweep/steps[0].params.lr/1: expected a number in (0, 10], got \"fast\""}, 1);
        row("sweep of an unknown key", "sweep_unknown_key.json",
            {"/sweep/steps[0].params.epoch/0: unknown key \"epoch\" (did you mean \"epochs\"?)",
             "/sweep/steps[0].params.epoch/1: unknown key \"epoch\" (did you mean \"epochs\"?)"},
            2);
        row("bad measure", "bad_measure.json",
            {"/measure/batch_sizes: expected a non-empty list of integers in [1, 65536], got []",
             "/measure/repeats: expected an integer in [1, 10000000], got 0",
             "/measure/accuracy: expected true or false, got \"yes\""},
            3);
        row("bad dataset", "bad_dataset.json",
            {"/dataset/split: expected one of \"test\" or \"train\", got \"validation\"",
             "/dataset/limit: expected an integer in [0, 1000000000000], got -5",
             "/dataset/name: unknown dataset \"fashion-mnst\" (did you mean \"fashion-mnist\"?)"},
            3);
        row("bad device and seed", "bad_device.json",
            {"/device: expected \"auto\", \"cpu\", \"cuda\" or \"cuda:N\", got \"gpu\"",
             "/seed: expected an integer >= 0, got -1"},
            2);
        row("missing model file", "missing_file.json", {}, 1);
        row("not an object", "not_an_object.json", {}, 1);
        row("many errors at once", "many_errors.json",
            {"/nme: unknown key \"nme\" (did you mean \"name\"?)",
             "/baseline/train/batchsize: unknown key \"batchsize\" (did you mean \"batch_size\"?)",
             "/baseline/train/epochs: expected an integer in [1, 1000], got \"two\"",
             "/steps/0/params/lr: expected a number in (0, 10], got 0",
             "/steps/1/params/batch_sizes: expected a non-empty list of integers in [1, 65536], got [1,0]"},
            5);
    }

    void malformedFiles() {
        QFETCH(QString, file);
        QFETCH(QStringList, expected);
        QFETCH(int, count);
        const std::string path = test::sourcePath("tests/data/experiments/" + file.toStdString());
        const std::string error = loadError(path);
        QVERIFY2(!error.empty(), ("no error for " + path).c_str());
        const auto lines = splitLines(error);
        for (const auto& line : lines) QVERIFY2(line.rfind(path + ": ", 0) == 0, line.c_str());
        for (const auto& e : expected) {
            const std::string want = path + ": " + e.toStdString();
            const bool found = std::find(lines.begin(), lines.end(), want) != lines.end();
            QVERIFY2(found, ("missing line:\n  " + want + "\ngot:\n" + error).c_str());
        }
        QCOMPARE(static_cast<int>(lines.size()), count);

        // validateExperiment on the same document reports the same issues (the GUI's path).
        std::ifstream in(path);
        const json doc = json::parse(in, nullptr, false);
        if (!doc.is_discarded()) QCOMPARE(static_cast<int>(validateExperiment(doc, path).size()), count);
    }

    void syntaxErrorHasLineAndColumn() {
        const std::string path = test::sourcePath("tests/data/experiments/syntax_error.json");
        const std::string error = loadError(path);
        // The trailing comma on line 5: the parser stops at the "}" in column 56.
        QVERIFY2(error.rfind(path + ":5:56: JSON syntax error: ", 0) == 0, error.c_str());
    }

    // Issue "The first milestone, trustworthy for a new user": a key given twice was silently
    // replaced by the last one; it is an error at the second occurrence, naming the first one's line.
    void duplicateKeysAreErrors() {
        const std::string path = test::sourcePath("tests/data/experiments/duplicate_key.json");
        const auto lines = splitLines(loadError(path));
        const std::vector<std::string> want{
            path + ": /steps/1/params/warmup: duplicate key \"warmup\" (first at line 6)",
            path + ": /name: duplicate key \"name\" (first at line 2)"};
        QCOMPARE(lines, want);
    }

    void duplicateKeyBesideOtherErrors() {
        // The other problems of the file are reported with it, as for any invalid file.
        const std::string path = test::sourcePath("tests/data/experiments/duplicate_key_and_error.json");
        const auto lines = splitLines(loadError(path));
        QCOMPARE(lines.size(), std::size_t(2));
        QCOMPARE(lines[0], path + ": /baseline/train/epochs: duplicate key \"epochs\" (first at line 4)");
        QVERIFY2(lines[1].rfind(path + ": /baseline/train/epochs: expected ", 0) == 0, lines[1].c_str());
    }

    void duplicateKeyPointers_data() {
        QTest::addColumn<QString>("text");
        QTest::addColumn<QStringList>("expected");
        QTest::newRow("none") << R"({"a": 1, "b": {"a": 2}, "c": [{"a": 3}, {"a": 4}]})" << QStringList{};
        QTest::newRow("array index counts containers")
            << R"({"c": [1, [2], {"x": 1}, {"x": 1, "x": 2}]})"
            << QStringList{"/c/3/x: duplicate key \"x\" (first at line 1)"};
        QTest::newRow("escaped pointer") << "{\"a/b\": 1,\n \"a/b\": 2}"
                                         << QStringList{"/a~1b: duplicate key \"a/b\" (first at line 1)"};
        QTest::newRow("same key in sibling objects is fine") << R"([{"k": 1}, {"k": 2}])" << QStringList{};
    }
    void duplicateKeyPointers() {
        QFETCH(QString, text);
        QFETCH(QStringList, expected);
        QStringList got;
        for (const auto& i : findDuplicateKeys(text.toStdString()))
            got << QString::fromStdString(i.pointer + ": " + i.message);
        QCOMPARE(got, expected);
    }

    // Issue "The first milestone, trustworthy for a new user": a measure step ignored the
    // experiment's measure section and timed with its own defaults.
    void measureStepsInheritTheMeasureSection() {
        const auto spec = loadExperimentFile(test::sourcePath("tests/data/experiments/measure_inherited.json"));
        QCOMPARE(spec.steps.size(), std::size_t(2));
        const ParamValues& before = spec.steps[0].params;
        const ParamValues& after = spec.steps[1].params;
        // Given in the step: the step wins.
        QCOMPARE(before.integer("repeats"), std::int64_t(7));
        QCOMPARE(after.boolean("accuracy"), true);
        // Not given in the step: the section's value.
        QCOMPARE(after.integer("repeats"), std::int64_t(30));
        QCOMPARE(before.boolean("accuracy"), false);
        for (const ParamValues* p : {&before, &after}) {
            QCOMPARE(p->integers("batch_sizes"), (std::vector<std::int64_t>{8, 2}));
            QCOMPARE(p->integer("warmup"), std::int64_t(3));
            QCOMPARE(p->number("noisy_ci"), 0.2);
            // Given by neither: the section's default.
            QCOMPARE(p->integer("rotate_batches"), std::int64_t(4));
        }
        // The step's JSON keeps what it wrote: written back, it still inherits.
        QVERIFY(!spec.steps[1].paramsJson.contains("repeats"));
        QCOMPARE(spec.steps[0].paramsJson.at("repeats").get<int>(), 7);
        QCOMPARE(spec.steps[0].paramsJson.at("label").get<std::string>(), std::string("before"));

        // Without a measure section, the section's defaults: the fields are declared once, with one set
        // of defaults (MeasureSettings).
        const auto plain = parseExperiment(minimal(), "inline");
        QCOMPARE(plain.steps[1].params.integer("repeats"), std::int64_t(MeasureSettings{}.repeats));
        QCOMPARE(plain.steps[1].params.integers("batch_sizes"), MeasureSettings{}.batchSizes);

        // A sweep over the section reaches the steps of each plan.
        json doc = minimal();
        doc["measure"] = {{"repeats", 11}};
        doc["sweep"] = {{"measure.repeats", {12, 13}}};
        const auto plans = expandSweep(parseExperiment(doc, "inline"), doc);
        QCOMPARE(plans.size(), std::size_t(2));
        QCOMPARE(plans[0].spec.steps[1].params.integer("repeats"), std::int64_t(12));
        QCOMPARE(plans[1].spec.steps[1].params.integer("repeats"), std::int64_t(13));
    }

    void missingFileNamesTheFile() {
        const std::string path = test::sourcePath("tests/data/experiments/missing_file.json");
        const std::string error = loadError(path);
        QVERIFY2(error.find(": /model/path: file \"") != std::string::npos, error.c_str());
        QVERIFY2(error.find("no-such-model.safetensors\" does not exist") != std::string::npos, error.c_str());
    }

    void emptyStepsAreValid() {
        const auto spec = loadExperimentFile(test::sourcePath("tests/data/experiments/empty_steps.json"));
        QVERIFY(spec.steps.empty());
        QVERIFY(spec.baseline.train.has_value());
        QCOMPARE(spec.baseline.train->epochs, 1);
        // Defaults from the train schema were filled in.
        QCOMPARE(spec.baseline.train->batchSize, 128);
        QCOMPARE(spec.baseline.train->optimizer, std::string("adam"));
        QCOMPARE(spec.baseline.trainJson.at("lr").get<double>(), 0.001);
    }

    void pathsResolveAgainstTheExperimentFile() {
        ExperimentSpec spec;
        spec.sourceName = "/data/exp/x.json";
        QCOMPARE(resolveAgainstExperiment(spec, "models/t.safetensors"), std::string("/data/exp/models/t.safetensors"));
        QCOMPARE(resolveAgainstExperiment(spec, "../t.safetensors"), std::string("/data/t.safetensors"));
        QCOMPARE(resolveAgainstExperiment(spec, "/abs/t.safetensors"), std::string("/abs/t.safetensors"));
        QCOMPARE(resolveAgainstExperiment(spec, ""), std::string());
        spec.sourceName = "x.json"; // a file in the working folder
        QCOMPARE(resolveAgainstExperiment(spec, "t.safetensors"), std::string("t.safetensors"));
        spec.sourceName.clear(); // not read from a file: left as written
        QCOMPARE(resolveAgainstExperiment(spec, "m/t.safetensors"), std::string("m/t.safetensors"));
    }

    void defaultsAreFilledIn() {
        const auto spec = parseExperiment(minimal(), "inline");
        QCOMPARE(spec.name, std::string("t"));
        QCOMPARE(spec.dataset.name, std::string("fashion-mnist"));
        QCOMPARE(spec.steps.size(), std::size_t(2));
        QCOMPARE(spec.steps[0].params.integer("epochs"), std::int64_t(1));
        QCOMPARE(spec.steps[0].params.number("lr"), 0.0001);
        QCOMPARE(spec.steps[0].paramsJson.at("optimizer").get<std::string>(), std::string("adam"));
        // A measure step's settings inherit the experiment's measure section (here its defaults); the
        // step's JSON keeps only what it wrote, so the file written back still inherits.
        QCOMPARE(spec.steps[1].params.integers("batch_sizes"), (std::vector<std::int64_t>{1, 64, 256}));
        QVERIFY(!spec.steps[1].paramsJson.contains("batch_sizes"));
        QCOMPARE(spec.measure.repeats, 200);
        // toJson round-trips through the parser to the same typed spec.
        const auto again = parseExperiment(toJson(spec), "inline");
        QCOMPARE(toJson(again), toJson(spec));
    }

    void integralFloatsAreIntegers() {
        json doc = minimal();
        doc["steps"][0]["params"]["epochs"] = 2.0;
        QVERIFY(validateExperiment(doc).empty());
        doc["steps"][0]["params"]["epochs"] = 2.5;
        const auto issues = validateExperiment(doc);
        QCOMPARE(issues.size(), std::size_t(1));
        QCOMPARE(issues[0].pointer, std::string("/steps/0/params/epochs"));
        QCOMPARE(issues[0].message, std::string("expected an integer in [1, 1000], got 2.5"));
    }

    void closestMatchOnlySuggestsTypos() {
        QCOMPARE(closestMatch("epoch", {"epochs", "lr"}), std::string("epochs"));
        QCOMPARE(closestMatch("optimiser", {"optimizer", "momentum"}), std::string("optimizer"));
        QCOMPARE(closestMatch("Batch_Size", {"batch_size"}), std::string("batch_size"));
        QCOMPARE(closestMatch("lrate", {"epochs", "momentum"}), std::string());
        QCOMPARE(closestMatch("x", {"lr"}), std::string());
    }

    // ---- sweeps

    void sweepIsACartesianProductInFileOrder() {
        const std::string path = test::tempDir() + "/sweep.json";
        {
            // "z..." before "a..." in the file: the axes must follow the file, not key order.
            std::ofstream out(path);
            out << R"({"name": "grid", "model": {"zoo": "mlp-784-256-128-10"},
                       "steps": [{"strategy": "finetune"}],
                       "sweep": {"steps[0].params.lr": [0.01, 0.001, 0.0001], "seed": [1, 2]}})";
        }
        const auto spec = loadExperimentFile(path);
        QCOMPARE(spec.sweepOrder, (std::vector<std::string>{"steps[0].params.lr", "seed"}));
        std::ifstream in(path);
        const json doc = json::parse(in);
        const auto plans = expandSweep(spec, doc);
        QCOMPARE(plans.size(), std::size_t(6));
        const std::vector<std::string> labels{
            "steps[0].params.lr=0.01, seed=1",   "steps[0].params.lr=0.01, seed=2",
            "steps[0].params.lr=0.001, seed=1",  "steps[0].params.lr=0.001, seed=2",
            "steps[0].params.lr=0.0001, seed=1", "steps[0].params.lr=0.0001, seed=2"};
        for (std::size_t i = 0; i < plans.size(); ++i) {
            QCOMPARE(plans[i].label, labels[i]);
            QCOMPARE(plans[i].index, static_cast<int>(i));
            QCOMPARE(plans[i].total, 6);
            QVERIFY(!plans[i].resolved.contains("sweep"));
            QVERIFY(plans[i].spec.sweep.empty());
        }
        QCOMPARE(plans[2].spec.steps[0].params.number("lr"), 0.001);
        QCOMPARE(plans[3].spec.seed, std::uint64_t(2));
        QCOMPARE(plans[5].resolved["steps"][0]["params"]["lr"].get<double>(), 0.0001);
        // The original document is untouched and the unswept fields keep their defaults.
        QCOMPARE(plans[4].spec.steps[0].params.integer("epochs"), std::int64_t(1));
    }

    void sweepWithoutAxesGivesOnePlan() {
        const json doc = minimal();
        const auto plans = expandSweep(parseExperiment(doc, "inline"), doc);
        QCOMPARE(plans.size(), std::size_t(1));
        QCOMPARE(plans[0].label, std::string());
        QCOMPARE(plans[0].resolved, doc);
    }

    void sweepCanCreateMissingParameters() {
        json doc = minimal();
        doc["sweep"] = {{"steps[1].params.repeats", {10, 20}}, {"measure.warmup", {0}}};
        QVERIFY(validateExperiment(doc).empty());
        const auto plans = expandSweep(parseExperiment(doc, "inline"), doc);
        QCOMPARE(plans.size(), std::size_t(2));
        QCOMPARE(plans[1].spec.steps[1].params.integer("repeats"), std::int64_t(20));
        QCOMPARE(plans[0].spec.measure.warmup, 0);
    }

    void sweepTooLarge() {
        json doc = minimal();
        json many = json::array();
        for (int i = 1; i <= 200; ++i) many.push_back(i);
        doc["sweep"] = {{"seed", many}, {"steps[0].params.epochs", many}};
        const auto issues = validateExperiment(doc);
        QCOMPARE(issues.size(), std::size_t(1));
        QCOMPARE(issues[0].message, std::string("the sweep expands to 40000 plans (at most 10000)"));
    }

    // ---- strategy registry

    void registryDefaultsValidate() {
        // Every field default of every registered strategy passes its own schema (the GUI relies on it).
        for (const auto* schema : StrategyRegistry::instance().all()) {
            json filled;
            ParamValues values;
            const auto issues = validateParams(*schema, json::object(), "/p", &filled, &values);
            QVERIFY2(issues.empty(), (schema->name + ": " + (issues.empty() ? "" : issues[0].message)).c_str());
            std::size_t inheriting = 0;
            for (const auto& f : schema->fields) {
                QVERIFY2(!f.help.empty(), (schema->name + "." + f.name + " has no help").c_str());
                // A field left out either takes its default or inherits from the experiment.
                QCOMPARE(values.has(f.name), f.inherits.empty());
                inheriting += f.inherits.empty() ? 0 : 1;
            }
            QCOMPARE(filled.size() + inheriting, schema->fields.size());
            const json j = schemaToJson(*schema);
            QCOMPARE(j["fields"].size(), schema->fields.size());
        }
        QVERIFY(StrategyRegistry::instance().find("train"));
        QVERIFY(StrategyRegistry::instance().find("finetune"));
        QVERIFY(StrategyRegistry::instance().find("measure"));
    }

    void registryRejectsDuplicates() {
        StrategyRegistry local;
        StrategySchema s{"x.y", "x", "test", {}};
        local.addEntry(s, [](const ParamValues&) -> std::unique_ptr<Strategy> { return nullptr; });
        QVERIFY_THROWS_EXCEPTION(ConfigError, local.addEntry(s, [](const ParamValues&) -> std::unique_ptr<Strategy> {
            return nullptr;
        }));
        QCOMPARE(local.all().size(), std::size_t(1));
    }

    void paramValuesAreTyped() {
        ParamValues v;
        v.set("n", std::int64_t(3));
        v.set("x", 0.5);
        QCOMPARE(v.number("n"), 3.0); // integers widen to numbers
        QCOMPARE(v.integer("n"), std::int64_t(3));
        QVERIFY_THROWS_EXCEPTION(ConfigError, v.integer("x"));
        QVERIFY_THROWS_EXCEPTION(ConfigError, v.string("missing"));
    }

    // ---- the bundled examples

    void bundledExperimentsValidate() {
        const std::string dir = test::sourcePath("experiments");
        int count = 0;
        std::set<std::string> names;
        for (const auto& entry : std::filesystem::directory_iterator(dir)) {
            if (entry.path().extension() != ".json") continue;
            ++count;
            const std::string path = entry.path().string();
            ExperimentSpec spec;
            try {
                spec = loadExperimentFile(path);
            } catch (const std::exception& e) {
                QFAIL(e.what());
            }
            QVERIFY2(!spec.description.empty(), (path + " has no description").c_str());
            QVERIFY2(spec.description.find('\n') == std::string::npos, (path + ": description is not one line").c_str());
            QVERIFY2(names.insert(spec.name).second, (path + ": duplicate name " + spec.name).c_str());
            std::ifstream in(path);
            QVERIFY(!expandSweep(spec, json::parse(in)).empty());
        }
        QVERIFY2(count >= 5, "experiments/ should hold the curated examples");
    }
};

QTEST_GUILESS_MAIN(TestSpec)
#include "test_spec.moc"

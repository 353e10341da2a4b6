// Experiment files: JSON -> ExperimentSpec with every problem reported at its JSON pointer.
// Parameter types, ranges and defaults come from the strategy schemas; the fixed sections (dataset,
// measure) are described with the same ParamField records so their messages read alike.
#include "engine/experiment/spec.h"

#include "engine/core/errors.h"
#include "engine/data/dataset.h"
#include "engine/experiment/search_spec.h"
#include "engine/io/bert_model.h"
#include "engine/io/model_io.h"
#include "engine/io/zoo.h"
#include "engine/strategies/measure/measure_fields.h"
#include "engine/strategies/train/training.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace lathe {
namespace {

using json = nlohmann::json;
using Issues = std::vector<ValidationIssue>;
namespace fs = std::filesystem;

std::string describe(const json& v) { return describeJson(v); }

std::string child(const std::string& pointer, const std::string& key) { return jsonPointerChild(pointer, key); }
std::string child(const std::string& pointer, std::size_t index) { return jsonPointerChild(pointer, index); }

std::string plainList(const std::vector<std::string>& items) {
    std::string s;
    for (const auto& i : items) s += (s.empty() ? "" : ", ") + i;
    return s;
}

void checkUnknownKeys(const json& obj, const std::string& pointer, const std::vector<std::string>& known,
                      Issues& issues) {
    for (const auto& [key, value] : obj.items()) {
        if (std::find(known.begin(), known.end(), key) != known.end()) continue;
        issues.push_back({child(pointer, key), unknownKeyMessage(key, known)});
    }
}

// The dataset section's fields besides "name", bound to DatasetSpec.
const SchemaBuilder<DatasetSpec>& datasetSchemaBuilder() {
    static const SchemaBuilder<DatasetSpec> b = [] {
        const DatasetSpec d;
        SchemaBuilder<DatasetSpec> s("dataset", "dataset", "the data the experiment trains and evaluates on");
        s.choice("split", &DatasetSpec::split, {"test", "train"}, d.split, "the split accuracy is evaluated on");
        s.integer("limit", &DatasetSpec::limit, d.limit,
                  {.min = 0, .max = 1e12, .unit = "samples", .help = "evaluate on the first N samples (0: all)"});
        return s;
    }();
    return b;
}

const std::vector<std::string> kTopKeys{"name", "description", "model", "dataset", "device", "baseline",
                                        "steps", "measure", "sweep", "seed", "tags", "notes",
                                        "search"};

constexpr std::size_t kMaxPlans = 10000;

// ---------------------------------------------------------------- sweep paths

struct PathSegment {
    std::string key;  // object key (empty for a bare [i] after another index)
    std::optional<std::size_t> index;
};

// "steps[0].params.sparsity" -> {steps,[0]} {params} {sparsity}. Returns false on bad syntax.
bool parseSweepPath(const std::string& path, std::vector<PathSegment>& out) {
    out.clear();
    std::size_t i = 0;
    const std::size_t n = path.size();
    if (n == 0) return false;
    while (i < n) {
        PathSegment seg;
        while (i < n && path[i] != '.' && path[i] != '[') seg.key += path[i++];
        if (seg.key.empty()) return false;
        out.push_back(seg);
        while (i < n && path[i] == '[') {
            const std::size_t close = path.find(']', i);
            if (close == std::string::npos || close == i + 1) return false;
            const std::string digits = path.substr(i + 1, close - i - 1);
            if (!std::all_of(digits.begin(), digits.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) ||
                digits.size() > 9)
                return false;
            out.push_back({"", static_cast<std::size_t>(std::stoul(digits))});
            i = close + 1;
        }
        if (i < n) {
            if (path[i] != '.') return false;
            ++i;
            if (i == n) return false;
        }
    }
    return true;
}

std::string segmentsText(const std::vector<PathSegment>& segs, std::size_t count) {
    std::string s;
    for (std::size_t k = 0; k < count; ++k) {
        if (segs[k].index) {
            s += '[';
            s += std::to_string(*segs[k].index);
            s += ']';
        } else {
            if (!s.empty()) s += '.';
            s += segs[k].key;
        }
    }
    return s;
}

// Sets value at path in doc; intermediate objects are created, arrays must already hold the index.
// Returns "" or what is wrong; pointer receives the JSON pointer of the target.
std::string setAtPath(json& doc, const std::vector<PathSegment>& segs, const json& value, std::string& pointer) {
    json* node = &doc;
    pointer.clear();
    for (std::size_t k = 0; k < segs.size(); ++k) {
        const bool last = k + 1 == segs.size();
        if (segs[k].index) {
            const std::size_t idx = *segs[k].index;
            if (!node->is_array())
                return segmentsText(segs, k) + " is not a list";
            if (idx >= node->size())
                return segmentsText(segs, k + 1) + " does not exist (" + segmentsText(segs, k) + " has " +
                       std::to_string(node->size()) + (node->size() == 1 ? " element)" : " elements)");
            pointer = child(pointer, idx);
            node = &(*node)[idx];
        } else {
            if (!node->is_object())
                return (k == 0 ? std::string("the document") : segmentsText(segs, k)) + " is not an object";
            if (k == 0 && segs[k].key == "sweep") return "the sweep cannot sweep itself";
            pointer = child(pointer, segs[k].key);
            if (!node->contains(segs[k].key)) {
                if (!last && segs[k + 1].index)
                    return segmentsText(segs, k + 1) + " does not exist (no \"" + segs[k].key + "\")";
                (*node)[segs[k].key] = last ? value : json::object();
            }
            node = &(*node)[segs[k].key];
        }
        if (last) *node = value;
    }
    return {};
}

// ---------------------------------------------------------------- the document

struct ParseOptions {
    std::string baseDir;   // relative paths resolve against this folder
    bool checkFiles = false;
};

std::string resolvePath(const ParseOptions& opt, const std::string& p) {
    if (opt.baseDir.empty()) return p;
    return resolveAgainstFolder(opt.baseDir, p);
}

void checkFile(const ParseOptions& opt, const std::string& pointer, const std::string& resolved, Issues& issues) {
    if (!opt.checkFiles) return;
    std::error_code ec;
    if (!fs::is_regular_file(resolved, ec)) issues.push_back({pointer, "file \"" + resolved + "\" does not exist"});
}

bool getString(const json& obj, const std::string& key, const std::string& pointer, Issues& issues, std::string& out,
               bool nonEmpty = true) {
    if (!obj.contains(key)) return false;
    const json& v = obj.at(key);
    if (!v.is_string() || (nonEmpty && v.get<std::string>().empty())) {
        issues.push_back({child(pointer, key), std::string("expected ") + (nonEmpty ? "a non-empty string" : "a string") +
                                                   ", got " + describe(v)});
        return false;
    }
    out = v.get<std::string>();
    return true;
}

bool requireObject(const json& v, const std::string& pointer, Issues& issues) {
    if (v.is_object()) return true;
    issues.push_back({pointer, "expected an object, got " + describe(v)});
    return false;
}

void parseModel(const json& m, const std::string& ptr, const ParseOptions& opt, Issues& issues, ModelSpec& out) {
    if (!requireObject(m, ptr, issues)) return;
    checkUnknownKeys(m, ptr, {"zoo", "path", "architecture"}, issues);
    const bool hasZoo = getString(m, "zoo", ptr, issues, out.zoo);
    const bool hasPath = getString(m, "path", ptr, issues, out.path);
    getString(m, "architecture", ptr, issues, out.architecturePath);
    if (m.contains("zoo") && m.contains("path")) {
        issues.push_back({ptr, "give either \"zoo\" (a model zoo name) or \"path\" (a .safetensors file), not both"});
        return;
    }
    if (!m.contains("zoo") && !m.contains("path")) {
        issues.push_back({ptr, "missing required key \"zoo\" (a model zoo name) or \"path\" (a .safetensors file)"});
        return;
    }
    if (hasZoo) {
        const auto names = zooNames();
        if (std::find(names.begin(), names.end(), out.zoo) == names.end())
            issues.push_back({child(ptr, "zoo"), unknownNameMessage("model", out.zoo, names)});
        if (m.contains("architecture"))
            issues.push_back({child(ptr, "architecture"), "\"architecture\" goes with \"path\", not with \"zoo\""});
    }
    if (hasPath) {
        out.path = resolvePath(opt, out.path);
        checkFile(opt, child(ptr, "path"), out.path, issues);
    }
    if (!out.architecturePath.empty() && out.architecturePath != kBertArchitecture) {
        out.architecturePath = resolvePath(opt, out.architecturePath);
        checkFile(opt, child(ptr, "architecture"), out.architecturePath, issues);
    }
}

void parseDataset(const json& d, const std::string& ptr, const ParseOptions& opt, Issues& issues, DatasetSpec& out) {
    if (!requireObject(d, ptr, issues)) return;
    ParamValues v;
    const std::size_t before = issues.size();
    checkFields(datasetSchemaBuilder().schema().fields, d, ptr, issues, nullptr, &v, {"name"});
    if (issues.size() == before) out = datasetSchemaBuilder().read(v, out);
    if (!getString(d, "name", ptr, issues, out.name)) return;
    const auto names = datasetNames();
    if (std::find(names.begin(), names.end(), out.name) != names.end()) return;
    const bool looksLikePath = out.name.find('/') != std::string::npos || out.name.rfind('.', 0) == 0;
    if (!looksLikePath) {
        issues.push_back({child(ptr, "name"),
                          unknownNameMessage("dataset", out.name, names, "or a folder such as \"./data\"")});
        return;
    }
    out.name = resolvePath(opt, out.name);
    std::error_code ec;
    if (opt.checkFiles && !fs::is_directory(out.name, ec))
        issues.push_back({child(ptr, "name"), "dataset folder \"" + out.name + "\" does not exist"});
}

void parseBaseline(const json& b, const std::string& ptr, const ParseOptions& opt, std::uint64_t seed, Issues& issues,
                   BaselineSpec& out) {
    if (!requireObject(b, ptr, issues)) return;
    checkUnknownKeys(b, ptr, {"train", "model"}, issues);
    if (b.contains("train") && b.contains("model")) {
        issues.push_back({ptr, "give either \"train\" (train a baseline) or \"model\" (a saved model), not both"});
        return;
    }
    if (b.contains("train")) {
        const std::string tp = child(ptr, "train");
        if (!requireObject(b.at("train"), tp, issues)) return;
        const auto& schema = trainSchemaBuilder();
        ParamValues values;
        const std::size_t before = issues.size();
        auto found = validateParams(schema.schema(), b.at("train"), tp, &out.trainJson, &values);
        issues.insert(issues.end(), found.begin(), found.end());
        if (issues.size() == before) {
            out.train = schema.read(values);
            out.train->seed = seed;
        }
    }
    if (getString(b, "model", ptr, issues, out.modelPath)) {
        out.modelPath = resolvePath(opt, out.modelPath);
        checkFile(opt, child(ptr, "model"), out.modelPath, issues);
    }
}

// A field the step leaves out that inherits (ParamField::inherits, e.g. a measure step's "/measure") takes
// the experiment's value there, its default filled in: checked against the step's field and reported at
// the step. paramsJson keeps only what the step wrote, so the file written back still inherits.
void inheritFields(const StrategySchema& schema, const json& filledDoc, const std::string& ptr, StepSpec& step,
                   Issues& issues) {
    for (const ParamField& f : schema.fields) {
        if (f.inherits.empty() || step.params.has(f.name)) continue;
        const json::json_pointer at(f.inherits + "/" + f.name);
        if (!filledDoc.contains(at)) {
            issues.push_back({ptr, "\"" + f.name + "\" inherits " + at.to_string() + ", which the experiment does not have"});
            continue;
        }
        ParamValue v;
        if (const std::string problem = checkValue(f, filledDoc.at(at), v); !problem.empty()) {
            issues.push_back({ptr, "inherited " + at.to_string() + ": " + problem});
            continue;
        }
        step.params.set(f.name, std::move(v));
    }
}

void parseSteps(const json& steps, const std::string& ptr, const json& filledDoc, Issues& issues,
                std::vector<StepSpec>& out) {
    if (!steps.is_array()) {
        issues.push_back({ptr, "expected a list of steps, got " + describe(steps)});
        return;
    }
    const auto& registry = StrategyRegistry::instance();
    std::vector<std::string> known;
    for (const auto* s : registry.all()) known.push_back(s->name);
    for (std::size_t i = 0; i < steps.size(); ++i) {
        const std::string sp = child(ptr, i);
        const json& st = steps[i];
        if (!requireObject(st, sp, issues)) continue;
        checkUnknownKeys(st, sp, {"strategy", "params", "enabled"}, issues);
        StepSpec step;
        if (st.contains("enabled")) {
            if (st.at("enabled").is_boolean()) step.enabled = st.at("enabled").get<bool>();
            else issues.push_back({child(sp, "enabled"), "expected true or false, got " + describe(st.at("enabled"))});
        }
        json params = json::object();
        if (st.contains("params")) {
            params = st.at("params");
            if (!requireObject(params, child(sp, "params"), issues)) continue;
        }
        if (!st.contains("strategy")) {
            issues.push_back({sp, "missing required key \"strategy\" (one of: " + plainList(known) + ")"});
            continue;
        }
        if (!getString(st, "strategy", sp, issues, step.strategy)) continue;
        const StrategySchema* schema = registry.find(step.strategy);
        if (!schema) {
            issues.push_back({child(sp, "strategy"), unknownNameMessage("strategy", step.strategy, known)});
            continue;
        }
        auto found = validateParams(*schema, params, child(sp, "params"), &step.paramsJson, &step.params);
        issues.insert(issues.end(), found.begin(), found.end());
        inheritFields(*schema, filledDoc, child(sp, "params"), step, issues);
        out.push_back(std::move(step));
    }
}

// What validation knows of the experiment's model before the chain: a zoo model's or an architecture
// file's input shape and classes. A saved model without an architecture file beside it is not read here.
std::optional<ModelSignature> modelSignatureOf(const ExperimentSpec& spec) {
    if (!spec.baseline.modelPath.empty()) return std::nullopt;
    try {
        nlohmann::json arch;
        if (!spec.model.zoo.empty()) arch = zooArchitecture(spec.model.zoo);
        else if (spec.model.architecturePath == kBertArchitecture) arch = bertArchitectureOf(spec.model.path, bertModelName(spec.model.path));
        else if (!spec.model.architecturePath.empty()) arch = readArchitectureFile(spec.model.architecturePath);
        else return std::nullopt;
        const auto model = Model::fromArchitecture(arch);
        return ModelSignature{model->name(), model->inputShape(), model->numClasses(),
                              static_cast<int>(model->layers().size()), arch};
    } catch (const Error&) {
        return std::nullopt; // reported where the model section is checked, or at the run
    }
}

// The steps' checks against the model each receives (StrategySchema::checkModel), in chain order, so a
// step after a distillation is checked against its student. Steps with invalid params are skipped.
void checkStepModels(const json& steps, const ParseOptions& opt, const ExperimentSpec& spec, std::size_t firstIssue,
                     Issues& issues) {
    ModelCheck check;
    check.model = modelSignatureOf(spec);
    ModelSignature data{spec.dataset.name, {}, 0};
    if (knownDatasetShape(spec.dataset.name, data.input, data.classes)) check.data = data;
    check.resolvePath = [&opt](const std::string& p) { return resolvePath(opt, p); };
    check.issues = &issues;
    const auto& registry = StrategyRegistry::instance();
    for (std::size_t i = 0, s = 0; i < steps.size() && s < spec.steps.size(); ++i) {
        const std::string params = child(child("/steps", i), "params");
        const StepSpec& step = spec.steps[s];
        if (!steps[i].is_object() || !steps[i].contains("strategy") || !steps[i].at("strategy").is_string() ||
            steps[i].at("strategy").get<std::string>() != step.strategy)
            continue; // a step that failed to parse has no StepSpec
        ++s;
        const StrategySchema* schema = registry.find(step.strategy);
        const bool paramsValid = std::none_of(issues.begin() + static_cast<std::ptrdiff_t>(firstIssue), issues.end(),
                                              [&](const ValidationIssue& is) { return is.pointer.rfind(params, 0) == 0; });
        if (!step.enabled || !schema || !schema->checkModel || !paramsValid) continue;
        check.pointer = params;
        schema->checkModel(step.params, check);
    }
}

void parseMeasure(const json& m, const std::string& ptr, Issues& issues, MeasureSpec& out) {
    if (!requireObject(m, ptr, issues)) return;
    ParamValues v;
    const std::size_t before = issues.size();
    checkFields(measureSettingsSchema().schema().fields, m, ptr, issues, nullptr, &v);
    if (issues.size() == before) out = measureSettingsSchema().read(v, out);
}

void parseDocument(const json& doc, const ParseOptions& opt, Issues& issues, ExperimentSpec& spec);

// Every value of every axis is applied to the document (without the sweep) and validated; what
// is new compared with the document's own problems is reported under /sweep/<path>/<i>.
void checkSweep(const json& doc, const ParseOptions& opt, const Issues& baseIssues, Issues& issues) {
    const json& sweep = doc.at("sweep");
    if (!sweep.is_object()) {
        issues.push_back({"/sweep", "expected an object of {\"path\": [values...]}, got " + describe(sweep)});
        return;
    }
    json base = doc;
    base.erase("sweep");
    std::set<std::pair<std::string, std::string>> known;
    for (const auto& i : baseIssues) known.insert({i.pointer, i.message});
    std::size_t plans = 1;
    for (const auto& [path, values] : sweep.items()) {
        const std::string ptr = child("/sweep", path);
        std::vector<PathSegment> segs;
        if (!parseSweepPath(path, segs)) {
            issues.push_back({ptr, "bad path \"" + path +
                                       "\": expected names separated by dots, each optionally followed by [index], "
                                       "e.g. \"steps[0].params.epochs\""});
            continue;
        }
        if (!values.is_array() || values.empty()) {
            issues.push_back({ptr, "expected a non-empty list of values, got " + describe(values)});
            continue;
        }
        plans *= values.size();
        for (std::size_t i = 0; i < values.size(); ++i) {
            json trial = base;
            std::string target;
            const std::string problem = setAtPath(trial, segs, values[i], target);
            if (!problem.empty()) {
                issues.push_back({ptr, "path \"" + path + "\" addresses nothing: " + problem});
                break;
            }
            Issues found;
            ExperimentSpec scratch;
            parseDocument(trial, opt, found, scratch);
            for (const auto& f : found) {
                if (known.count({f.pointer, f.message})) continue;
                std::string msg = f.message;
                if (f.pointer != target) msg += " (at " + (f.pointer.empty() ? std::string("the top level") : f.pointer) + ")";
                issues.push_back({child(ptr, i), msg});
            }
        }
    }
    if (plans > kMaxPlans)
        issues.push_back({"/sweep", "the sweep expands to " + std::to_string(plans) + " plans (at most " +
                                        std::to_string(kMaxPlans) + ")"});
}

void parseDocument(const json& doc, const ParseOptions& opt, Issues& issues, ExperimentSpec& spec) {
    if (!doc.is_object()) {
        issues.push_back({"", "expected a JSON object at the top level, got " + describe(doc)});
        return;
    }
    checkUnknownKeys(doc, "", kTopKeys, issues);

    getString(doc, "name", "", issues, spec.name);
    getString(doc, "description", "", issues, spec.description, false);
    getString(doc, "notes", "", issues, spec.notes, false);
    if (doc.contains("device")) {
        std::string d;
        if (getString(doc, "device", "", issues, d)) {
            const bool ok = d == "auto" || d == "cpu" || d == "cuda" ||
                            (d.rfind("cuda:", 0) == 0 && d.size() > 5 && d.size() < 9 &&
                             std::all_of(d.begin() + 5, d.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }));
            if (ok) spec.device = d;
            else issues.push_back({"/device", "expected \"auto\", \"cpu\", \"cuda\" or \"cuda:N\", got " + describe(doc.at("device"))});
        }
    }
    if (doc.contains("seed")) {
        const json& s = doc.at("seed");
        if (s.is_number_unsigned() || (s.is_number_integer() && s.get<std::int64_t>() >= 0)) spec.seed = s.get<std::uint64_t>();
        else issues.push_back({"/seed", "expected an integer >= 0, got " + describe(s)});
    }
    if (doc.contains("tags")) {
        const json& t = doc.at("tags");
        if (!t.is_array()) {
            issues.push_back({"/tags", "expected a list of strings, got " + describe(t)});
        } else {
            for (std::size_t i = 0; i < t.size(); ++i) {
                if (t[i].is_string()) spec.tags.push_back(t[i].get<std::string>());
                else issues.push_back({child("/tags", i), "expected a string, got " + describe(t[i])});
            }
        }
    }

    if (doc.contains("model")) parseModel(doc.at("model"), "/model", opt, issues, spec.model);
    else issues.push_back({"", "missing required key \"model\" (e.g. {\"zoo\": \"mlp-784-256-128-10\"})"});
    if (doc.contains("dataset")) parseDataset(doc.at("dataset"), "/dataset", opt, issues, spec.dataset);
    if (doc.contains("baseline")) parseBaseline(doc.at("baseline"), "/baseline", opt, spec.seed, issues, spec.baseline);
    // The sections steps may inherit from come first (written back with their defaults).
    if (doc.contains("measure")) parseMeasure(doc.at("measure"), "/measure", issues, spec.measure);
    if (doc.contains("steps")) {
        const std::size_t before = issues.size();
        parseSteps(doc.at("steps"), "/steps", toJson(spec), issues, spec.steps);
        checkStepModels(doc.at("steps"), opt, spec, before, issues);
    }
    if (doc.contains("search")) {
        const auto found = validateSearchSection(doc.at("search"), "/search");
        issues.insert(issues.end(), found.begin(), found.end());
        if (found.empty()) spec.search = doc.at("search");
    }
    if (doc.contains("sweep")) {
        if (doc.at("sweep").is_object()) spec.sweep = doc.at("sweep");
        const Issues base = issues;
        checkSweep(doc, opt, base, issues);
    }
}

ParseOptions optionsFor(const std::string& sourcePath) {
    ParseOptions opt;
    if (!sourcePath.empty()) {
        opt.baseDir = fs::path(sourcePath).parent_path().string();
        if (opt.baseDir.empty()) opt.baseDir = ".";
        opt.checkFiles = true;
    }
    return opt;
}

std::string stemOf(const std::string& sourceName) {
    const auto stem = fs::path(sourceName).stem().string();
    return stem.empty() ? std::string("experiment") : stem;
}

} // namespace

// ---------------------------------------------------------------- public

std::string resolveAgainstFolder(const std::string& folder, const std::string& path) {
    if (path.empty() || fs::path(path).is_absolute() || folder.empty()) return path;
    return (fs::path(folder) / path).lexically_normal().string();
}

std::string resolveAgainstExperiment(const ExperimentSpec& spec, const std::string& path) {
    if (spec.sourceName.empty()) return path;
    const std::string folder = fs::path(spec.sourceName).parent_path().string();
    return resolveAgainstFolder(folder.empty() ? "." : folder, path);
}

const StrategySchema& datasetSectionSchema() { return datasetSchemaBuilder().schema(); }
const StrategySchema& measureSectionSchema() { return measureSettingsSchema().schema(); }

std::vector<ValidationIssue> validateExperiment(const nlohmann::json& doc) {
    Issues issues;
    ExperimentSpec scratch;
    parseDocument(doc, ParseOptions{}, issues, scratch);
    return issues;
}

std::vector<ValidationIssue> validateExperiment(const nlohmann::json& doc, const std::string& sourcePath) {
    Issues issues;
    ExperimentSpec scratch;
    parseDocument(doc, optionsFor(sourcePath), issues, scratch);
    return issues;
}

std::string formatIssues(const std::string& sourceName, const std::vector<ValidationIssue>& issues) {
    std::string out;
    for (const auto& i : issues) {
        if (!out.empty()) out += "\n";
        out += sourceName.empty() ? std::string("experiment") : sourceName;
        if (!i.pointer.empty()) out += ": " + i.pointer;
        out += ": " + i.message;
    }
    return out;
}

ExperimentSpec parseExperiment(const nlohmann::json& doc, const std::string& sourceName) {
    Issues issues;
    ExperimentSpec spec;
    // sourceName names a file when it exists; then relative paths resolve against its folder.
    std::error_code ec;
    const bool isFile = !sourceName.empty() && fs::is_regular_file(sourceName, ec);
    parseDocument(doc, isFile ? optionsFor(sourceName) : ParseOptions{}, issues, spec);
    if (!issues.empty()) throw ConfigError(formatIssues(sourceName, issues));
    spec.sourceName = sourceName;
    if (spec.name.empty()) spec.name = stemOf(sourceName);
    return spec;
}

ExperimentSpec loadExperimentFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ConfigError(path + ": cannot open experiment file");
    std::stringstream buffer;
    buffer << in.rdbuf();
    const std::string text = buffer.str();
    json doc;
    try {
        doc = json::parse(text);
    } catch (const json::parse_error& e) {
        // Line and column of the byte where parsing stopped (e.byte counts from 1).
        const std::size_t at = e.byte == 0 ? 0 : std::min<std::size_t>(e.byte - 1, text.size());
        std::size_t line = 1, column = 1;
        for (std::size_t i = 0; i < at; ++i) {
            if (text[i] == '\n') {
                ++line;
                column = 1;
            } else {
                ++column;
            }
        }
        std::string reason = e.what();
        if (auto p = reason.find("column "); p != std::string::npos) {
            if (auto colon = reason.find(": ", p); colon != std::string::npos) reason = reason.substr(colon + 2);
        } else if (auto q = reason.find("] "); q != std::string::npos) {
            reason = reason.substr(q + 2);
        }
        throw ConfigError(path + ":" + std::to_string(line) + ":" + std::to_string(column) +
                          ": JSON syntax error: " + reason);
    }
    if (std::vector<ValidationIssue> issues = findDuplicateKeys(text); !issues.empty()) {
        // Report what else is wrong too, as for any invalid file.
        for (ValidationIssue& i : validateExperiment(doc, path)) issues.push_back(std::move(i));
        throw ConfigError(formatIssues(path, issues));
    }
    ExperimentSpec spec = parseExperiment(doc, path);
    if (doc.is_object() && doc.contains("sweep") && doc.at("sweep").is_object()) {
        const auto ordered = nlohmann::ordered_json::parse(text);
        for (const auto& [key, value] : ordered.at("sweep").items()) spec.sweepOrder.push_back(key);
    }
    return spec;
}

nlohmann::json toJson(const ExperimentSpec& spec) {
    json doc;
    doc["name"] = spec.name;
    if (!spec.description.empty()) doc["description"] = spec.description;
    if (!spec.model.zoo.empty()) {
        doc["model"] = {{"zoo", spec.model.zoo}};
    } else {
        doc["model"] = {{"path", spec.model.path}};
        if (!spec.model.architecturePath.empty()) doc["model"]["architecture"] = spec.model.architecturePath;
    }
    doc["dataset"] = datasetSchemaBuilder().write(spec.dataset);
    doc["dataset"]["name"] = spec.dataset.name;
    doc["device"] = spec.device;
    json baseline = json::object();
    if (spec.baseline.train) baseline["train"] = spec.baseline.trainJson;
    if (!spec.baseline.modelPath.empty()) baseline["model"] = spec.baseline.modelPath;
    doc["baseline"] = baseline;
    json steps = json::array();
    for (const auto& s : spec.steps) {
        json st{{"strategy", s.strategy}, {"params", s.paramsJson.is_null() ? json::object() : s.paramsJson}};
        if (!s.enabled) st["enabled"] = false;
        steps.push_back(std::move(st));
    }
    doc["steps"] = steps;
    doc["measure"] = measureSettingsSchema().write(spec.measure);
    if (!spec.sweep.empty()) doc["sweep"] = spec.sweep;
    if (!spec.search.is_null()) doc["search"] = spec.search;
    doc["seed"] = spec.seed;
    if (!spec.tags.empty()) doc["tags"] = spec.tags;
    if (!spec.notes.empty()) doc["notes"] = spec.notes;
    return doc;
}

// ---------------------------------------------------------------- sweep expansion

std::string shortPlanLabel(const std::string& label) {
    std::string out, part;
    auto flush = [&] {
        const auto eq = part.find('=');
        std::string path = part.substr(0, eq);
        const auto dot = path.rfind('.');
        if (dot != std::string::npos) path = path.substr(dot + 1);
        out += (out.empty() ? "" : ", ") + path + (eq == std::string::npos ? "" : part.substr(eq));
        part.clear();
    };
    for (std::size_t i = 0; i < label.size(); ++i) {
        if (label.compare(i, 2, ", ") == 0) {
            flush();
            ++i;
        } else {
            part += label[i];
        }
    }
    if (!part.empty()) flush();
    return out;
}

std::vector<RunPlan> expandSweep(const ExperimentSpec& spec, const nlohmann::json& doc) {
    json base = doc;
    // A search stays in every plan (a sweep beside a search is one search per plan, and its paths may
    // address the search itself, e.g. "search.seed"); the search builds its trials from the plain part.
    if (base.is_object()) base.erase("sweep");
    const json sweep = doc.is_object() && doc.contains("sweep") ? doc.at("sweep") : json::object();

    struct Axis {
        std::string path;
        std::vector<PathSegment> segs;
        json values;
    };
    std::vector<Axis> axes;
    std::vector<std::string> order = spec.sweepOrder;
    for (const auto& [key, v] : sweep.items())
        if (std::find(order.begin(), order.end(), key) == order.end()) order.push_back(key);
    std::size_t total = 1;
    for (const auto& key : order) {
        if (!sweep.contains(key)) continue;
        Axis a{key, {}, sweep.at(key)};
        if (!parseSweepPath(key, a.segs)) throw ConfigError(spec.sourceName + ": /sweep: bad path \"" + key + "\"");
        if (!a.values.is_array() || a.values.empty())
            throw ConfigError(spec.sourceName + ": " + child("/sweep", key) + ": expected a non-empty list of values");
        total *= a.values.size();
        if (total > kMaxPlans)
            throw ConfigError(spec.sourceName + ": /sweep: the sweep expands to more than " + std::to_string(kMaxPlans) +
                              " plans");
        axes.push_back(std::move(a));
    }

    std::vector<RunPlan> plans;
    std::vector<std::size_t> idx(axes.size(), 0);
    for (std::size_t p = 0; p < total; ++p) {
        // Mixed-radix counter, the last axis varying fastest (like itertools.product).
        std::size_t rem = p;
        for (std::size_t a = axes.size(); a-- > 0;) {
            idx[a] = rem % axes[a].values.size();
            rem /= axes[a].values.size();
        }
        RunPlan plan;
        plan.index = static_cast<int>(p);
        plan.total = static_cast<int>(total);
        plan.resolved = base;
        for (std::size_t a = 0; a < axes.size(); ++a) {
            const json& v = axes[a].values[idx[a]];
            std::string target;
            const std::string problem = setAtPath(plan.resolved, axes[a].segs, v, target);
            if (!problem.empty())
                throw ConfigError(spec.sourceName + ": " + child("/sweep", axes[a].path) + ": path \"" + axes[a].path +
                                  "\" addresses nothing: " + problem);
            if (!plan.label.empty()) plan.label += ", ";
            plan.label += axes[a].path + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
        }
        // One search per plan: its run and trials are named after the plan, as a sweep's runs are.
        if (plan.resolved.contains("search") && !plan.label.empty() && plan.resolved.contains("name") &&
            plan.resolved.at("name").is_string())
            plan.resolved["name"] = plan.resolved.at("name").get<std::string>() + " [" + shortPlanLabel(plan.label) + "]";
        plan.spec = parseExperiment(plan.resolved, spec.sourceName);
        plan.spec.sweep = json::object();
        plans.push_back(std::move(plan));
    }
    return plans;
}

} // namespace lathe

// Chart specs: series-name parsing, the built-in charts and the registry strategy families add to.
#include "ui/charts/chart_spec.h"

#include "engine/core/errors.h"

#include <QCoreApplication>

#include <algorithm>
#include <climits>
#include <mutex>

namespace lathe::ui {

namespace {
bool isBatchSuffix(std::string_view part) {
    return part.size() >= 2 && part[0] == 'b' &&
           std::all_of(part.begin() + 1, part.end(), [](char c) { return c >= '0' && c <= '9'; });
}

QString tr(const char* text) { return QCoreApplication::translate("ChartSpec", text); }

// The charts of the series the engine streams today (see docs/engine-seams.md, "Charts"). The training
// charts also take the "_scratch" series of a model trained beside the run's own (a distillation's
// scratch student), so the two curves share axes.
std::vector<ChartSpec> builtinSpecs() {
    const QString ms = QStringLiteral("ms");
    return {
        {.id = QStringLiteral("latency"), .title = tr("Latency of each timed forward"), .x = XSource::Step,
         .xAxis = {tr("timed forward"), tr("repeat #")}, .yAxis = {tr("latency"), ms, true}, .draw = DrawStyle::Line,
         .matches = matchBase({"latency_ms"}), .legendShowsBase = false, .order = 100},
        {.id = QStringLiteral("latency_cdf"), .title = tr("Latency distribution (CDF)"), .x = XSource::CdfValue,
         .xAxis = {tr("latency"), ms, true}, .yAxis = {tr("cumulative fraction"), {}}, .draw = DrawStyle::StepCdf,
         .matches = matchBase({"latency_ms"}), .legendShowsBase = false, .order = 200},
        {.id = QStringLiteral("throughput"), .title = tr("Throughput by batch size"), .x = XSource::BatchSize,
         .xAxis = {tr("batch size"), {}, true, 2}, .yAxis = {tr("throughput"), tr("samples/s"), true},
         .draw = DrawStyle::LineMarkers, .matches = matchBase({"throughput_per_s"}), .legendShowsBase = false, .order = 300},
        {.id = QStringLiteral("training_loss"), .title = tr("Training loss per step"), .x = XSource::Step,
         .xAxis = {tr("optimizer step"), {}}, .yAxis = {tr("loss"), {}}, .draw = DrawStyle::Line,
         .matches = matchBase({"loss", "loss_scratch"}), .legendShowsBase = true, .order = 400},
        {.id = QStringLiteral("accuracy"), .title = tr("Accuracy per epoch"), .x = XSource::Epoch,
         .xAxis = {tr("epoch"), {}}, .yAxis = {tr("accuracy"), tr("fraction")}, .draw = DrawStyle::LineMarkers,
         .matches = matchBase({"train_accuracy", "val_accuracy", "accuracy", "train_accuracy_scratch",
                               "val_accuracy_scratch"}),
         .legendShowsBase = true, .order = 500},
        {.id = QStringLiteral("epoch_loss"), .title = tr("Training loss per epoch"), .x = XSource::Epoch,
         .xAxis = {tr("epoch"), {}}, .yAxis = {tr("mean training loss"), {}}, .draw = DrawStyle::LineMarkers,
         .matches = matchBase({"train_loss", "train_loss_scratch"}), .legendShowsBase = true, .order = 600},
    };
}

ChartSpec otherSpec() {
    return {.id = QString::fromLatin1(ChartSpecRegistry::kOtherId), .title = tr("Other metrics"), .x = XSource::Step,
            .xAxis = {tr("step"), {}}, .yAxis = {tr("value"), {}}, .draw = DrawStyle::LineMarkers,
            .matches = [](const SeriesName&) { return true; }, .legendShowsBase = true, .order = INT_MAX};
}

// Across runs: accuracy against model size, whatever made the models differ (a pruning ratio, an
// SVD energy, a student's width).
std::vector<RunsChartSpec> builtinRunsSpecs() {
    return {{.id = QStringLiteral("accuracy_vs_params"),
             .title = tr("Accuracy against parameter count"),
             .xKey = "params",
             .xAxis = {tr("parameters"), {}, true},
             .yKeys = matchKeys({"accuracy", "accuracy_scratch"}),
             .yAxis = {tr("accuracy"), tr("fraction")},
             .order = 100}};
}

// Per layer, for every run: the final evaluation's recall per class (stored under "class/<i>") and the
// bytes of each parameter tensor as stored.
std::vector<LayerChartSpec> builtinLayerSpecs() {
    return {{.id = QStringLiteral("class_recall"),
             .title = tr("Recall per class (evaluated split)"),
             .yAxis = {tr("recall"), tr("fraction")},
             .matches = matchKeys({"recall"}),
             .order = 10},
            {.id = QStringLiteral("tensor_bytes"),
             .title = tr("Bytes per parameter tensor, as stored"),
             .yAxis = {tr("bytes"), {}},
             .matches = matchKeys({"bytes"}),
             .order = 20}};
}

struct Registry {
    std::mutex mutex;
    std::vector<ChartSpec> added;
    std::vector<LayerChartSpec> layerCharts;
    std::vector<RunsChartSpec> runsCharts;
    bool familiesRegistered = false;
};

Registry& registry() {
    static Registry r;
    return r;
}

// The families' add() calls come back into specs(): the flag is set first so they do not recurse.
void ensureFamilies() {
    Registry& r = registry();
    if (r.familiesRegistered) return;
    r.familiesRegistered = true;
    registerChartFamilies();
}

const std::vector<ChartSpec>& builtins() {
    static const std::vector<ChartSpec> specs = builtinSpecs();
    return specs;
}

const std::vector<LayerChartSpec>& builtinLayers() {
    static const std::vector<LayerChartSpec> specs = builtinLayerSpecs();
    return specs;
}

const std::vector<RunsChartSpec>& builtinRuns() {
    static const std::vector<RunsChartSpec> specs = builtinRunsSpecs();
    return specs;
}
} // namespace

SeriesName parseSeriesName(std::string_view series) {
    SeriesName out;
    std::string_view rest = series;
    const auto lastSlash = rest.rfind('/');
    if (lastSlash != std::string_view::npos && isBatchSuffix(rest.substr(lastSlash + 1))) {
        const std::string_view digits = rest.substr(lastSlash + 2);
        std::int64_t batch = 0;
        for (char c : digits) {
            batch = batch > (INT64_MAX - 9) / 10 ? INT64_MAX : batch * 10 + (c - '0');
        }
        out.batch = batch;
        rest = rest.substr(0, lastSlash);
    }
    // Base names carry no '/', so whatever precedes the last one is the measure step's label.
    const auto labelEnd = rest.rfind('/');
    if (labelEnd != std::string_view::npos) {
        out.label = std::string(rest.substr(0, labelEnd));
        rest = rest.substr(labelEnd + 1);
    }
    out.base = std::string(rest);
    return out;
}

SeriesMatcher matchBase(std::initializer_list<const char*> bases) {
    std::vector<std::string> names(bases.begin(), bases.end());
    return [names = std::move(names)](const SeriesName& s) {
        return std::find(names.begin(), names.end(), s.base) != names.end();
    };
}

KeyMatcher matchKeys(std::initializer_list<const char*> keys) {
    std::vector<std::string> names(keys.begin(), keys.end());
    return [names = std::move(names)](std::string_view key) {
        const std::string_view stem = key.substr(0, key.find('@'));
        return std::find(names.begin(), names.end(), stem) != names.end();
    };
}

namespace {
// Adds `spec` to `list` (under the registry's lock) unless its id is empty, it has no matcher, or the id
// is taken in `list` or among the built-ins.
template <class Spec>
void addUnique(std::vector<Spec>& list, const std::vector<Spec>& builtins, Spec spec, bool hasMatcher,
               const char* kind) {
    if (spec.id.isEmpty() || !hasMatcher)
        throw ConfigError(std::string(kind) + " '" + spec.id.toStdString() + "': needs an id and a key matcher");
    auto same = [&](const Spec& s) { return s.id == spec.id; };
    if (std::any_of(list.begin(), list.end(), same) || std::any_of(builtins.begin(), builtins.end(), same))
        throw ConfigError(std::string(kind) + " '" + spec.id.toStdString() + "' is registered twice");
    list.push_back(std::move(spec));
}

// The built-ins and the added specs of one kind, in display order (call with the registry locked).
template <class Spec> std::vector<Spec> inOrder(const std::vector<Spec>& builtins, const std::vector<Spec>& added) {
    std::vector<Spec> specs = builtins;
    specs.insert(specs.end(), added.begin(), added.end());
    std::stable_sort(specs.begin(), specs.end(), [](const Spec& a, const Spec& b) { return a.order < b.order; });
    return specs;
}
} // namespace

void ChartSpecRegistry::add(LayerChartSpec spec) {
    ensureFamilies(); // a twin of a family's chart is refused whichever registers first
    Registry& r = registry();
    const std::lock_guard lock(r.mutex);
    const bool hasMatcher = static_cast<bool>(spec.matches);
    addUnique(r.layerCharts, builtinLayers(), std::move(spec), hasMatcher, "layer chart");
}

std::vector<LayerChartSpec> ChartSpecRegistry::layerSpecs() {
    ensureFamilies();
    Registry& r = registry();
    const std::lock_guard lock(r.mutex);
    return inOrder(builtinLayers(), r.layerCharts);
}

void ChartSpecRegistry::add(RunsChartSpec spec) {
    ensureFamilies();
    Registry& r = registry();
    const std::lock_guard lock(r.mutex);
    const bool hasMatcher = static_cast<bool>(spec.yKeys) && !spec.xKey.empty();
    addUnique(r.runsCharts, builtinRuns(), std::move(spec), hasMatcher, "runs chart");
}

std::vector<RunsChartSpec> ChartSpecRegistry::runsSpecs() {
    ensureFamilies();
    Registry& r = registry();
    const std::lock_guard lock(r.mutex);
    return inOrder(builtinRuns(), r.runsCharts);
}

void ChartSpecRegistry::add(ChartSpec spec) {
    if (spec.id.isEmpty() || !spec.matches) {
        throw ConfigError("chart spec '" + spec.id.toStdString() + "': needs an id and a series matcher");
    }
    if (find(spec.id)) {
        throw ConfigError("chart spec '" + spec.id.toStdString() + "' is registered twice");
    }
    if (spec.order >= INT_MAX) spec.order = INT_MAX - 1; // "other" stays last
    Registry& r = registry();
    const std::lock_guard lock(r.mutex);
    r.added.push_back(std::move(spec));
}

std::vector<ChartSpec> ChartSpecRegistry::specs() {
    ensureFamilies();
    std::vector<ChartSpec> out = builtins();
    {
        Registry& r = registry();
        const std::lock_guard lock(r.mutex);
        out.insert(out.end(), r.added.begin(), r.added.end());
    }
    std::stable_sort(out.begin(), out.end(), [](const ChartSpec& a, const ChartSpec& b) { return a.order < b.order; });
    out.push_back(otherSpec());
    return out;
}

std::optional<ChartSpec> ChartSpecRegistry::find(const QString& id) {
    for (ChartSpec& s : specs()) {
        if (s.id == id) return std::move(s);
    }
    return std::nullopt;
}

std::vector<QString> ChartSpecRegistry::route(std::string_view series) {
    const SeriesName name = parseSeriesName(series);
    std::vector<QString> ids;
    for (const ChartSpec& s : specs()) {
        if (s.id != QLatin1String(kOtherId) && s.matches(name)) ids.push_back(s.id);
    }
    if (ids.empty()) ids.push_back(QString::fromLatin1(kOtherId));
    return ids;
}

void ChartSpecRegistry::resetToBuiltins() {
    Registry& r = registry();
    const std::lock_guard lock(r.mutex);
    r.added.clear();
    r.layerCharts.clear();
    r.runsCharts.clear();
    r.familiesRegistered = false; // the families' charts come back on the next use
}

} // namespace lathe::ui

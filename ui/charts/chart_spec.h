// Chart specs: which charts the dashboard can show, how each one draws (axes, log scales, lines or
// markers) and which metric series it takes. A strategy family adds its charts with
// ChartSpecRegistry::add() from a LATHE_CHART_SPECS function in its own folder; the dashboard only
// reads the table.
#pragma once

#include <QString>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lathe::ui {

// A series name taken apart: "<label>/<base>/b<batch>", label and batch optional
// ("before/latency_ms/b4" -> {"before", "latency_ms", 4}; "loss" -> {"", "loss", none}).
struct SeriesName {
    std::string label;
    std::string base;
    std::optional<std::int64_t> batch;
    bool operator==(const SeriesName&) const = default;
};
SeriesName parseSeriesName(std::string_view series);

// What a sample's x value is.
enum class XSource {
    Step,      // sample.step: optimizer step, timed-forward repeat, ...
    Epoch,     // sample.step holds the epoch
    TimeS,     // sample.tMs, drawn in seconds since the run started
    BatchSize, // sample.step holds the batch size
    CdfValue,  // the empirical CDF of the sample values: x = value, y = fraction of samples <= x
};

enum class DrawStyle { Line, Markers, LineMarkers, StepCdf };

struct AxisSpec {
    QString label;
    QString unit; // shown in brackets after the label; empty for none
    bool log = false;
    double logBase = 10; // 2 for batch sizes
    QString text() const { return unit.isEmpty() ? label : QStringLiteral("%1 (%2)").arg(label, unit); }
};

using SeriesMatcher = std::function<bool(const SeriesName&)>;

struct ChartSpec {
    QString id;    // stable, e.g. "latency", "throughput"; used by tests, settings and exports
    QString title; // shown above the chart
    XSource x = XSource::Step;
    AxisSpec xAxis;
    AxisSpec yAxis;
    DrawStyle draw = DrawStyle::Line;
    SeriesMatcher matches;
    // The base name in legend entries (off when the chart holds a single kind of series).
    bool legendShowsBase = true;
    // Charts are shown in ascending order; built-ins use 100, 200, ...; "other" is always last.
    int order = 1000;
};

// Matches a series whose base name is one of `bases`.
SeriesMatcher matchBase(std::initializer_list<const char*> bases);

// Which stat or summary keys a chart takes ("sparsity", "accuracy_drop@0.5", "speedup_realized@b256").
using KeyMatcher = std::function<bool(std::string_view key)>;
// Matches `key` itself and its "@..." variants ("speedup_realized" takes "speedup_realized@b256").
KeyMatcher matchKeys(std::initializer_list<const char*> keys);

// A bar chart of per-layer stats in the run details: the layers along x in the order the run stored
// them, one bar per run and stat key the chart takes at each layer.
struct LayerChartSpec {
    QString id;
    QString title;
    AxisSpec yAxis;
    KeyMatcher matches;
    int order = 1000;
};

// A chart across runs (a sweep, or runs picked for comparison): each run is one point per summary
// metric the chart takes, at x = the run's value of `xKey`; the points of one metric are joined in
// order of x. Shown when at least two runs have the x metric and one of the y metrics.
struct RunsChartSpec {
    QString id;
    QString title;
    std::string xKey;
    AxisSpec xAxis;
    KeyMatcher yKeys;
    AxisSpec yAxis;
    int order = 1000;
};

// The registry; used from the UI thread.
class ChartSpecRegistry {
public:
    static constexpr const char* kOtherId = "other";
    // Adds a chart; ConfigError when the id is taken or the spec has no id or matcher.
    static void add(ChartSpec spec);
    // Every chart in display order (built-ins first registered on first use), "other" last.
    static std::vector<ChartSpec> specs();
    static std::optional<ChartSpec> find(const QString& id);
    // The ids of every chart that takes `series` (a series can feed several, e.g. latency over time
    // and its CDF), in display order; {"other"} when none does.
    static std::vector<QString> route(std::string_view series);
    // The same for the run details' per-layer bar charts and charts across runs: ids are unique within
    // each kind; listed in ascending order.
    static void add(LayerChartSpec spec);
    static std::vector<LayerChartSpec> layerSpecs();
    static void add(RunsChartSpec spec);
    static std::vector<RunsChartSpec> runsSpecs();
    // Removes the charts tests added through add(); those of LATHE_CHART_SPECS are registered again on
    // the next use.
    static void resetToBuiltins();
};

// Calls every LATHE_CHART_SPECS function once; defined in a source the build generates from the
// ui/**/*_charts.cpp files. The registry calls it on first use.
void registerChartFamilies();

} // namespace lathe::ui

// Defines the chart registration of one file, ui/<somewhere>/<name>_charts.cpp, at global scope; the
// argument is the file's name without extension, and the file uses it once:
//   LATHE_CHART_SPECS(prune_charts) { ChartSpecRegistry::add(sparsitySpec()); }
#define LATHE_CHART_SPECS(stem)                                                        \
    namespace lathe::ui {                                                              \
    void registerChartSpecs_##stem();                                                  \
    }                                                                                  \
    void lathe::ui::registerChartSpecs_##stem()

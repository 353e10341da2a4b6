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

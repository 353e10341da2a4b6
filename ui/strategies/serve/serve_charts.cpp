// The serve family's charts. While a stream is served: the queue depth and the batch sizes over time, each
// request's queueing time, the batch-size histogram (the live latency CDF is the built-in "latency_cdf",
// which takes serve/latency_ms). For a capacity sweep: p99 latency and goodput against the offered load per
// policy, with the SLO as a line and each policy's knee as one point ("<policy>/knee_ms"). Across runs:
// p99 against the offered rate.
#include "ui/charts/chart_spec.h"

#include <QCoreApplication>

LATHE_CHART_SPECS(serve_charts) {
    using namespace lathe::ui;
    auto tr = [](const char* text) { return QCoreApplication::translate("ChartSpec", text); };
    const AxisSpec time{tr("time since the run started"), QStringLiteral("s")};
    ChartSpecRegistry::add(ChartSpec{.id = QStringLiteral("serve_queue_depth"),
                                     .title = tr("Serving: requests waiting in the queue"),
                                     .x = XSource::TimeS,
                                     .xAxis = time,
                                     .yAxis = {tr("queued requests"), {}},
                                     .draw = DrawStyle::Line,
                                     .matches = matchBase({"queue_depth"}),
                                     .legendShowsBase = false,
                                     .order = 700});
    ChartSpecRegistry::add(ChartSpec{.id = QStringLiteral("serve_batch_size"),
                                     .title = tr("Serving: size of each dispatched batch"),
                                     .x = XSource::TimeS,
                                     .xAxis = time,
                                     .yAxis = {tr("batch size"), tr("requests")},
                                     .draw = DrawStyle::Markers,
                                     .matches = matchBase({"batch_size"}),
                                     .legendShowsBase = false,
                                     .order = 710});
    ChartSpecRegistry::add(ChartSpec{.id = QStringLiteral("serve_queue_time"),
                                     .title = tr("Serving: time each request waited before its batch went"),
                                     .x = XSource::Step,
                                     .xAxis = {tr("request (in answer order)"), {}},
                                     .yAxis = {tr("queue time"), QStringLiteral("ms")},
                                     .draw = DrawStyle::Line,
                                     .matches = matchBase({"queue_ms"}),
                                     .legendShowsBase = false,
                                     .order = 720});
    ChartSpecRegistry::add(ChartSpec{.id = QStringLiteral("serve_batch_hist"),
                                     .title = tr("Serving: batches per batch size"),
                                     .x = XSource::BatchSize,
                                     .xAxis = {tr("batch size"), tr("requests"), true, 2},
                                     .yAxis = {tr("batches"), {}},
                                     .draw = DrawStyle::LineMarkers,
                                     .matches = matchBase({"batch_hist"}),
                                     .legendShowsBase = false,
                                     .order = 730});
    ChartSpecRegistry::add(ChartSpec{.id = QStringLiteral("serve_capacity"),
                                     .title = tr("Capacity: p99 latency against offered load (SLO line, knees)"),
                                     .x = XSource::Step,
                                     .xAxis = {tr("offered load"), tr("requests/s"), true, 10},
                                     .yAxis = {tr("p99 latency"), QStringLiteral("ms"), true, 10},
                                     .draw = DrawStyle::LineMarkers,
                                     .matches = matchBase({"serve_p99_ms", "slo_ms", "knee_ms"}),
                                     .legendShowsBase = true,
                                     .order = 740});
    ChartSpecRegistry::add(ChartSpec{.id = QStringLiteral("serve_goodput"),
                                     .title = tr("Capacity: goodput (answers within the SLO per second) against offered load"),
                                     .x = XSource::Step,
                                     .xAxis = {tr("offered load"), tr("requests/s"), true, 10},
                                     .yAxis = {tr("goodput"), tr("requests/s")},
                                     .draw = DrawStyle::LineMarkers,
                                     .matches = matchBase({"goodput_per_s"}),
                                     .legendShowsBase = false,
                                     .order = 750});
    ChartSpecRegistry::add(RunsChartSpec{.id = QStringLiteral("serve_p99_vs_rate"),
                                         .title = tr("Serving: p99 latency against the offered rate"),
                                         .xKey = "offered_rate_per_s",
                                         .xAxis = {tr("offered rate"), tr("requests/s")},
                                         .yKeys = matchKeys({"serve_p99_ms", "serve_p50_ms"}),
                                         .yAxis = {tr("latency"), QStringLiteral("ms"), true, 10},
                                         .order = 400});
}

// serve.generate's live charts: the running batch (sequences decoding together) and the KV blocks in use at every
// iteration; the queue depth ("generate/queue_depth") joins the serve family's queue chart (serve_charts.cpp).
#include "ui/charts/chart_spec.h"

#include <QCoreApplication>

LATHE_CHART_SPECS(llm_serve_charts) {
    using namespace lathe::ui;
    auto tr = [](const char* text) { return QCoreApplication::translate("ChartSpec", text); };
    const AxisSpec time{tr("time since the run started"), QStringLiteral("s")};
    ChartSpecRegistry::add(ChartSpec{.id = QStringLiteral("generate_running_batch"),
                                     .title = tr("Generation: sequences in the running batch"),
                                     .x = XSource::TimeS,
                                     .xAxis = time,
                                     .yAxis = {tr("running sequences"), {}},
                                     .draw = DrawStyle::Line,
                                     .matches = matchBase({"running_batch"}),
                                     .legendShowsBase = false,
                                     .order = 760});
    ChartSpecRegistry::add(ChartSpec{.id = QStringLiteral("generate_kv_blocks"),
                                     .title = tr("Generation: KV blocks in use"),
                                     .x = XSource::TimeS,
                                     .xAxis = time,
                                     .yAxis = {tr("KV blocks"), {}},
                                     .draw = DrawStyle::Line,
                                     .matches = matchBase({"kv_blocks_used"}),
                                     .legendShowsBase = false,
                                     .order = 770});
    ChartSpecRegistry::add(RunsChartSpec{.id = QStringLiteral("generate_ttft_vs_tokens"),
                                         .title = tr("Generation: p99 time to first token against tokens/s"),
                                         .xKey = "tokens_per_s",
                                         .xAxis = {tr("throughput"), tr("tokens/s")},
                                         .yKeys = matchKeys({"ttft_ms_p99", "ttft_ms_p50"}),
                                         .yAxis = {tr("time to first token"), QStringLiteral("ms"), true, 10},
                                         .order = 410});
}

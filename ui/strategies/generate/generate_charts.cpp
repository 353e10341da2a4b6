// The generate family's charts: each generated token's latency against its position, with the KV cache and
// recomputing the prefix (generate.kv_cache's "cached/token_ms" and "uncached/token_ms": flat against growing),
// and a language model's validation loss per epoch (nats per token; perplexity is its exponential).
#include "ui/charts/chart_spec.h"

#include <QCoreApplication>

LATHE_CHART_SPECS(generate_charts) {
    using namespace lathe::ui;
    auto tr = [](const char* text) { return QCoreApplication::translate("ChartSpec", text); };
    ChartSpecRegistry::add(ChartSpec{.id = QStringLiteral("token_latency"),
                                     .title = tr("Latency per generated token against its position"),
                                     .x = XSource::Step,
                                     .xAxis = {tr("position (tokens before it)"), {}},
                                     .yAxis = {tr("latency"), QStringLiteral("ms")},
                                     .draw = DrawStyle::Line,
                                     .matches = matchBase({"token_ms"}),
                                     .legendShowsBase = false,
                                     .order = 660});
    ChartSpecRegistry::add(ChartSpec{.id = QStringLiteral("val_loss"),
                                     .title = tr("Validation loss per token"),
                                     .x = XSource::Epoch,
                                     .xAxis = {tr("epoch"), {}},
                                     .yAxis = {tr("loss"), tr("nats")},
                                     .draw = DrawStyle::LineMarkers,
                                     .matches = matchBase({"val_loss", "val_loss_scratch"}),
                                     .order = 670});
}

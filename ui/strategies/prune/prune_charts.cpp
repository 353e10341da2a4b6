// The prune family's chart: the fraction of prunable weights that are zero, per optimizer step, as
// prune.gradual raises it along its cubic schedule (one sample per pruning step).
#include "ui/charts/chart_spec.h"

#include <QCoreApplication>

LATHE_CHART_SPECS(prune_charts) {
    using namespace lathe::ui;
    auto tr = [](const char* text) { return QCoreApplication::translate("ChartSpec", text); };
    ChartSpecRegistry::add({.id = QStringLiteral("sparsity"),
                            .title = tr("Sparsity of the prunable weights per step"),
                            .x = XSource::Step,
                            .xAxis = {tr("optimizer step"), {}},
                            .yAxis = {tr("sparsity"), tr("fraction")},
                            .draw = DrawStyle::LineMarkers,
                            .matches = matchBase({"sparsity"}),
                            .legendShowsBase = false,
                            .order = 650});
}

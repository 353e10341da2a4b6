// The lowrank family's charts in the run details: the rank each factorized layer kept, the share of its
// spectral energy that rank keeps, and its parameters before and after.
#include "ui/charts/chart_spec.h"

#include <QCoreApplication>

LATHE_CHART_SPECS(lowrank_charts) {
    using namespace lathe::ui;
    auto tr = [](const char* text) { return QCoreApplication::translate("ChartSpec", text); };
    ChartSpecRegistry::add(LayerChartSpec{.id = QStringLiteral("layer_rank"),
                                          .title = tr("Rank kept per factorized layer"),
                                          .yAxis = {tr("rank"), {}},
                                          .matches = matchKeys({"rank"}),
                                          .order = 500});
    ChartSpecRegistry::add(LayerChartSpec{.id = QStringLiteral("layer_energy"),
                                          .title = tr("Spectral energy kept per layer"),
                                          .yAxis = {tr("energy kept"), tr("fraction")},
                                          .matches = matchKeys({"energy_kept"}),
                                          .order = 510});
    ChartSpecRegistry::add(LayerChartSpec{.id = QStringLiteral("layer_params"),
                                          .title = tr("Parameters per layer, before and after"),
                                          .yAxis = {tr("parameters"), {}},
                                          .matches = matchKeys({"params_before", "params_after"}),
                                          .order = 520});
}

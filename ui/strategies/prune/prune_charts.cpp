// The prune family's charts: the fraction of prunable weights that are zero per optimizer step, as
// prune.gradual raises it along its cubic schedule; per layer (run details), the sparsity reached, the
// sensitivity sweep's accuracy drops, the sparse kernels' speedups over dense and the channels kept; across
// the runs of a sparsity ladder, the theoretical and realized speedups and the accuracy against sparsity.
#include "ui/charts/chart_spec.h"

#include <QCoreApplication>

LATHE_CHART_SPECS(prune_charts) {
    using namespace lathe::ui;
    auto tr = [](const char* text) { return QCoreApplication::translate("ChartSpec", text); };
    const QString fraction = tr("fraction");
    ChartSpecRegistry::add(ChartSpec{.id = QStringLiteral("sparsity"),
                                     .title = tr("Sparsity of the prunable weights per step"),
                                     .x = XSource::Step,
                                     .xAxis = {tr("optimizer step"), {}},
                                     .yAxis = {tr("sparsity"), fraction},
                                     .draw = DrawStyle::LineMarkers,
                                     .matches = matchBase({"sparsity"}),
                                     .legendShowsBase = false,
                                     .order = 650});

    ChartSpecRegistry::add(LayerChartSpec{.id = QStringLiteral("layer_sparsity"),
                                          .title = tr("Sparsity per layer (zero weights)"),
                                          .yAxis = {tr("sparsity"), fraction},
                                          .matches = matchKeys({"sparsity"}),
                                          .order = 100});
    ChartSpecRegistry::add(LayerChartSpec{.id = QStringLiteral("layer_sensitivity"),
                                          .title = tr("Accuracy drop when pruning one layer alone (@ percent pruned)"),
                                          .yAxis = {tr("accuracy drop"), fraction},
                                          .matches = matchKeys({"accuracy_drop", "sensitivity"}),
                                          .order = 200});
    ChartSpecRegistry::add(LayerChartSpec{.id = QStringLiteral("layer_sparse_speedup"),
                                          .title = tr("Sparse kernel against dense, per layer (@ batch size)"),
                                          .yAxis = {tr("speedup over dense"), QStringLiteral("×")},
                                          .matches = matchKeys({"csr_speedup", "nm24_speedup"}),
                                          .order = 300});
    ChartSpecRegistry::add(LayerChartSpec{.id = QStringLiteral("layer_sparse_bytes"),
                                          .title = tr("Weight bytes per layer as a sparse copy (CSR, 2:4)"),
                                          .yAxis = {tr("bytes"), {}},
                                          .matches = matchKeys({"csr_bytes", "nm24_bytes"}),
                                          .order = 350});
    ChartSpecRegistry::add(LayerChartSpec{.id = QStringLiteral("layer_channels"),
                                          .title = tr("Neurons / channels per layer, before and after"),
                                          .yAxis = {tr("channels"), {}},
                                          .matches = matchKeys({"channels_before", "channels_after"}),
                                          .order = 400});
    // prune.heads (issue 15): attention heads per layer and each original head's score.
    ChartSpecRegistry::add(LayerChartSpec{.id = QStringLiteral("layer_heads"),
                                          .title = tr("Attention heads per layer, before and after"),
                                          .yAxis = {tr("heads"), {}},
                                          .matches = matchKeys({"heads_before", "heads_after"}),
                                          .order = 450});
    ChartSpecRegistry::add(LayerChartSpec{.id = QStringLiteral("layer_head_scores"),
                                          .title = tr("Importance score of each attention head"),
                                          .yAxis = {tr("score"), {}},
                                          .matches = matchKeys({"head_score"}),
                                          .order = 460});

    ChartSpecRegistry::add(RunsChartSpec{.id = QStringLiteral("speedup_vs_sparsity"),
                                         .title = tr("Realized against theoretical speedup"),
                                         .xKey = "sparsity",
                                         .xAxis = {tr("sparsity"), fraction},
                                         .yKeys = matchKeys({"speedup_theoretical", "speedup_realized"}),
                                         .yAxis = {tr("speedup over dense"), QStringLiteral("×"), true},
                                         .order = 200});
    ChartSpecRegistry::add(RunsChartSpec{.id = QStringLiteral("accuracy_vs_sparsity"),
                                         .title = tr("Accuracy against sparsity"),
                                         .xKey = "sparsity",
                                         .xAxis = {tr("sparsity"), fraction},
                                         .yKeys = matchKeys({"accuracy"}),
                                         .yAxis = {tr("accuracy"), fraction},
                                         .order = 210});
    ChartSpecRegistry::add(RunsChartSpec{.id = QStringLiteral("perplexity_vs_heads_pruned"),
                                         .title = tr("Perplexity against the fraction of attention heads removed"),
                                         .xKey = "heads_pruned_fraction",
                                         .xAxis = {tr("heads removed"), fraction},
                                         .yKeys = matchKeys({"perplexity", "pruned.perplexity"}),
                                         .yAxis = {tr("perplexity"), {}},
                                         .order = 220});
}

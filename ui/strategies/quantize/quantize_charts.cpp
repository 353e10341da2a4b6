// The quantize family's charts. Per layer (run details): the accuracy lost when one layer alone is
// converted (quantize.sensitivity), the SQNR of its output and of its weights, and the bits each weight is
// stored in, scales included. Across runs (a precision ladder, one run per format): accuracy and latency
// against the model's stored bytes.
#include "ui/charts/chart_spec.h"

#include <QCoreApplication>

LATHE_CHART_SPECS(quantize_charts) {
    using namespace lathe::ui;
    auto tr = [](const char* text) { return QCoreApplication::translate("ChartSpec", text); };
    const QString fraction = tr("fraction");
    ChartSpecRegistry::add(LayerChartSpec{.id = QStringLiteral("layer_quant_sensitivity"),
                                          .title = tr("Accuracy drop when quantizing one layer alone"),
                                          .yAxis = {tr("accuracy drop"), fraction},
                                          .matches = matchKeys({"quant_accuracy_drop"}),
                                          .order = 500});
    ChartSpecRegistry::add(LayerChartSpec{.id = QStringLiteral("layer_quant_sqnr"),
                                          .title = tr("Signal-to-quantization-noise ratio per layer (output, weight)"),
                                          .yAxis = {tr("SQNR"), QStringLiteral("dB")},
                                          .matches = matchKeys({"quant_sqnr_db", "weight_sqnr_db"}),
                                          .order = 510});
    ChartSpecRegistry::add(LayerChartSpec{.id = QStringLiteral("layer_weight_bits"),
                                          .title = tr("Stored bits per weight (scales and zero points included)"),
                                          .yAxis = {tr("bits per weight"), {}},
                                          .matches = matchKeys({"weight_bits"}),
                                          .order = 520});

    ChartSpecRegistry::add(RunsChartSpec{.id = QStringLiteral("accuracy_vs_model_bytes"),
                                         .title = tr("Accuracy against model size (one point per run)"),
                                         .xKey = "model_bytes",
                                         .xAxis = {tr("model size"), tr("bytes"), true},
                                         .yKeys = matchKeys({"accuracy"}),
                                         .yAxis = {tr("accuracy"), fraction},
                                         .order = 300});
    ChartSpecRegistry::add(RunsChartSpec{.id = QStringLiteral("latency_vs_model_bytes"),
                                         .title = tr("Latency against model size (one point per run)"),
                                         .xKey = "model_bytes",
                                         .xAxis = {tr("model size"), tr("bytes"), true},
                                         .yKeys = matchKeys({"latency_p50_ms"}),
                                         .yAxis = {tr("median latency"), QStringLiteral("ms")},
                                         .order = 310});
}

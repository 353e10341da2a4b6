// The distill family's chart: the two parts of the distillation loss per step, the soft part (the
// teacher's targets at temperature T, scaled by T^2) and the hard part (cross-entropy on the labels).
// The students' loss and accuracy curves go to the training charts (their "_scratch" twins beside them).
#include "ui/charts/chart_spec.h"

#include <QCoreApplication>

LATHE_CHART_SPECS(distill_charts) {
    using namespace lathe::ui;
    auto tr = [](const char* text) { return QCoreApplication::translate("ChartSpec", text); };
    ChartSpecRegistry::add(ChartSpec{.id = QStringLiteral("distill_loss_parts"),
                                     .title = tr("Distillation loss: soft (teacher) and hard (labels) parts per step"),
                                     .x = XSource::Step,
                                     .xAxis = {tr("optimizer step"), {}},
                                     .yAxis = {tr("loss"), {}},
                                     .draw = DrawStyle::Line,
                                     .matches = matchBase({"loss_soft", "loss_hard"}),
                                     .legendShowsBase = true,
                                     .order = 450});
}

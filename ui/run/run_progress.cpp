// RunProgress: bar + "run 2 of 3 · finetune · about 1 min left".
#include "ui/run/run_progress.h"

#include <QHBoxLayout>
#include <QLabel>
#include <QProgressBar>

#include <cmath>

namespace lathe::ui {

RunProgress::RunProgress(QWidget* parent) : QWidget(parent), m_bar(new QProgressBar(this)), m_label(new QLabel(this)) {
    m_bar->setRange(0, 1000);
    m_bar->setTextVisible(true);
    m_bar->setFormat(QStringLiteral("%p%"));
    m_bar->setMaximumWidth(220);
    m_bar->setMinimumWidth(140);
    m_label->setTextFormat(Qt::PlainText); // messages carry run and experiment names
    auto* layout = new QHBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(m_bar);
    layout->addWidget(m_label);
    m_bar->setValue(0);
    m_label->setText(tr("Idle"));
}

QString RunProgress::etaText(double s) {
    if (s < 0 || !std::isfinite(s)) {
        return {};
    }
    if (s < 60) {
        return tr("%1 s left").arg(static_cast<int>(std::ceil(s)));
    }
    if (s < 3600) {
        return tr("%1 min %2 s left").arg(static_cast<int>(s) / 60).arg(static_cast<int>(s) % 60);
    }
    return tr("%1 h %2 min left").arg(static_cast<int>(s) / 3600).arg((static_cast<int>(s) % 3600) / 60);
}

void RunProgress::startExperiment(const QString& name, int runCount) {
    m_total = runCount;
    m_index = 0;
    m_step = tr("starting %1").arg(name);
    m_runLabel.clear();
    m_etaS = -1;
    m_bar->setValue(0);
    updateLabel();
}

void RunProgress::setRun(int index, int total, const QString& label) {
    m_index = index;
    m_total = total;
    m_runLabel = label;
    updateLabel();
}

void RunProgress::setProgress(double fraction, const QString& step, double etaS) {
    m_bar->setValue(static_cast<int>(std::lround(std::clamp(fraction, 0.0, 1.0) * 1000)));
    m_step = step;
    m_etaS = etaS;
    updateLabel();
}

void RunProgress::finish(const QString& message) {
    m_label->setText(message);
    m_bar->setValue(m_bar->maximum());
}

QString RunProgress::text() const { return m_label->text(); }

void RunProgress::updateLabel() {
    QStringList parts;
    if (m_total > 0) {
        parts << tr("run %1 of %2").arg(m_index + 1).arg(m_total);
    }
    if (!m_runLabel.isEmpty()) {
        parts << m_runLabel;
    }
    if (!m_step.isEmpty()) {
        parts << m_step;
    }
    const QString eta = etaText(m_etaS);
    if (!eta.isEmpty()) {
        parts << eta;
    }
    m_label->setText(parts.join(QStringLiteral("  ·  ")));
}

} // namespace lathe::ui

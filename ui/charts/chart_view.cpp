// ChartView: QCustomPlot plus the interactions every Lathe chart shares.
#include "ui/charts/chart_view.h"

#include <qcustomplot.h>

#include <QContextMenuEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QLabel>
#include <QMenu>
#include <QVBoxLayout>

#include <cmath>
#include <limits>

namespace lathe::ui {

ChartView::ChartView(const QString& title, QWidget* parent)
    : QWidget(parent), m_title(new QLabel(title, this)), m_plot(new QCustomPlot(this)) {
    setObjectName(title);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(2, 2, 2, 2);
    layout->setSpacing(0);
    QFont f = m_title->font();
    f.setBold(true);
    m_title->setFont(f);
    m_title->setAlignment(Qt::AlignHCenter);
    layout->addWidget(m_title);
    layout->addWidget(m_plot, 1);

    m_plot->setInteractions(QCP::iRangeDrag | QCP::iRangeZoom | QCP::iSelectPlottables);
    m_plot->setNoAntialiasingOnDrag(true);
    // Dense streaming graphs: antialiased lines cost several times more in the raster engine.
    m_plot->setNotAntialiasedElements(QCP::aePlottables);
    m_plot->setMinimumSize(220, 160);
    // Follow the palette (dark or light system theme).
    const QPalette pal = palette();
    m_plot->setBackground(pal.color(QPalette::Base));
    for (QCPAxis* axis : {m_plot->xAxis, m_plot->yAxis, m_plot->xAxis2, m_plot->yAxis2}) {
        const QColor text = pal.color(QPalette::Text);
        axis->setBasePen(QPen(text));
        axis->setTickPen(QPen(text));
        axis->setSubTickPen(QPen(text));
        axis->setTickLabelColor(text);
        axis->setLabelColor(text);
        axis->grid()->setPen(QPen(pal.color(QPalette::Mid), 0, Qt::DotLine));
    }
    m_plot->legend->setVisible(true);
    m_plot->legend->setBrush(QBrush(pal.color(QPalette::Base)));
    m_plot->legend->setTextColor(pal.color(QPalette::Text));
    m_plot->legend->setBorderPen(QPen(pal.color(QPalette::Mid)));
    QFont lf = font();
    lf.setPointSizeF(lf.pointSizeF() * 0.85);
    m_plot->legend->setFont(lf);
    m_plot->axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignTop | Qt::AlignRight);

    m_tracer = new QCPItemTracer(m_plot);
    m_tracer->setStyle(QCPItemTracer::tsCircle);
    m_tracer->setSize(7);
    m_tracer->setVisible(false);
    m_tracer->setInterpolating(false);
    m_readout = new QCPItemText(m_plot);
    m_readout->setPositionAlignment(Qt::AlignLeft | Qt::AlignBottom);
    m_readout->position->setParentAnchor(m_tracer->position);
    m_readout->position->setCoords(6, -6);
    m_readout->setPadding(QMargins(3, 2, 3, 2));
    m_readout->setBrush(QBrush(pal.color(QPalette::ToolTipBase)));
    m_readout->setColor(pal.color(QPalette::ToolTipText));
    m_readout->setVisible(false);

    connect(m_plot, &QCustomPlot::mouseMove, this, &ChartView::onMouseMove);
    connect(m_plot, &QCustomPlot::mouseDoubleClick, this, [this](QMouseEvent*) { resetView(); });
    // Any manual pan or zoom stops the auto-fit so the user keeps the view they chose.
    connect(m_plot, &QCustomPlot::mousePress, this, [this](QMouseEvent*) { m_follow = false; });
    connect(m_plot, &QCustomPlot::mouseWheel, this, [this](QWheelEvent*) { m_follow = false; });
    connect(m_plot, &QCustomPlot::afterReplot, this, [this] {
        ++m_replots;
        emit replotted();
    });
}

QString ChartView::title() const { return m_title->text(); }

void ChartView::resetView() {
    m_follow = true;
    m_plot->rescaleAxes(true);
    for (QCPAxis* axis : {m_plot->xAxis, m_plot->yAxis, m_plot->yAxis2}) {
        QCPRange r = axis->range();
        if (r.size() <= 0) {
            r = QCPRange(r.lower - 0.5, r.upper + 0.5);
        }
        if (axis != m_plot->xAxis) {
            r = QCPRange(r.lower - r.size() * 0.05, r.upper + r.size() * 0.05);
        }
        axis->setRange(r);
    }
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

void ChartView::requestReplot() {
    if (m_follow) {
        m_plot->rescaleAxes(true);
        for (QCPAxis* axis : {m_plot->yAxis, m_plot->yAxis2}) {
            const QCPRange r = axis->range();
            const double pad = r.size() > 0 ? r.size() * 0.05 : 0.5;
            axis->setRange(r.lower - pad, r.upper + pad);
        }
    }
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

bool ChartView::exportPng(const QString& path, int width, int height) {
    return m_plot->savePng(path, width, height, 1.0, -1, 96);
}

bool ChartView::exportPdf(const QString& path) { return m_plot->savePdf(path); }

void ChartView::onMouseMove(QMouseEvent* event) {
    // Nearest data point over all visible graphs, in pixels, so read-out works on any scale.
    QCPGraph* best = nullptr;
    double bestDist = std::numeric_limits<double>::max();
    double bestKey = 0;
    const QPointF pos = event->position();
    for (int i = 0; i < m_plot->graphCount(); ++i) {
        QCPGraph* g = m_plot->graph(i);
        if (!g->visible() || g->data()->isEmpty()) {
            continue;
        }
        const double key = g->keyAxis()->pixelToCoord(pos.x());
        auto it = g->data()->findBegin(key, true);
        for (int k = 0; k < 2 && it != g->data()->constEnd(); ++k, ++it) {
            const double px = g->keyAxis()->coordToPixel(it->key);
            const double py = g->valueAxis()->coordToPixel(it->value);
            const double d = std::hypot(px - pos.x(), py - pos.y());
            if (d < bestDist) {
                bestDist = d;
                best = g;
                bestKey = it->key;
            }
        }
    }
    const bool show = best && bestDist < 40;
    if (show) {
        m_tracer->setGraph(best);
        m_tracer->setGraphKey(bestKey);
        m_tracer->setPen(best->pen());
        m_tracer->updatePosition();
        const double value = m_tracer->position->value();
        m_readout->setText(QStringLiteral("%1\n%2: %3  %4: %5")
                               .arg(best->name(), best->keyAxis()->label().isEmpty() ? QStringLiteral("x")
                                                                                     : best->keyAxis()->label())
                               .arg(bestKey, 0, 'g', 6)
                               .arg(best->valueAxis()->label().isEmpty() ? QStringLiteral("y")
                                                                         : best->valueAxis()->label())
                               .arg(value, 0, 'g', 6));
    }
    if (show != m_tracer->visible() || show) {
        m_tracer->setVisible(show);
        m_readout->setVisible(show);
        m_plot->replot(QCustomPlot::rpQueuedReplot);
    }
}

void ChartView::contextMenuEvent(QContextMenuEvent* event) {
    QMenu menu(this);
    menu.addAction(tr("Reset view"), this, &ChartView::resetView);
    menu.addAction(tr("Show legend"), this, [this](bool on) {
            m_plot->legend->setVisible(on);
            m_plot->replot(QCustomPlot::rpQueuedReplot);
        })->setCheckable(true);
    menu.actions().last()->setChecked(m_plot->legend->visible());
    menu.addSeparator();
    menu.addAction(tr("Export as PNG or PDF..."), this, &ChartView::exportWithDialog);
    menu.exec(event->globalPos());
}

void ChartView::exportWithDialog() {
    QString selected;
    const QString path = QFileDialog::getSaveFileName(this, tr("Export chart"), title() + QStringLiteral(".png"),
                                                      tr("PNG image (*.png);;PDF vector (*.pdf)"), &selected);
    if (path.isEmpty()) {
        return;
    }
    if (QFileInfo(path).suffix().compare(QStringLiteral("pdf"), Qt::CaseInsensitive) == 0) {
        exportPdf(path);
    } else {
        exportPng(path);
    }
}

} // namespace lathe::ui

// ChartView: QCustomPlot plus the interactions every Lathe chart shares (pan, zoom, read-out, log
// axes, legend below the plot, export).
#include "ui/charts/chart_view.h"

#include <qcustomplot.h>

#include <QContextMenuEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QLabel>
#include <QMenu>
#include <QResizeEvent>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace lathe::ui {

namespace {
// QCPAxisTickerLog labels powers of the base only, and below 1.6 decades falls back to linear steps, so
// a log axis from 0.8 to 23 got ticks at 5, 10, 15, 20 and none under 5. On such short base-10 spans
// this ticker gives 1-2-5 values (1, 2, 5, 10, 20), or every digit where those are fewer than three.
class ShortLogTicker final : public QCPAxisTicker {
protected:
    QVector<double> createTickVector(double, const QCPRange& range) override {
        QVector<double> ticks;
        if (range.lower <= 0 || range.upper <= range.lower) return ticks;
        static const std::vector<double> kNice{1, 2, 5}, kDigits{1, 2, 3, 4, 5, 6, 7, 8, 9};
        for (const std::vector<double>* mantissas : {&kNice, &kDigits}) {
            ticks.clear();
            for (int e = int(std::floor(std::log10(range.lower))); e <= int(std::ceil(std::log10(range.upper))); ++e) {
                for (double m : *mantissas) {
                    const double v = m * std::pow(10.0, e);
                    if (v >= range.lower && v <= range.upper) ticks << v;
                }
            }
            if (ticks.size() >= 3) break;
        }
        return ticks;
    }
    int getSubTickCount(double) override { return 0; }
};

// Where QCPAxisTickerLog stops labelling more than one tick (its own threshold).
constexpr double kLogTickerMinDecades = 1.6;
} // namespace

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
    // The plot's colours are set once, from the active group: a chart built inside a disabled tab (enabled
    // later) would otherwise keep the greyed text of the disabled group.
    QPalette pal = palette();
    pal.setCurrentColorGroup(QPalette::Active);
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
    // The legend lives in its own row below the axis rect, so it never covers data.
    QCPLegend* legend = m_plot->legend;
    m_plot->axisRect()->insetLayout()->take(legend);
    m_plot->plotLayout()->addElement(1, 0, legend);
    m_plot->plotLayout()->setRowStretchFactor(1, 0.001);
    m_plot->plotLayout()->setRowSpacing(0);
    legend->setVisible(true);
    legend->setBrush(Qt::NoBrush);
    legend->setBorderPen(Qt::NoPen);
    legend->setTextColor(pal.color(QPalette::Text));
    legend->setMargins(QMargins(6, 2, 6, 6));
    legend->setRowSpacing(2);
    legend->setColumnSpacing(12);
    legend->setIconSize(26, 12);
    QFont lf = font();
    lf.setPointSizeF(lf.pointSizeF() * 0.85);
    legend->setFont(lf);
    for (QCPAxis* axis : {m_plot->xAxis, m_plot->yAxis, m_plot->yAxis2}) {
        connect(axis, qOverload<const QCPRange&>(&QCPAxis::rangeChanged), this, [this, axis] { updateTicker(axis); });
    }

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
    fitToData();
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

void ChartView::requestReplot() {
    if (m_follow) {
        fitToData();
    }
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

void ChartView::fitToData() {
    for (QCPAxis* axis : {m_plot->xAxis, m_plot->yAxis, m_plot->yAxis2}) {
        // The data's own extent (positive values only on a log axis); QCustomPlot's rescale would
        // keep the old span around a single value, which the padding below would widen every tick.
        const bool log = axis->scaleType() == QCPAxis::stLogarithmic;
        const QCP::SignDomain domain = log ? QCP::sdPositive : QCP::sdBoth;
        bool any = false;
        QCPRange r;
        for (QCPAbstractPlottable* p : axis->plottables()) {
            if (!p->visible()) continue;
            bool found = false;
            const QCPRange pr = p->keyAxis() == axis ? p->getKeyRange(found, domain) : p->getValueRange(found, domain);
            if (!found) continue;
            if (!any) r = pr;
            else r.expand(pr);
            any = true;
        }
        if (!any) {
            continue;
        }
        // A margin around the data so markers at the edges show whole: a share of the span on a
        // linear axis, the same share of the decades on a log axis.
        const double share = axis == m_plot->xAxis ? 0.03 : 0.05;
        if (log) {
            if (r.upper <= r.lower * (1 + 1e-9)) {
                r = QCPRange(r.lower / 1.5, r.upper * 1.5);
            } else {
                const double f = std::max(1.05, std::pow(r.upper / r.lower, share));
                r = QCPRange(r.lower / f, r.upper * f);
            }
        } else if (r.size() <= 0) {
            const double half = r.lower != 0 ? std::abs(r.lower) * 0.1 : 0.5;
            r = QCPRange(r.lower - half, r.upper + half);
        } else {
            r = QCPRange(r.lower - r.size() * share, r.upper + r.size() * share);
        }
        axis->setRange(r);
    }
}

void ChartView::setLogScale(QCPAxis* axis, bool log, double base) {
    axis->setScaleType(log ? QCPAxis::stLogarithmic : QCPAxis::stLinear);
    axis->setProperty("logBase", base);
    axis->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
    updateTicker(axis);
    if (m_follow) fitToData();
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

bool ChartView::isLogScale(QCPAxis* axis) const { return axis->scaleType() == QCPAxis::stLogarithmic; }

void ChartView::updateTicker(QCPAxis* axis) {
    // Power-of-base ticks read well over a decade and a half or more; a narrower span keeps 1-2-5 ticks
    // (base 10) or evenly spaced ones (other bases), still drawn on the log scale.
    const QCPRange r = axis->range();
    const double base = axis->property("logBase").isValid() ? axis->property("logBase").toDouble() : 10.0;
    const bool log = axis->scaleType() == QCPAxis::stLogarithmic && r.lower > 0 && r.upper > r.lower;
    const bool wide = log && std::log(r.upper / r.lower) / std::log(base) >= kLogTickerMinDecades;
    const bool shortLog = log && !wide && base == 10;
    auto* logTicker = dynamic_cast<QCPAxisTickerLog*>(axis->ticker().data());
    const bool hasShort = dynamic_cast<ShortLogTicker*>(axis->ticker().data()) != nullptr;
    if (wide && (!logTicker || logTicker->logBase() != base)) {
        auto ticker = QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog);
        ticker->setLogBase(base);
        ticker->setSubTickCount(base == 10 ? 8 : 0);
        axis->setTicker(ticker);
    } else if (shortLog && !hasShort) {
        axis->setTicker(QSharedPointer<QCPAxisTicker>(new ShortLogTicker));
    } else if (!wide && !shortLog && (logTicker || hasShort)) {
        axis->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
    }
}

void ChartView::setLegendEntries(const std::vector<LegendEntry>& entries) {
    m_legend = entries;
    m_legendColumns = 0;
    layoutLegend();
}

int ChartView::legendItemCount() const {
    int n = 0;
    for (int i = 0; i < m_plot->legend->itemCount(); ++i) n += m_plot->legend->item(i) ? 1 : 0;
    return n;
}

void ChartView::resizeEvent(QResizeEvent* event) {
    QWidget::resizeEvent(event);
    layoutLegend();
}

void ChartView::layoutLegend() {
    QCPLegend* legend = m_plot->legend;
    const QFontMetrics metrics(legend->font());
    int widest = 0;
    for (const LegendEntry& e : m_legend) {
        widest = std::max(widest, metrics.horizontalAdvance(e.text));
    }
    const int itemWidth = legend->iconSize().width() + legend->iconTextPadding() + widest + 10;
    const int available = std::max(1, width() - legend->margins().left() - legend->margins().right() - 8);
    const int columns = std::max(1, std::min<int>(static_cast<int>(std::max<std::size_t>(m_legend.size(), 1)),
                                                  available / (itemWidth + legend->columnSpacing())));
    if (columns == m_legendColumns && legend->itemCount() > 0) {
        return;
    }
    m_legendColumns = columns;
    legend->clearItems();
    legend->simplify(); // drop the empty cells of the old grid
    legend->setWrap(columns);
    legend->setFillOrder(QCPLayoutGrid::foColumnsFirst, false);
    const std::size_t capacity = static_cast<std::size_t>(columns * kMaxLegendRows);
    const std::size_t shown = m_legend.size() <= capacity ? m_legend.size() : capacity - 1;
    for (std::size_t i = 0; i < shown; ++i) {
        legend->addItem(new LegendSwatch(legend, m_legend[i]));
    }
    if (shown < m_legend.size()) {
        LegendEntry more;
        more.line = false;
        more.text = tr("+%1 more (hover a line for its name)").arg(m_legend.size() - shown);
        legend->addItem(new LegendSwatch(legend, more));
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

void ChartView::setLegendShown(bool on) {
    // Out of the layout when hidden, so the plot takes the legend's rows.
    QCPLegend* legend = m_plot->legend;
    if (!on && legend->layout()) {
        m_plot->plotLayout()->take(legend);
        m_plot->plotLayout()->simplify();
    } else if (on && !legend->layout()) {
        m_plot->plotLayout()->addElement(1, 0, legend);
        m_plot->plotLayout()->setRowStretchFactor(1, 0.001);
    }
    legend->setVisible(on);
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

bool ChartView::legendShown() const { return m_plot->legend->visible(); }

QMenu* ChartView::createContextMenu(QWidget* parent) {
    auto* menu = new QMenu(parent);
    menu->addAction(tr("Reset view"), this, &ChartView::resetView);
    QAction* legend = menu->addAction(tr("Show legend"));
    legend->setCheckable(true);
    legend->setChecked(legendShown());
    connect(legend, &QAction::toggled, this, &ChartView::setLegendShown);
    const std::pair<QCPAxis*, QString> axes[] = {{m_plot->xAxis, tr("Logarithmic x axis")}, {m_plot->yAxis, tr("Logarithmic y axis")}};
    for (const auto& [axis, text] : axes) {
        QAction* a = menu->addAction(text);
        a->setCheckable(true);
        a->setChecked(isLogScale(axis));
        QCPAxis* target = axis;
        connect(a, &QAction::toggled, this, [this, target](bool on) {
            const double base = target->property("logBase").isValid() ? target->property("logBase").toDouble() : 10.0;
            setLogScale(target, on, base);
        });
    }
    menu->addSeparator();
    menu->addAction(tr("Export as PNG or PDF..."), this, &ChartView::exportWithDialog);
    return menu;
}

void ChartView::contextMenuEvent(QContextMenuEvent* event) {
    QMenu* menu = createContextMenu(this);
    menu->exec(event->globalPos());
    delete menu;
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

// ParetoChart: one scatter graph per run (so each point has its own size), a dashed front line, a legend
// of families, and the front listed in a label.
#include "ui/charts/pareto_chart.h"

#include "engine/core/metric_keys.h"
#include "engine/measure/comparison.h"
#include "ui/charts/chart_style.h"
#include "ui/charts/chart_view.h"

#include <qcustomplot.h>

#include <QLabel>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>

namespace lathe::ui {

namespace {
constexpr double kMinPointPx = 7, kMaxPointPx = 24;
constexpr int kParetoChartHeight = 340;
} // namespace

QString ParetoChart::familyOf(const std::string& strategyChain) {
    const QStringList steps = QString::fromStdString(strategyChain).split(QStringLiteral(" > "), Qt::SkipEmptyParts);
    for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
        const QString step = it->trimmed();
        if (step == QLatin1String("train") || step == QLatin1String("finetune") || step == QLatin1String("measure")) continue;
        return step.section(QLatin1Char('.'), 0, 0);
    }
    return QStringLiteral("baseline");
}

ParetoChart::ParetoChart(QWidget* parent)
    : QWidget(parent), m_view(new ChartView(tr("Accuracy against p99 latency (point area: model size)"), this)),
      m_frontLabel(new QLabel(this)) {
    m_view->setObjectName(QStringLiteral("pareto"));
    m_view->setMinimumHeight(kParetoChartHeight);
    m_frontLabel->setWordWrap(true);
    m_frontLabel->setTextFormat(Qt::PlainText);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(m_view);
    layout->addWidget(m_frontLabel);
    QCustomPlot* plot = m_view->plot();
    plot->xAxis->setLabel(tr("latency p99 (ms)"));
    plot->yAxis->setLabel(tr("accuracy (fraction)"));
    connect(plot, &QCustomPlot::plottableClick, this, [this](QCPAbstractPlottable* p, int, QMouseEvent*) {
        const qint64 id = p->property("runId").toLongLong();
        if (id > 0) emit runActivated(id);
    });
}

void ParetoChart::setPoints(const std::vector<Point>& points) {
    m_points = points;
    QCustomPlot* plot = m_view->plot();
    plot->clearGraphs();
    m_front.clear();

    // The front of (accuracy up, p99 latency down), drawn in order of latency.
    std::vector<std::vector<double>> xy;
    for (const Point& p : points) xy.push_back({p.accuracy, p.latencyP99Ms});
    const MetricDirection dirs[] = {MetricDirection::HigherIsBetter, MetricDirection::LowerIsBetter};
    std::vector<std::size_t> front = paretoFront(xy, dirs);
    std::sort(front.begin(), front.end(), [&](std::size_t a, std::size_t b) {
        return points[a].latencyP99Ms < points[b].latencyP99Ms ||
               (points[a].latencyP99Ms == points[b].latencyP99Ms && points[a].accuracy < points[b].accuracy);
    });
    QCPGraph* line = plot->addGraph();
    line->setName(tr("Pareto front"));
    const QColor lineColor = palette().color(QPalette::Active, QPalette::Text);
    line->setPen(QPen(lineColor, 1.2, Qt::DashLine));
    line->setSelectable(QCP::stNone);
    QStringList listed;
    for (std::size_t i : front) {
        line->addData(points[i].latencyP99Ms, points[i].accuracy);
        m_front.push_back(points[i].runId);
        listed << QStringLiteral("%1 (%2, %3 ms)")
                      .arg(points[i].label, QString::number(points[i].accuracy, 'f', 4),
                           QString::number(points[i].latencyP99Ms, 'g', 3));
    }

    double maxBytes = 0;
    for (const Point& p : points) maxBytes = std::max(maxBytes, p.modelBytes);
    QStringList families;
    for (const Point& p : points)
        if (!families.contains(p.family)) families << p.family;
    for (const Point& p : points) {
        const QColor color = paletteColor(static_cast<int>(families.indexOf(p.family)));
        const double size = maxBytes > 0 && p.modelBytes > 0
                                ? kMinPointPx + (kMaxPointPx - kMinPointPx) * std::sqrt(p.modelBytes / maxBytes)
                                : kMinPointPx;
        QCPGraph* g = plot->addGraph();
        g->setName(p.label);
        g->setProperty("runId", QVariant::fromValue<qint64>(p.runId));
        g->setLineStyle(QCPGraph::lsNone);
        QColor fill = color;
        fill.setAlpha(110);
        g->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, QPen(color, 1.5), QBrush(fill), size));
        g->setPen(QPen(color));
        g->addData(p.latencyP99Ms, p.accuracy);
    }
    std::vector<LegendEntry> legend;
    for (int i = 0; i < families.size(); ++i) {
        LegendEntry e;
        const QColor color = paletteColor(i);
        QColor fill = color;
        fill.setAlpha(110);
        e.pen = QPen(color, 1.5);
        e.scatter = QCPScatterStyle(QCPScatterStyle::ssCircle, QPen(color, 1.5), QBrush(fill), 9);
        e.line = false;
        e.text = families[i];
        legend.push_back(std::move(e));
    }
    LegendEntry frontEntry;
    frontEntry.pen = line->pen();
    frontEntry.text = tr("Pareto front");
    legend.push_back(std::move(frontEntry));
    m_view->setLegendEntries(legend);
    double lo = 0, hi = 0;
    for (const Point& p : points) {
        lo = lo == 0 ? p.latencyP99Ms : std::min(lo, p.latencyP99Ms);
        hi = std::max(hi, p.latencyP99Ms);
    }
    m_view->setLogScale(plot->xAxis, lo > 0 && hi / lo >= 5);
    m_view->resetView();
    // Room for the largest points at the edges: the fitted ranges widened by a share of their span.
    const QCPRange y = plot->yAxis->range();
    plot->yAxis->setRange(y.lower - 0.08 * y.size(), y.upper + 0.08 * y.size());
    const QCPRange x = plot->xAxis->range();
    if (m_view->isLogScale(plot->xAxis)) {
        const double f = std::pow(x.upper / x.lower, 0.06);
        plot->xAxis->setRange(x.lower / f, x.upper * f);
    } else {
        plot->xAxis->setRange(x.lower - 0.06 * x.size(), x.upper + 0.06 * x.size());
    }
    m_view->setFollowsData(false);
    m_frontLabel->setText(points.empty() ? QString()
                                         : tr("On the front (no other run is both more accurate and faster at p99), "
                                              "fastest first: %1. Click a point to open its run.")
                                               .arg(listed.join(QStringLiteral("; "))));
}

std::int64_t ParetoChart::runAt(const QPointF& pos) const {
    QCustomPlot* plot = m_view->plot();
    std::int64_t best = 0;
    double bestDistance = 12;
    for (int i = 0; i < plot->graphCount(); ++i) {
        QCPGraph* g = plot->graph(i);
        const qint64 id = g->property("runId").toLongLong();
        if (id <= 0 || g->data()->isEmpty()) continue;
        const auto point = g->data()->at(0);
        const double d = std::hypot(g->keyAxis()->coordToPixel(point->key) - pos.x(),
                                    g->valueAxis()->coordToPixel(point->value) - pos.y());
        if (d < bestDistance) {
            bestDistance = d;
            best = id;
        }
    }
    return best;
}

} // namespace lathe::ui

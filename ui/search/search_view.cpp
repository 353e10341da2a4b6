// SearchView: reads the search through inspectSearch (the same best, front and importances as the
// engine computes), draws the trials chart and the importance bars, and hands the winner to the editor.
#include "ui/search/search_view.h"

#include "engine/store/run_store.h"
#include "ui/charts/chart_style.h"
#include "ui/charts/chart_view.h"

#include <qcustomplot.h>

#include <QFontDatabase>
#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>

namespace lathe::ui {

namespace {

constexpr int kChartHeight = 320;

// What the trials chart puts on its axes: a metric of the summary, or the trial's number.
struct Axis {
    QString label;
    std::string metric; // empty: the trial's number
};

std::optional<double> valueOf(const SearchTrial& t, const Axis& axis) {
    if (axis.metric.empty()) return static_cast<double>(t.index + 1);
    auto it = t.summary.find(axis.metric);
    if (it == t.summary.end() || !std::isfinite(it->second)) return std::nullopt;
    return it->second;
}

} // namespace

SearchView::SearchView(QWidget* parent)
    : QWidget(parent), m_trials(new ChartView(tr("Trials"), this)), m_importance(new ChartView(tr("Field importance"), this)),
      m_openWinner(new QPushButton(tr("Open winner as experiment"), this)), m_summary(new QLabel(this)) {
    setObjectName(QStringLiteral("searchView"));
    m_trials->setObjectName(QStringLiteral("searchTrials"));
    m_importance->setObjectName(QStringLiteral("searchImportance"));
    m_openWinner->setObjectName(QStringLiteral("openWinner"));
    m_trials->setMinimumHeight(kChartHeight);
    m_importance->setMinimumHeight(kChartHeight);
    m_summary->setWordWrap(true);
    m_summary->setTextFormat(Qt::PlainText);
    m_summary->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_summary->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont)); // the explanation's columns
    m_openWinner->setEnabled(false);

    auto* charts = new QHBoxLayout;
    charts->addWidget(m_trials, 3);
    charts->addWidget(m_importance, 2);
    auto* bottom = new QHBoxLayout;
    bottom->addWidget(m_summary, 1);
    bottom->addWidget(m_openWinner, 0, Qt::AlignTop);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(charts, 1);
    layout->addLayout(bottom);

    connect(m_openWinner, &QPushButton::clicked, this, [this] {
        if (!m_result.winner.is_null()) emit openExperimentRequested(QString::fromStdString(m_result.winner.dump(2)));
    });
    connect(m_trials->plot(), &QCustomPlot::plottableClick, this, [this](QCPAbstractPlottable* p, int index, QMouseEvent*) {
        const QVariant ids = p->property("runIds");
        const QVariantList list = ids.toList();
        if (index >= 0 && index < list.size()) emit runActivated(list[index].toLongLong());
    });
    clear();
}

void SearchView::clear() {
    m_searchRunId = 0;
    m_result = {};
    m_trials->plot()->clearGraphs();
    m_trials->plot()->clearItems();
    m_importance->plot()->clearPlottables();
    m_trials->requestReplot();
    m_importance->requestReplot();
    m_openWinner->setEnabled(false);
    m_summary->setText(tr("Open a search run (strategy chain \"search\") to see its trials."));
    m_feasiblePoints = m_infeasiblePoints = 0;
    m_regionShown = false;
}

bool SearchView::showSearch(const RunStore& store, std::int64_t searchRunId) {
    try {
        SearchSpec spec;
        SearchResult result = inspectSearch(store, searchRunId, &spec);
        m_searchRunId = searchRunId;
        m_result = std::move(result);
        m_spec = std::move(spec);
    } catch (const std::exception& e) {
        clear();
        m_summary->setText(tr("Run %1: %2").arg(searchRunId).arg(QString::fromStdString(e.what())));
        return false;
    }
    drawTrials();
    drawImportance();
    m_openWinner->setEnabled(!m_result.winner.is_null());
    m_summary->setText(QString::fromStdString(m_result.explanation));
    return true;
}

void SearchView::drawTrials() {
    QCustomPlot* plot = m_trials->plot();
    plot->clearGraphs();
    plot->clearItems();
    m_feasiblePoints = m_infeasiblePoints = 0;
    m_regionShown = false;

    // Axes: the two objectives; else the first constraint's metric (x) against the objective (y); else the
    // trial's number against the objective.
    const auto label = [](const std::string& metric, bool max) {
        return QString::fromStdString(metric) + (max ? tr(" (maximised)") : tr(" (minimised)"));
    };
    Axis x, y;
    const SearchConstraint* region = nullptr;
    if (m_spec.objectives.size() >= 2) {
        x = {label(m_spec.objectives[0].metric, m_spec.objectives[0].maximize), m_spec.objectives[0].metric};
        y = {label(m_spec.objectives[1].metric, m_spec.objectives[1].maximize), m_spec.objectives[1].metric};
    } else if (!m_spec.objectives.empty()) {
        y = {label(m_spec.objectives[0].metric, m_spec.objectives[0].maximize), m_spec.objectives[0].metric};
        if (!m_spec.constraints.empty()) {
            region = &m_spec.constraints[0];
            x = {QString::fromStdString(region->metric) + tr(" (constraint)"), region->metric};
        } else {
            x = {tr("trial"), {}};
        }
    }
    plot->xAxis->setLabel(x.label);
    plot->yAxis->setLabel(y.label);

    struct Group {
        QString name;
        QCPScatterStyle style;
        QCPGraph* graph = nullptr;
        QVariantList ids;
    };
    const QColor ok = paletteColor(2), bad = QColor(150, 150, 150), warm = paletteColor(0);
    Group groups[3] = {{tr("feasible"), QCPScatterStyle(QCPScatterStyle::ssDisc, ok, ok, 8)},
                       {tr("infeasible"), QCPScatterStyle(QCPScatterStyle::ssCircle, bad, 8)},
                       {tr("warm start (stored runs)"), QCPScatterStyle(QCPScatterStyle::ssDiamond, warm, warm, 8)}};
    for (Group& g : groups) {
        g.graph = plot->addGraph();
        g.graph->setName(g.name);
        g.graph->setLineStyle(QCPGraph::lsNone);
        g.graph->setScatterStyle(g.style);
    }
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (const SearchTrial& t : m_result.trials) {
        if (search::failed(t.observation)) continue;
        const auto vx = valueOf(t, x), vy = valueOf(t, y);
        if (!vx || !vy) continue;
        Group& g = t.origin == "warm" ? groups[2] : search::feasible(t.observation) ? groups[0] : groups[1];
        g.graph->addData(*vx, *vy);
        g.ids << QVariant::fromValue<qint64>(t.runId);
        (search::feasible(t.observation) ? m_feasiblePoints : m_infeasiblePoints) += 1;
        xmin = std::min(xmin, *vx), xmax = std::max(xmax, *vx);
        ymin = std::min(ymin, *vy), ymax = std::max(ymax, *vy);
    }
    for (Group& g : groups) g.graph->setProperty("runIds", g.ids);

    // The incumbent's level (one objective) or the Pareto front (two), in trial order of the data.
    QCPGraph* best = plot->addGraph();
    best->setLineStyle(QCPGraph::lsLine);
    best->setPen(QPen(palette().color(QPalette::Active, QPalette::Text), 1.2, Qt::DashLine));
    best->setSelectable(QCP::stNone);
    if (m_result.pareto.size() > 1) {
        best->setName(tr("Pareto front"));
        std::vector<std::pair<double, double>> pts;
        for (int i : m_result.pareto) {
            const auto vx = valueOf(m_result.trials[static_cast<std::size_t>(i)], x);
            const auto vy = valueOf(m_result.trials[static_cast<std::size_t>(i)], y);
            if (vx && vy) pts.push_back({*vx, *vy});
        }
        std::sort(pts.begin(), pts.end());
        for (const auto& [a, b] : pts) best->addData(a, b);
    } else if (m_result.best >= 0) {
        best->setName(tr("incumbent"));
        const SearchTrial& t = m_result.trials[static_cast<std::size_t>(m_result.best)];
        const auto vx = valueOf(t, x), vy = valueOf(t, y);
        if (vx && vy) {
            best->addData(xmin, *vy);
            best->addData(xmax, *vy);
            QCPGraph* ring = plot->addGraph();
            ring->setName(tr("best: run %1").arg(t.runId));
            ring->setLineStyle(QCPGraph::lsNone);
            ring->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, QPen(palette().color(QPalette::Active, QPalette::Text), 2), Qt::NoBrush, 16));
            ring->addData(*vx, *vy);
        }
    }

    if (std::isfinite(xmin)) {
        const double padX = std::max((xmax - xmin) * 0.08, 1e-9 + std::abs(xmax) * 0.02);
        const double padY = std::max((ymax - ymin) * 0.08, 1e-9 + std::abs(ymax) * 0.02);
        plot->xAxis->setRange(xmin - padX, xmax + padX);
        plot->yAxis->setRange(ymin - padY, ymax + padY);
    }
    // The feasible side of the first constraint, shaded behind the points.
    if (region && std::isfinite(xmin)) {
        const double lo = region->min ? *region->min : plot->xAxis->range().lower - 1e9;
        const double hi = region->max ? *region->max : plot->xAxis->range().upper + 1e9;
        auto* rect = new QCPItemRect(plot);
        rect->setLayer(QStringLiteral("background"));
        rect->topLeft->setCoords(lo, plot->yAxis->range().upper + 1e9);
        rect->bottomRight->setCoords(hi, plot->yAxis->range().lower - 1e9);
        QColor fill = ok;
        fill.setAlpha(40);
        rect->setBrush(fill);
        rect->setPen(QPen(ok, 1, Qt::DotLine));
        rect->setSelectable(false);
        m_regionShown = true;
    }
    std::vector<LegendEntry> legend;
    for (const Group& g : groups)
        if (!g.ids.isEmpty()) legend.push_back({QPen(Qt::NoPen), g.style, false, g.name, {}});
    if (!best->data()->isEmpty()) legend.push_back({best->pen(), QCPScatterStyle(), true, best->name(), {}});
    if (m_regionShown) {
        QColor fill = ok;
        fill.setAlpha(90);
        legend.push_back({QPen(fill, 8), QCPScatterStyle(), true, tr("feasible region"), {}});
    }
    m_trials->setLegendEntries(legend);
    m_trials->setFollowsData(false);
    m_trials->requestReplot();
}

void SearchView::drawImportance() {
    QCustomPlot* plot = m_importance->plot();
    plot->clearPlottables();
    auto* bars = new QCPBars(plot->yAxis, plot->xAxis); // horizontal: fields down the side
    bars->setName(tr("importance"));
    const QColor c = paletteColor(1);
    bars->setBrush(c);
    bars->setPen(QPen(c.darker(130)));
    QSharedPointer<QCPAxisTickerText> ticker(new QCPAxisTickerText);
    int row = 0;
    // Most important at the top.
    std::vector<search::FieldImportance> shown;
    for (const auto& fi : m_result.importance)
        if (fi.trials >= search::kMinTrialsForImportance) shown.push_back(fi);
    for (auto it = shown.rbegin(); it != shown.rend(); ++it, ++row) {
        bars->addData(row, it->importance);
        ticker->addTick(row, QString::fromStdString(it->name) + QStringLiteral("\n") +
                                 tr("best %1").arg(QString::fromStdString(it->bestValues)));
    }
    plot->yAxis->setTicker(ticker);
    plot->yAxis->setRange(-0.7, std::max(row, 1) - 0.3);
    plot->xAxis->setRange(0, 1);
    plot->xAxis->setLabel(tr("share of the trials' rank variance explained"));
    m_importance->setLegendShown(false);
    m_importance->setFollowsData(false);
    m_importance->requestReplot();
}

} // namespace lathe::ui

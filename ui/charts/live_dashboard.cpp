// LiveDashboard: routes metric samples to the charts of the spec table and keeps one graph per
// (run, series, chart); styles and legends are recomputed when a run or a series joins a chart.
#include "ui/charts/live_dashboard.h"

#include "ui/charts/chart_style.h"
#include "ui/charts/chart_view.h"

#include <qcustomplot.h>

#include <QGridLayout>
#include <QLabel>
#include <QScrollArea>
#include <QVBoxLayout>

#include <algorithm>
#include <optional>

namespace lathe::ui {

namespace {
constexpr int kCdfPoints = 256;
// Line charts carry one marker every so many points (the shape tells series apart where hue does
// not, and a series of a single point still shows).
constexpr int kMarkersPerLine = 12;
constexpr int kMinChartHeight = 200;

template <typename T>
int indexOf(const std::vector<T>& v, const T& x) {
    return static_cast<int>(std::find(v.begin(), v.end(), x) - v.begin());
}
bool sparseMarkers(DrawStyle d) { return d == DrawStyle::Line || d == DrawStyle::StepCdf; }
} // namespace

struct LiveDashboard::Panel {
    ChartSpec spec;
    ChartView* view = nullptr;
    bool dirty = false;
    bool styleDirty = false;
    std::vector<std::int64_t> runs;    // in order of arrival: the run's hue
    std::vector<std::string> variants; // series names in order of arrival: the series' dash and marker
    std::vector<Trace*> traces;
};

struct LiveDashboard::Trace {
    Panel* panel = nullptr;
    QCPGraph* graph = nullptr;
    std::int64_t runId = 0;
    std::string series;
    QVector<double> keys, values; // waiting for addData
    // CDF charts: every value, sorted[0, sortedCount) in order, the rest new since the last tick.
    std::vector<double> sorted;
    std::size_t sortedCount = 0;
    bool cdfDirty = false;
};

LiveDashboard::LiveDashboard(QWidget* parent)
    : QWidget(parent), m_grid(new QGridLayout), m_placeholder(new QLabel(this)), m_droppedLabel(new QLabel(this)) {
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    m_droppedLabel->setObjectName(QStringLiteral("droppedLabel"));
    m_droppedLabel->setStyleSheet(QStringLiteral("color: #d55e00; font-weight: bold;"));
    m_droppedLabel->setVisible(false);
    layout->addWidget(m_droppedLabel);

    m_placeholder->setObjectName(QStringLiteral("chartsPlaceholder"));
    m_placeholder->setText(tr("Charts appear here as a run streams its metrics: latency, throughput by batch size, "
                              "training loss and accuracy, and any other series in \"Other metrics\"."));
    m_placeholder->setWordWrap(true);
    m_placeholder->setAlignment(Qt::AlignCenter);
    m_placeholder->setEnabled(false);
    layout->addWidget(m_placeholder);

    auto* scroll = new QScrollArea(this);
    scroll->setFrameShape(QFrame::NoFrame);
    scroll->setWidgetResizable(true);
    auto* content = new QWidget(scroll);
    m_grid->setSpacing(6);
    m_grid->setContentsMargins(0, 0, 0, 0);
    content->setLayout(m_grid);
    scroll->setWidget(content);
    layout->addWidget(scroll, 1);
}

LiveDashboard::~LiveDashboard() = default;

ChartView* LiveDashboard::chart(const QString& id) const {
    for (const auto& p : m_panels) {
        if (p->spec.id == id) return p->view;
    }
    return nullptr;
}

QList<ChartView*> LiveDashboard::charts() const {
    QList<ChartView*> out;
    for (const auto& p : m_panels) out.append(p->view);
    return out;
}

QStringList LiveDashboard::chartIds() const {
    QStringList out;
    for (const auto& p : m_panels) out.append(p->spec.id);
    return out;
}

QList<QCPGraph*> LiveDashboard::graphsOf(std::int64_t runId, std::string_view series) const {
    QList<QCPGraph*> out;
    auto it = m_routes.find({runId, std::string(series)});
    if (it != m_routes.end()) {
        for (const Trace* t : it->second) out.append(t->graph);
    }
    return out;
}

LiveDashboard::Panel& LiveDashboard::panelFor(const QString& specId) {
    for (auto& p : m_panels) {
        if (p->spec.id == specId) return *p;
    }
    auto panel = std::make_unique<Panel>();
    panel->spec = ChartSpecRegistry::find(specId).value_or(*ChartSpecRegistry::find(QString::fromLatin1(ChartSpecRegistry::kOtherId)));
    const ChartSpec& spec = panel->spec;
    auto* view = new ChartView(spec.title, this);
    view->setObjectName(spec.id);
    view->setMinimumHeight(kMinChartHeight);
    QCustomPlot* plot = view->plot();
    plot->xAxis->setLabel(spec.xAxis.text());
    plot->yAxis->setLabel(spec.yAxis.text());
    view->setLogScale(plot->xAxis, spec.xAxis.log, spec.xAxis.logBase);
    view->setLogScale(plot->yAxis, spec.yAxis.log, spec.yAxis.logBase);
    if (spec.x == XSource::Epoch || spec.x == XSource::Step) {
        // Epochs and steps are whole numbers: no ticks at 1.2, 1.4, ...
        auto ticker = QSharedPointer<QCPAxisTickerFixed>(new QCPAxisTickerFixed);
        ticker->setTickStep(1);
        ticker->setScaleStrategy(QCPAxisTickerFixed::ssMultiples);
        plot->xAxis->setTicker(ticker);
    }
    panel->view = view;
    // Display order: by the spec's order, then by arrival.
    auto at = std::find_if(m_panels.begin(), m_panels.end(), [&](const auto& p) { return p->spec.order > spec.order; });
    Panel& ref = **m_panels.insert(at, std::move(panel));
    relayout();
    return ref;
}

void LiveDashboard::relayout() {
    while (m_grid->count() > 0) {
        delete m_grid->takeAt(0); // the layout item; the chart stays
    }
    const int n = static_cast<int>(m_panels.size());
    for (int i = 0; i < n; ++i) {
        // Two columns; a last chart alone in its row takes the full width.
        const bool alone = i == n - 1 && n % 2 == 1;
        m_grid->addWidget(m_panels[static_cast<std::size_t>(i)]->view, i / 2, i % 2, 1, alone ? 2 : 1);
    }
    for (int r = 0; r < (n + 1) / 2; ++r) m_grid->setRowStretch(r, 1);
    m_placeholder->setVisible(n == 0);
}

LiveDashboard::Trace* LiveDashboard::addTrace(Panel& panel, std::int64_t runId, const std::string& series) {
    QCustomPlot* plot = panel.view->plot();
    auto trace = std::make_unique<Trace>();
    trace->panel = &panel;
    trace->runId = runId;
    trace->series = series;
    trace->graph = plot->addGraph(plot->xAxis, plot->yAxis);
    trace->graph->setAdaptiveSampling(true);
    if (std::find(panel.runs.begin(), panel.runs.end(), runId) == panel.runs.end()) panel.runs.push_back(runId);
    if (std::find(panel.variants.begin(), panel.variants.end(), series) == panel.variants.end()) panel.variants.push_back(series);
    panel.traces.push_back(trace.get());
    panel.styleDirty = true;
    restyle(panel); // right away, so a graph never shows with QCustomPlot's default pen
    m_traces.push_back(std::move(trace));
    return m_traces.back().get();
}

const std::vector<LiveDashboard::Trace*>& LiveDashboard::tracesFor(std::int64_t runId, std::string_view series) {
    SeriesKey key{runId, std::string(series)};
    auto it = m_routes.find(key);
    if (it != m_routes.end()) return it->second;
    std::vector<Trace*> traces;
    for (const QString& id : ChartSpecRegistry::route(series)) {
        traces.push_back(addTrace(panelFor(id), runId, key.series));
    }
    return m_routes.emplace(std::move(key), std::move(traces)).first->second;
}

QString LiveDashboard::runLabel(std::int64_t runId) const { return m_runLabels.value(runId, QStringLiteral("#%1").arg(runId)); }

QString LiveDashboard::variantText(const Panel& panel, const std::string& series) const {
    const SeriesName name = parseSeriesName(series);
    QStringList parts;
    if (!name.label.empty()) parts << QString::fromStdString(name.label);
    if (panel.spec.legendShowsBase) parts << QString::fromStdString(name.base);
    if (name.batch) parts << tr("batch %1").arg(*name.batch);
    // The measure block of an experiment streams unlabelled series; measure steps carry their label.
    if (parts.isEmpty()) parts << tr("measure");
    return parts.join(QLatin1Char(' '));
}

void LiveDashboard::restyle(Panel& panel) {
    panel.styleDirty = false;
    const DrawStyle draw = panel.spec.draw;
    const int runCount = static_cast<int>(panel.runs.size());
    const QColor base = palette().color(QPalette::Base);
    auto scatterOf = [&](const SeriesLook& look, const QColor& color) {
        const double size = sparseMarkers(draw) ? 6 : 7;
        // Hollow markers: points that overlap stay visible.
        return QCPScatterStyle(look.marker, QPen(color, 1.2), QBrush(base), size);
    };
    for (Trace* t : panel.traces) {
        const int run = indexOf(panel.runs, t->runId);
        const int variant = indexOf(panel.variants, t->series);
        const SeriesLook look = seriesLook(run, variant, runCount);
        // Width-1 pens take the raster engine's fast line path; a wider pen is stroked as polygons,
        // which costs seconds per replot once a dense graph holds a few hundred thousand points.
        QPen pen(look.color, sparseMarkers(draw) ? 1.0 : 1.5, look.dash);
        t->graph->setPen(pen);
        t->graph->setLineStyle(draw == DrawStyle::Markers ? QCPGraph::lsNone
                               : draw == DrawStyle::StepCdf ? QCPGraph::lsStepLeft
                                                            : QCPGraph::lsLine);
        t->graph->setScatterStyle(scatterOf(look, look.color));
        t->graph->setName(QStringLiteral("%1 %2").arg(runLabel(t->runId), variantText(panel, t->series)));
    }

    // The legend describes styles: with one run, one entry per series; with several, one entry per
    // run (its hue) and one per series (its dash and marker), so a sweep's legend stays short.
    std::vector<LegendEntry> entries;
    const bool line = draw != DrawStyle::Markers;
    if (runCount <= 1) {
        for (std::size_t v = 0; v < panel.variants.size(); ++v) {
            const SeriesLook look = seriesLook(0, static_cast<int>(v), 1);
            LegendEntry e;
            e.pen = QPen(look.color, 1.5, look.dash);
            e.scatter = scatterOf(look, look.color);
            e.line = line;
            e.text = panel.variants.size() == 1 && !panel.runs.empty() ? runLabel(panel.runs.front())
                                                                      : variantText(panel, panel.variants[v]);
            entries.push_back(e);
        }
    } else {
        for (int r = 0; r < runCount; ++r) {
            LegendEntry e;
            e.pen = QPen(paletteColor(r), 2.5);
            e.line = true;
            e.text = runLabel(panel.runs[static_cast<std::size_t>(r)]);
            entries.push_back(e);
        }
        if (panel.variants.size() > 1) {
            const QColor text = palette().color(QPalette::Text);
            for (std::size_t v = 0; v < panel.variants.size(); ++v) {
                const SeriesLook look = seriesLook(0, static_cast<int>(v), runCount);
                LegendEntry e;
                e.pen = QPen(text, 1.5, look.dash);
                e.scatter = scatterOf(look, text);
                e.line = line;
                e.text = variantText(panel, panel.variants[v]);
                entries.push_back(e);
            }
        }
    }
    panel.view->setLegendEntries(entries);
    panel.dirty = true;
}

void LiveDashboard::clear() {
    for (auto& p : m_panels) {
        m_grid->removeWidget(p->view);
        delete p->view;
    }
    m_routes.clear();
    m_pending.clear();
    m_traces.clear();
    m_panels.clear();
    m_runLabels.clear();
    m_points = 0;
    relayout();
    setDroppedCount(0);
}

void LiveDashboard::setRunLabel(std::int64_t runId, const QString& label) {
    m_runLabels.insert(runId, label);
    for (auto& p : m_panels) {
        if (std::find(p->runs.begin(), p->runs.end(), runId) != p->runs.end()) p->styleDirty = true;
    }
}

void LiveDashboard::appendSamples(const std::vector<MetricSample>& samples) {
    // Consecutive samples mostly share a series: look the route up once per run of them.
    const std::vector<Trace*>* route = nullptr;
    std::int64_t routeRun = 0;
    std::string routeSeries;
    for (const MetricSample& s : samples) {
        const std::string_view name = s.seriesName();
        if (!route || s.runId != routeRun || name != routeSeries) {
            route = &tracesFor(s.runId, name);
            routeRun = s.runId;
            routeSeries.assign(name);
        }
        for (Trace* t : *route) {
            Panel& p = *t->panel;
            double x = 0;
            switch (p.spec.x) {
            case XSource::CdfValue:
                t->sorted.push_back(s.value);
                t->cdfDirty = true;
                continue;
            case XSource::TimeS: x = s.tMs / 1000.0; break;
            default: x = static_cast<double>(s.step); break;
            }
            if (t->keys.isEmpty()) m_pending.push_back(t);
            t->keys.append(x);
            t->values.append(s.value);
            p.dirty = true;
        }
        ++m_points;
    }
    for (Trace* t : m_pending) {
        // Keys mostly arrive in order per series; say so and QCustomPlot skips its sort.
        QCPGraph* graph = t->graph;
        const bool sorted = std::is_sorted(t->keys.begin(), t->keys.end()) &&
                            (graph->data()->isEmpty() || (graph->data()->constEnd() - 1)->key <= t->keys.front());
        graph->addData(t->keys, t->values, sorted);
        t->keys.clear();
        t->values.clear();
    }
    m_pending.clear();
}

void LiveDashboard::updateCdfs() {
    for (const auto& trace : m_traces) {
        Trace& t = *trace;
        if (!t.cdfDirty || t.sorted.empty()) continue;
        // The tail of `sorted` holds the unsorted new values: sort them and merge, O(n) per tick.
        auto firstNew = t.sorted.begin() + static_cast<std::ptrdiff_t>(t.sortedCount);
        std::sort(firstNew, t.sorted.end());
        std::inplace_merge(t.sorted.begin(), firstNew, t.sorted.end());
        t.sortedCount = t.sorted.size();
        const std::size_t n = t.sorted.size();
        const int points = static_cast<int>(std::min<std::size_t>(n, kCdfPoints));
        QVector<double> keys(points), values(points);
        for (int i = 0; i < points; ++i) {
            const std::size_t idx =
                points == 1 ? 0 : (n - 1) * static_cast<std::size_t>(i) / static_cast<std::size_t>(points - 1);
            keys[i] = t.sorted[idx];
            values[i] = static_cast<double>(idx + 1) / static_cast<double>(n);
        }
        t.graph->setData(keys, values, true);
        t.cdfDirty = false;
        t.panel->dirty = true;
    }
}

void LiveDashboard::replotDirty(double budgetMs) {
    updateCdfs();
    const std::size_t n = m_panels.size();
    double spentMs = 0;
    std::optional<std::size_t> firstDeferred;
    for (std::size_t k = 0; k < n; ++k) {
        const std::size_t index = (m_nextPanel + k) % n;
        Panel& p = *m_panels[index];
        if (p.styleDirty) restyle(p);
        if (!p.dirty) continue;
        const double costMs = p.view->plot()->replotTime(false);
        if (budgetMs > 0 && spentMs > 0 && spentMs + costMs > budgetMs) {
            if (!firstDeferred) firstDeferred = index;
            continue;
        }
        spentMs += costMs;
        if (sparseMarkers(p.spec.draw)) {
            for (Trace* t : p.traces) {
                t->graph->setScatterSkip(std::max(0, t->graph->dataCount() / kMarkersPerLine - 1));
            }
        }
        p.view->requestReplot();
        p.dirty = false;
    }
    // The charts left out this time go first next time.
    m_nextPanel = firstDeferred.value_or(0);
}

void LiveDashboard::setDroppedCount(std::uint64_t dropped) {
    m_dropped = dropped;
    m_droppedLabel->setVisible(dropped > 0);
    m_droppedLabel->setText(tr("%n sample(s) dropped: the charts could not keep up with the engine", nullptr,
                               static_cast<int>(std::min<std::uint64_t>(dropped, INT32_MAX))));
}

} // namespace lathe::ui

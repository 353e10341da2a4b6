// LiveDashboard: routes metric samples to charts and keeps one graph per (run, series).
#include "ui/charts/live_dashboard.h"

#include "ui/charts/chart_view.h"

#include <qcustomplot.h>

#include <QGridLayout>
#include <QLabel>
#include <QVBoxLayout>

#include <algorithm>

namespace lathe::ui {

namespace {
// Distinct, colour-blind-friendly run colours (Okabe-Ito, then Tableau).
const QColor kRunColors[] = {QColor(0, 114, 178),  QColor(230, 159, 0),  QColor(0, 158, 115),
                             QColor(213, 94, 0),   QColor(204, 121, 167), QColor(86, 180, 233),
                             QColor(148, 103, 189), QColor(140, 86, 75),  QColor(127, 127, 127),
                             QColor(188, 189, 34)};
constexpr int kCdfPoints = 256;

bool startsWith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }
bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }
} // namespace

LiveDashboard::LiveDashboard(QWidget* parent) : QWidget(parent), m_droppedLabel(new QLabel(this)) {
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    auto* grid = new QGridLayout;
    grid->setSpacing(4);
    const char* titles[] = {QT_TR_NOOP("Latency over time"), QT_TR_NOOP("Latency distribution (CDF)"),
                            QT_TR_NOOP("Throughput and other metrics"), QT_TR_NOOP("Training: loss and accuracy")};
    for (int i = 0; i < static_cast<int>(Chart::Count); ++i) {
        m_charts[i] = new ChartView(tr(titles[i]), this);
        grid->addWidget(m_charts[i], i / 2, i % 2);
    }
    auto axes = [](ChartView* c, const QString& x, const QString& y) {
        c->plot()->xAxis->setLabel(x);
        c->plot()->yAxis->setLabel(y);
    };
    axes(chart(Chart::LatencyOverTime), tr("timed forward (repeat)"), tr("latency (ms)"));
    axes(chart(Chart::LatencyCdf), tr("latency (ms)"), tr("fraction"));
    axes(chart(Chart::Throughput), tr("step"), tr("per second / value"));
    axes(chart(Chart::Training), tr("step"), tr("loss"));
    QCustomPlot* training = chart(Chart::Training)->plot();
    training->yAxis2->setVisible(true);
    training->yAxis2->setLabel(tr("accuracy"));
    chart(Chart::LatencyCdf)->plot()->yAxis->setRange(0, 1.02);

    m_droppedLabel->setObjectName(QStringLiteral("droppedLabel"));
    m_droppedLabel->setStyleSheet(QStringLiteral("color: #d55e00; font-weight: bold;"));
    m_droppedLabel->setVisible(false);
    layout->addWidget(m_droppedLabel);
    layout->addLayout(grid, 1);
}

QList<ChartView*> LiveDashboard::charts() const {
    QList<ChartView*> out;
    for (ChartView* c : m_charts) {
        out.append(c);
    }
    return out;
}

LiveDashboard::Chart LiveDashboard::chartFor(std::string_view series) {
    if (startsWith(series, "latency")) {
        return Chart::LatencyOverTime;
    }
    if (contains(series, "loss") || contains(series, "acc")) {
        return Chart::Training;
    }
    return Chart::Throughput;
}

void LiveDashboard::clear() {
    for (ChartView* c : m_charts) {
        c->plot()->clearGraphs();
        c->setFollowsData(true);
        c->plot()->replot(QCustomPlot::rpQueuedReplot);
    }
    m_graphs.clear();
    m_cdfs.clear();
    m_runIndex.clear();
    m_runLabels.clear();
    m_points = 0;
    setDroppedCount(0);
}

void LiveDashboard::setRunLabel(std::int64_t runId, const QString& label) {
    m_runLabels.insert(runId, label);
    for (auto& [key, graph] : m_graphs) {
        if (key.runId == runId) {
            graph->setName(QStringLiteral("%1 %2").arg(label, QString::fromStdString(key.series)));
        }
    }
    for (auto& [key, cdf] : m_cdfs) {
        if (key.runId == runId && cdf.graph) {
            cdf.graph->setName(QStringLiteral("%1 %2").arg(label, QString::fromStdString(key.series)));
        }
    }
}

QColor LiveDashboard::colorFor(std::int64_t runId, const std::string& series) {
    auto [it, inserted] = m_runIndex.try_emplace(runId, static_cast<int>(m_runIndex.size()));
    QColor c = kRunColors[it->second % std::size(kRunColors)];
    // Within one run, separate series of the same chart by lightness (e.g. batch sizes).
    int variant = 0;
    for (const auto& [key, graph] : m_graphs) {
        if (key.runId == runId && chartFor(key.series) == chartFor(series)) {
            ++variant;
        }
    }
    return variant == 0 ? c : c.lighter(100 + 25 * (variant % 4)).darker(100 + 15 * (variant / 4));
}

QCPGraph* LiveDashboard::graphFor(std::int64_t runId, const std::string& series) {
    const SeriesKey key{runId, series};
    auto it = m_graphs.find(key);
    if (it != m_graphs.end()) {
        return it->second;
    }
    const Chart which = chartFor(series);
    QCustomPlot* plot = chart(which)->plot();
    const bool accuracy = which == Chart::Training && contains(series, "acc");
    QCPGraph* graph = plot->addGraph(plot->xAxis, accuracy ? plot->yAxis2 : plot->yAxis);
    const QColor color = colorFor(runId, series);
    // Width-1 pens take the raster engine's fast line path; a wider pen is stroked as polygons,
    // which costs seconds per replot once a graph holds a few hundred thousand points.
    QPen pen(color, 1);
    if (accuracy) {
        pen.setStyle(Qt::DashLine);
    }
    graph->setPen(pen);
    graph->setAdaptiveSampling(true);
    const QString run = m_runLabels.value(runId, QStringLiteral("#%1").arg(runId));
    graph->setName(QStringLiteral("%1 %2").arg(run, QString::fromStdString(series)));
    m_graphs.emplace(key, graph);

    if (which == Chart::LatencyOverTime) {
        QCustomPlot* cdfPlot = chart(Chart::LatencyCdf)->plot();
        Cdf& cdf = m_cdfs[key];
        cdf.graph = cdfPlot->addGraph();
        cdf.graph->setPen(QPen(color, 1));
        cdf.graph->setName(graph->name());
    }
    return graph;
}

void LiveDashboard::appendSamples(const std::vector<MetricSample>& samples) {
    if (samples.empty()) {
        return;
    }
    // Group consecutive samples of one series so each graph gets one addData call per batch.
    struct Pending {
        QVector<double> keys, values;
    };
    std::map<QCPGraph*, Pending> pending;
    for (const MetricSample& s : samples) {
        const std::string series(s.seriesName());
        QCPGraph* graph = graphFor(s.runId, series);
        const Chart which = chartFor(series);
        Pending& p = pending[graph];
        // Timed forwards come in bursts far shorter than a run, so latency is drawn per repeat.
        p.keys.append(static_cast<double>(s.step));
        p.values.append(s.value);
        m_dirty[static_cast<int>(which)] = true;
        if (which == Chart::LatencyOverTime) {
            Cdf& cdf = m_cdfs[{s.runId, series}];
            cdf.sorted.push_back(s.value);
            cdf.dirty = true;
        }
    }
    for (auto& [graph, p] : pending) {
        // Keys arrive in order per series; say so and QCustomPlot skips its sort.
        const bool sorted = std::is_sorted(p.keys.begin(), p.keys.end()) &&
                            (graph->data()->isEmpty() || (graph->data()->constEnd() - 1)->key <= p.keys.front());
        graph->addData(p.keys, p.values, sorted);
        m_points += static_cast<std::size_t>(p.keys.size());
    }
}

void LiveDashboard::updateCdfs() {
    bool any = false;
    for (auto& [key, cdf] : m_cdfs) {
        if (!cdf.dirty || cdf.sorted.empty()) {
            continue;
        }
        // The tail of `sorted` holds the unsorted new values: sort them and merge, O(n) per tick.
        auto firstNew = cdf.sorted.begin() + static_cast<std::ptrdiff_t>(cdf.sortedCount);
        std::sort(firstNew, cdf.sorted.end());
        std::inplace_merge(cdf.sorted.begin(), firstNew, cdf.sorted.end());
        cdf.sortedCount = cdf.sorted.size();
        const std::size_t n = cdf.sorted.size();
        const int points = static_cast<int>(std::min<std::size_t>(n, kCdfPoints));
        QVector<double> keys(points), values(points);
        for (int i = 0; i < points; ++i) {
            const std::size_t idx = points == 1 ? 0 : (n - 1) * static_cast<std::size_t>(i) / static_cast<std::size_t>(points - 1);
            keys[i] = cdf.sorted[idx];
            values[i] = static_cast<double>(idx + 1) / static_cast<double>(n);
        }
        cdf.graph->setData(keys, values, true);
        cdf.dirty = false;
        any = true;
    }
    if (any) {
        m_dirty[static_cast<int>(Chart::LatencyCdf)] = true;
    }
}

void LiveDashboard::replotDirty() {
    updateCdfs();
    for (int i = 0; i < static_cast<int>(Chart::Count); ++i) {
        if (m_dirty[i]) {
            m_charts[i]->requestReplot();
            m_dirty[i] = false;
        }
    }
}

void LiveDashboard::setDroppedCount(std::uint64_t dropped) {
    m_dropped = dropped;
    m_droppedLabel->setVisible(dropped > 0);
    m_droppedLabel->setText(tr("%n sample(s) dropped: the charts could not keep up with the engine", nullptr,
                               static_cast<int>(std::min<std::uint64_t>(dropped, INT32_MAX))));
}

} // namespace lathe::ui

// LayerChartsPanel: per-layer stats -> one QCPBars per (run, key) of each layer chart spec, grouped at
// each layer's tick, and a table of every stat.
#include "ui/charts/layer_charts_panel.h"

#include "ui/charts/chart_spec.h"
#include "ui/charts/chart_stack.h"
#include "ui/charts/chart_style.h"
#include "ui/charts/chart_view.h"

#include <qcustomplot.h>

#include <QHeaderView>
#include <QScrollArea>
#include <QScrollBar>
#include <QTableWidget>
#include <QToolTip>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>
#include <map>

namespace lathe::ui {

namespace {

// "layers.1.weight" -> "layers.1": the stats are kept per weight, the chart names the layer.
QString layerName(const std::string& weight) {
    QString s = QString::fromStdString(weight);
    if (s.endsWith(QLatin1String(".weight"))) s.chop(7);
    return s;
}

template <class T> void appendOnce(std::vector<T>& list, const T& value) {
    if (std::find(list.begin(), list.end(), value) == list.end()) list.push_back(value);
}


constexpr int kBarChartHeight = 280;
// From this many runs on, a per-layer chart is a heatmap per stat key (layers x runs): grouped bars of
// every run and key stop being readable.
constexpr std::size_t kHeatmapMinRuns = 3;

} // namespace

// One bar series (or heatmap row): a run's values of one key, by layer index.
struct LayerChartsPanel::BarSeries {
    int run = 0;
    std::string key;
    std::map<int, double> byLayer;
};

LayerChartsPanel::LayerChartsPanel(QWidget* parent)
    : QWidget(parent), m_charts(new ChartStack), m_table(new QTableWidget(this)) {
    m_table->setObjectName(QStringLiteral("layerStatsTable"));
    m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_table->verticalHeader()->setDefaultSectionSize(m_table->fontMetrics().height() + 6);
    // The table scrolls with the charts, below them, as tall as its rows: one scroll bar for the tab.
    m_table->setVerticalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    m_table->setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Fixed);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(stackedScrollArea(this, {m_charts, m_table}));
}

void LayerChartsPanel::clear() {
    m_charts->clear();
    m_table->clear();
    m_table->setRowCount(0);
    m_table->setColumnCount(0);
}

bool LayerChartsPanel::isEmpty() const {
    return m_table->rowCount() == 0;
}

QStringList LayerChartsPanel::chartIds() const { return m_charts->ids(); }

ChartView* LayerChartsPanel::chart(const QString& id) const { return m_charts->chart(id); }

void LayerChartsPanel::setRuns(const std::vector<RunLayerStats>& all) {
    clear();
    std::vector<const RunLayerStats*> runs;
    for (const RunLayerStats& r : all) {
        if (!r.stats.empty()) runs.push_back(&r);
    }
    // Layers and keys in the order the runs stored them (a sensitivity sweep's ratios ascending, the
    // measure batch sizes as configured).
    std::vector<std::string> layers, keys;
    for (const RunLayerStats* r : runs) {
        for (const LayerStat& s : r->stats) {
            appendOnce(layers, s.layer);
            appendOnce(keys, s.key);
        }
    }
    auto layerIndex = [&](const std::string& layer) {
        return static_cast<int>(std::find(layers.begin(), layers.end(), layer) - layers.begin());
    };

    // The table: a column per (run, key); a run's id only when several runs are shown.
    std::vector<std::pair<int, std::string>> columns;
    for (int r = 0; r < static_cast<int>(runs.size()); ++r) {
        for (const std::string& k : keys) {
            const auto& stats = runs[static_cast<std::size_t>(r)]->stats;
            if (std::any_of(stats.begin(), stats.end(), [&](const LayerStat& s) { return s.key == k; }))
                columns.emplace_back(r, k);
        }
    }
    m_table->setRowCount(static_cast<int>(layers.size()));
    m_table->setColumnCount(static_cast<int>(columns.size()));
    QStringList rowHeaders, columnHeaders;
    for (const std::string& l : layers)
        rowHeaders << layerName(l);
    for (const auto& [r, k] : columns) {
        columnHeaders << (runs.size() > 1 ? QStringLiteral("#%1 %2")
                                                .arg(runs[static_cast<std::size_t>(r)]->runId)
                                                .arg(QString::fromStdString(k))
                                          : QString::fromStdString(k));
    }
    m_table->setVerticalHeaderLabels(rowHeaders);
    m_table->setHorizontalHeaderLabels(columnHeaders);
    for (int c = 0; c < static_cast<int>(columns.size()); ++c) {
        const auto& [r, k] = columns[static_cast<std::size_t>(c)];
        for (const LayerStat& s : runs[static_cast<std::size_t>(r)]->stats) {
            if (s.key != k) continue;
            auto* item = new QTableWidgetItem(QString::number(s.value, 'g', 6));
            item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
            m_table->setItem(layerIndex(s.layer), c, item);
        }
    }
    m_table->resizeColumnsToContents();
    int height = m_table->horizontalHeader()->height() + 2 * m_table->frameWidth();
    for (int row = 0; row < m_table->rowCount(); ++row)
        height += m_table->rowHeight(row);
    if (m_table->horizontalScrollBar()->isVisible() || m_table->horizontalHeader()->length() > m_table->width())
        height += m_table->horizontalScrollBar()->sizeHint().height();
    m_table->setFixedHeight(height);

    for (const LayerChartSpec& spec : ChartSpecRegistry::layerSpecs()) {
        std::vector<BarSeries> series;
        for (int r = 0; r < static_cast<int>(runs.size()); ++r) {
            for (const std::string& k : keys) {
                if (!spec.matches(k)) continue;
                BarSeries b{r, k, {}};
                for (const LayerStat& s : runs[static_cast<std::size_t>(r)]->stats) {
                    if (s.key == k) b.byLayer[layerIndex(s.layer)] = s.value;
                }
                if (!b.byLayer.empty()) series.push_back(std::move(b));
            }
        }
        if (series.empty()) continue;
        if (runs.size() >= kHeatmapMinRuns) {
            addHeatmaps(spec, runs, layers, series);
            continue;
        }
        // Only the layers this chart has a value for, at ticks 1..n.
        std::vector<int> shown;
        for (const BarSeries& b : series) {
            for (const auto& [l, v] : b.byLayer)
                appendOnce(shown, l);
        }
        std::sort(shown.begin(), shown.end());
        auto* view = new ChartView(spec.title, this);
        view->setObjectName(spec.id);
        view->setMinimumHeight(kBarChartHeight);
        QCustomPlot* plot = view->plot();
        auto ticker = QSharedPointer<QCPAxisTickerText>::create();
        for (std::size_t i = 0; i < shown.size(); ++i)
            ticker->addTick(static_cast<double>(i + 1), layerName(layers[static_cast<std::size_t>(shown[i])]));
        plot->xAxis->setTicker(ticker);
        plot->xAxis->setTickLabelRotation(shown.size() > 6 ? 30 : 0);
        plot->xAxis->setLabel(tr("layer"));
        plot->yAxis->setLabel(spec.yAxis.text());
        auto* group = new QCPBarsGroup(plot);
        group->setSpacingType(QCPBarsGroup::stAbsolute);
        group->setSpacing(1);
        const double width = 0.8 / static_cast<double>(series.size());
        std::vector<LegendEntry> legend;
        int variant = 0, lastRun = -1;
        for (const BarSeries& b : series) {
            variant = b.run == lastRun ? variant + 1 : 0;
            lastRun = b.run;
            const SeriesLook look = seriesLook(b.run, variant, static_cast<int>(runs.size()));
            // Several runs: the run's hue, lighter for each further key.
            const QColor color = runs.size() > 1 ? look.color.lighter(100 + 30 * variant) : look.color;
            auto* bars = new QCPBars(plot->xAxis, plot->yAxis);
            const QString name = runs.size() > 1
                                     ? QStringLiteral("%1 %2").arg(runs[static_cast<std::size_t>(b.run)]->label,
                                                                   QString::fromStdString(b.key))
                                     : QString::fromStdString(b.key);
            bars->setName(name);
            bars->setWidth(width);
            bars->setPen(QPen(color.darker(130)));
            bars->setBrush(color);
            bars->setBarsGroup(group);
            for (std::size_t i = 0; i < shown.size(); ++i) {
                auto it = b.byLayer.find(shown[i]);
                if (it != b.byLayer.end()) bars->addData(static_cast<double>(i + 1), it->second);
            }
            LegendEntry entry;
            entry.pen = QPen(color.darker(130));
            entry.scatter = QCPScatterStyle(QCPScatterStyle::ssSquare, color.darker(130), color, 9);
            entry.line = false;
            entry.text = name;
            legend.push_back(std::move(entry));
        }
        view->setLegendEntries(legend);
        view->resetView();
        // Bars start at zero: the fitted range is widened to take it, and to show each group whole.
        QCPRange y = plot->yAxis->range();
        y.lower = std::min(y.lower, 0.0);
        y.upper = std::max(y.upper, 0.0);
        plot->yAxis->setRange(y);
        plot->xAxis->setRange(0.4, static_cast<double>(shown.size()) + 0.6);
        view->setFollowsData(false);
        const QString id = spec.id;
        connect(plot, &QCustomPlot::mouseMove, view, [this, id, plot](QMouseEvent* event) {
            const QString text = barText(id, event->position());
            plot->setToolTip(text);
            if (text.isEmpty())
                QToolTip::hideText();
            else
                QToolTip::showText(event->globalPosition().toPoint(), text, plot);
        });
        m_charts->add(spec.id, view);
    }
}

void LayerChartsPanel::showHoverText(ChartView* view, const QString& id) {
    QCustomPlot* plot = view->plot();
    connect(plot, &QCustomPlot::mouseMove, view, [this, id, plot](QMouseEvent* event) {
        const QString text = barText(id, event->position());
        plot->setToolTip(text);
        if (text.isEmpty()) QToolTip::hideText();
        else QToolTip::showText(event->globalPosition().toPoint(), text, plot);
    });
}

void LayerChartsPanel::addHeatmaps(const LayerChartSpec& spec, const std::vector<const RunLayerStats*>& runs,
                                   const std::vector<std::string>& layers, const std::vector<BarSeries>& series) {
    std::vector<std::string> keys;
    for (const BarSeries& b : series) appendOnce(keys, b.key);
    for (const std::string& key : keys) {
        std::vector<int> shown; // the layers with a value for this key, in model order
        for (const BarSeries& b : series)
            if (b.key == key)
                for (const auto& [l, v] : b.byLayer) appendOnce(shown, l);
        std::sort(shown.begin(), shown.end());
        const QString id = spec.id + QLatin1Char(':') + QString::fromStdString(key);
        auto* view = new ChartView(QStringLiteral("%1 — %2, per run").arg(spec.title, QString::fromStdString(key)), this);
        view->setObjectName(id);
        view->setLegendShown(false);
        const int rows = static_cast<int>(runs.size());
        view->setMinimumHeight(std::max(kBarChartHeight, 120 + 22 * rows));
        QCustomPlot* plot = view->plot();
        auto* map = new QCPColorMap(plot->xAxis, plot->yAxis);
        map->setName(QString::fromStdString(key));
        map->data()->setSize(static_cast<int>(shown.size()), rows);
        map->data()->setRange(QCPRange(1, static_cast<double>(shown.size())), QCPRange(1, rows));
        for (int x = 0; x < static_cast<int>(shown.size()); ++x)
            for (int y = 0; y < rows; ++y) map->data()->setCell(x, y, std::nan(""));
        QCPRange values;
        bool any = false;
        for (const BarSeries& b : series) {
            if (b.key != key) continue;
            for (const auto& [l, v] : b.byLayer) {
                const int x = static_cast<int>(std::find(shown.begin(), shown.end(), l) - shown.begin());
                map->data()->setCell(x, b.run, v);
                if (!std::isfinite(v)) continue;
                values = any ? QCPRange(std::min(values.lower, v), std::max(values.upper, v)) : QCPRange(v, v);
                any = true;
            }
        }
        if (values.size() <= 0) values = QCPRange(values.lower - 0.5, values.upper + 0.5);
        // Viridis: perceptually even, readable without colour vision, and no white that would read as
        // "no value" (those cells are transparent).
        QCPColorGradient gradient;
        gradient.setColorStopAt(0.0, QColor(0x44, 0x01, 0x54));
        gradient.setColorStopAt(0.25, QColor(0x3b, 0x52, 0x8b));
        gradient.setColorStopAt(0.5, QColor(0x21, 0x91, 0x8c));
        gradient.setColorStopAt(0.75, QColor(0x5e, 0xc9, 0x62));
        gradient.setColorStopAt(1.0, QColor(0xfd, 0xe7, 0x25));
        gradient.setNanHandling(QCPColorGradient::nhTransparent);
        map->setInterpolate(false);
        auto* scale = new QCPColorScale(plot);
        plot->plotLayout()->addElement(0, 1, scale);
        scale->setType(QCPAxis::atRight);
        scale->axis()->setLabel(spec.yAxis.text());
        map->setColorScale(scale); // takes the scale's range and gradient: set them after
        map->setGradient(gradient);
        map->setDataRange(values);
        auto* margins = new QCPMarginGroup(plot);
        plot->axisRect()->setMarginGroup(QCP::msBottom | QCP::msTop, margins);
        scale->setMarginGroup(QCP::msBottom | QCP::msTop, margins);
        auto xTicks = QSharedPointer<QCPAxisTickerText>::create();
        for (std::size_t i = 0; i < shown.size(); ++i)
            xTicks->addTick(static_cast<double>(i + 1), layerName(layers[static_cast<std::size_t>(shown[i])]));
        auto yTicks = QSharedPointer<QCPAxisTickerText>::create();
        const QFontMetrics metrics(plot->yAxis->tickLabelFont());
        for (int r = 0; r < rows; ++r)
            yTicks->addTick(r + 1, metrics.elidedText(runs[static_cast<std::size_t>(r)]->label, Qt::ElideMiddle, 260));
        plot->xAxis->setTicker(xTicks);
        plot->yAxis->setTicker(yTicks);
        plot->xAxis->setTickLabelRotation(shown.size() > 6 ? 30 : 0);
        plot->xAxis->setLabel(tr("layer"));
        plot->xAxis->setRange(0.5, static_cast<double>(shown.size()) + 0.5);
        plot->yAxis->setRange(0.5, rows + 0.5);
        plot->yAxis->setRangeReversed(true); // the first run on top, as in the table
        view->setFollowsData(false);
        showHoverText(view, id);
        m_charts->add(id, view);
    }
}

QString LayerChartsPanel::barText(const QString& id, const QPointF& pos) const {
    ChartView* view = chart(id);
    if (!view) return {};
    QCustomPlot* plot = view->plot();
    auto* ticker = dynamic_cast<QCPAxisTickerText*>(plot->xAxis->ticker().data());
    auto* yTicker = dynamic_cast<QCPAxisTickerText*>(plot->yAxis->ticker().data());
    for (int i = 0; i < plot->plottableCount(); ++i) {
        if (auto* map = qobject_cast<QCPColorMap*>(plot->plottable(i))) {
            double key = 0, value = 0;
            map->pixelsToCoords(pos, key, value);
            int x = 0, y = 0;
            map->data()->coordToCell(key, value, &x, &y);
            if (x < 0 || y < 0 || x >= map->data()->keySize() || y >= map->data()->valueSize()) continue;
            const double v = map->data()->cell(x, y);
            if (std::isnan(v)) continue;
            return QStringLiteral("%1 · %2 · %3: %4")
                .arg(ticker ? ticker->ticks().value(x + 1) : QString::number(x + 1),
                     yTicker ? yTicker->ticks().value(y + 1) : QString::number(y + 1), map->name())
                .arg(v, 0, 'g', 6);
        }
        auto* bars = qobject_cast<QCPBars*>(plot->plottable(i));
        if (!bars) continue;
        QVariant details;
        const double distance = bars->selectTest(pos, false, &details);
        if (distance < 0 || distance > plot->selectionTolerance()) continue;
        const QCPDataSelection hit = details.value<QCPDataSelection>();
        if (hit.isEmpty()) continue;
        const auto point = bars->data()->at(hit.dataRange().begin());
        const QString layer = ticker ? ticker->ticks().value(point->key) : QString::number(point->key);
        return QStringLiteral("%1 · %2: %3").arg(layer, bars->name()).arg(point->value, 0, 'g', 6);
    }
    return {};
}

} // namespace lathe::ui

// RunsChartsPanel: summary metrics of several runs -> one QCPGraph per y metric of each runs chart spec.
#include "ui/charts/runs_charts_panel.h"

#include "ui/charts/chart_spec.h"
#include "ui/charts/chart_stack.h"
#include "ui/charts/chart_style.h"
#include "ui/charts/chart_view.h"
#include "ui/charts/pareto_chart.h"
#include "ui/charts/roofline_chart.h"

#include <qcustomplot.h>

#include <QLabel>
#include <QScrollArea>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>

namespace lathe::ui {

namespace {
constexpr int kRunsChartHeight = 300;

bool usable(double v, bool log) {
    return std::isfinite(v) && (!log || v > 0);
}
} // namespace

RunsChartsPanel::RunsChartsPanel(QWidget* parent)
    : QWidget(parent), m_charts(new ChartStack), m_pareto(new ParetoChart), m_roofline(new RooflineChart),
      m_hint(new QLabel(this)) {
    m_hint->setWordWrap(true);
    connect(m_pareto, &ParetoChart::runActivated, this, &RunsChartsPanel::runActivated);
    connect(m_roofline, &RooflineChart::runActivated, this, &RunsChartsPanel::runActivated);
    auto* scroll = stackedScrollArea(this, {m_pareto, m_roofline, m_charts});
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(m_hint);
    layout->addWidget(scroll, 1);
    clear();
}

void RunsChartsPanel::clear() {
    m_charts->clear();
    m_pareto->setPoints({});
    m_pareto->hide();
    m_roofline->setData({}, {});
    m_roofline->hide();
    m_hint->setText(tr("Open two or more runs together (Runs tab: select them, then Compare) to chart their "
                       "summary metrics against each other, e.g. a sweep's speedup against sparsity."));
}

bool RunsChartsPanel::isEmpty() const {
    return m_charts->isEmpty() && m_pareto->isHidden() && m_roofline->isHidden();
}

QStringList RunsChartsPanel::chartIds() const { return m_charts->ids(); }

ChartView* RunsChartsPanel::chart(const QString& id) const { return m_charts->chart(id); }

void RunsChartsPanel::setRuns(const std::vector<RunSummary>& runs) {
    clear();
    std::vector<ParetoChart::Point> points;
    for (const RunSummary& r : runs) {
        auto accuracy = r.summary.find("accuracy"), p99 = r.summary.find("latency_p99_ms"),
             bytes = r.summary.find("model_bytes");
        if (accuracy == r.summary.end() || p99 == r.summary.end()) continue;
        if (!std::isfinite(accuracy->second) || !(p99->second > 0)) continue;
        points.push_back({r.runId, r.label, ParetoChart::familyOf(r.strategyChain), accuracy->second, p99->second,
                          bytes == r.summary.end() ? 0.0 : bytes->second});
    }
    if (points.size() >= 2) {
        m_pareto->setPoints(points);
        m_pareto->show();
    }
    std::vector<RooflineChart::RunPoints> roofPoints;
    for (const RunSummary& r : runs)
        roofPoints.push_back(RooflineChart::fromSummary(r.runId, r.label, ParetoChart::familyOf(r.strategyChain),
                                                        r.device, r.summary));
    m_roofline->setData(roofPoints, m_peaks);
    m_roofline->setVisible(m_roofline->hasPoints());
    const QColor base = palette().color(QPalette::Base);
    for (const RunsChartSpec& spec : ChartSpecRegistry::runsSpecs()) {
        // The y metrics in the order the runs list them (std::map: alphabetical, so "speedup_realized"
        // and its "@b<batch>" variants stay together).
        std::vector<std::string> yKeys;
        for (const RunSummary& r : runs) {
            for (const auto& [k, v] : r.summary) {
                if (spec.yKeys(k) && std::find(yKeys.begin(), yKeys.end(), k) == yKeys.end()) yKeys.push_back(k);
            }
        }
        struct Line {
            std::string key;
            std::vector<std::pair<double, double>> points;
        };
        std::vector<Line> lines;
        for (const std::string& k : yKeys) {
            Line line{k, {}};
            for (const RunSummary& r : runs) {
                auto x = r.summary.find(spec.xKey);
                auto y = r.summary.find(k);
                if (x == r.summary.end() || y == r.summary.end()) continue;
                if (!usable(x->second, spec.xAxis.log) || !usable(y->second, spec.yAxis.log)) continue;
                line.points.emplace_back(x->second, y->second);
            }
            // Two runs at least, at two x values at least: runs that share x (a sweep over something else
            // at the same parameter count) would only stack up on a vertical line.
            const bool spread = std::any_of(line.points.begin(), line.points.end(),
                                            [&](const auto& p) { return p.first != line.points.front().first; });
            if (line.points.size() >= 2 && spread) lines.push_back(std::move(line));
        }
        if (lines.empty()) continue;
        auto* view = new ChartView(spec.title, this);
        view->setObjectName(spec.id);
        view->setMinimumHeight(kRunsChartHeight);
        QCustomPlot* plot = view->plot();
        plot->xAxis->setLabel(spec.xAxis.text());
        plot->yAxis->setLabel(spec.yAxis.text());
        view->setLogScale(plot->xAxis, spec.xAxis.log, spec.xAxis.logBase);
        view->setLogScale(plot->yAxis, spec.yAxis.log, spec.yAxis.logBase);
        std::vector<LegendEntry> legend;
        for (std::size_t i = 0; i < lines.size(); ++i) {
            Line& line = lines[i];
            std::sort(line.points.begin(), line.points.end());
            const SeriesLook look = seriesLook(0, static_cast<int>(i), 1);
            QCPGraph* graph = plot->addGraph();
            graph->setName(QString::fromStdString(line.key));
            graph->setPen(QPen(look.color, 1.5, look.dash));
            graph->setScatterStyle(QCPScatterStyle(look.marker, QPen(look.color, 1.2), QBrush(base), 7));
            QVector<double> xs, ys;
            for (const auto& [x, y] : line.points) {
                xs << x;
                ys << y;
            }
            graph->setData(xs, ys, true);
            LegendEntry entry;
            entry.pen = graph->pen();
            entry.scatter = graph->scatterStyle();
            entry.text = graph->name();
            legend.push_back(std::move(entry));
        }
        view->setLegendEntries(legend);
        view->resetView();
        m_charts->add(spec.id, view);
    }
    if (!isEmpty()) {
        m_hint->setText(tr("Charts across the %1 runs shown: one point per run.").arg(runs.size()));
    }
}

} // namespace lathe::ui

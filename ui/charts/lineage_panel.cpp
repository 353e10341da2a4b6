// LineagePanel: summary keys "<label>.<metric>" ordered by when the label's series were first sampled.
#include "ui/charts/lineage_panel.h"

#include "ui/charts/chart_stack.h"
#include "ui/charts/chart_style.h"
#include "ui/charts/chart_view.h"

#include <qcustomplot.h>

#include <QScrollArea>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

namespace lathe::ui {

namespace {
constexpr int kLineageChartHeight = 240;

std::optional<double> valueOf(const RunRecord& run, const std::string& key) {
    auto it = run.summary.find(key);
    if (it == run.summary.end() || !std::isfinite(it->second)) return std::nullopt;
    return it->second;
}
} // namespace

std::vector<LineagePanel::Stage> LineagePanel::stagesOf(const RunStore& store, const RunRecord& run) {
    std::vector<Stage> stages;
    const auto baselineAccuracy = valueOf(run, "baseline_accuracy");
    const auto baselineBytes = valueOf(run, "baseline_model_bytes");
    if (baselineAccuracy || baselineBytes) stages.push_back({QStringLiteral("baseline"), baselineAccuracy, {}, baselineBytes});

    // Labelled measurements: "<label>.accuracy", "<label>.latency_p50_ms", "<label>.model_bytes".
    std::set<std::string> labels;
    for (const auto& [key, v] : run.summary) {
        const auto dot = key.find('.');
        if (dot == std::string::npos || key.find('@') != std::string::npos) continue;
        const std::string metric = key.substr(dot + 1);
        if (metric == "accuracy" || metric == "latency_p50_ms" || metric == "model_bytes") labels.insert(key.substr(0, dot));
    }
    // In the order they were measured: the first sample of the label's series ("<label>/latency_ms/b64").
    std::map<std::string, double> firstMs;
    for (const SeriesInfo& s : store.seriesInfo(run.id)) {
        const auto slash = s.name.find('/');
        if (slash == std::string::npos || !labels.count(s.name.substr(0, slash))) continue;
        const auto samples = store.samples(run.id, s.name);
        if (samples.empty()) continue;
        double& t = firstMs.try_emplace(s.name.substr(0, slash), std::numeric_limits<double>::infinity()).first->second;
        t = std::min(t, samples.front().tMs);
    }
    std::vector<std::string> ordered(labels.begin(), labels.end());
    std::stable_sort(ordered.begin(), ordered.end(), [&](const std::string& a, const std::string& b) {
        const double ta = firstMs.count(a) ? firstMs.at(a) : std::numeric_limits<double>::infinity();
        const double tb = firstMs.count(b) ? firstMs.at(b) : std::numeric_limits<double>::infinity();
        return ta < tb;
    });
    for (const std::string& label : ordered)
        stages.push_back({QString::fromStdString(label), valueOf(run, label + ".accuracy"),
                          valueOf(run, label + ".latency_p50_ms"), valueOf(run, label + ".model_bytes")});
    const Stage last{QStringLiteral("final"), valueOf(run, "accuracy"), valueOf(run, "latency_p50_ms"),
                     valueOf(run, "model_bytes")};
    if (last.accuracy || last.latencyMs || last.bytes) stages.push_back(last);
    return stages;
}

LineagePanel::LineagePanel(QWidget* parent) : QWidget(parent), m_charts(new ChartStack) {
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(stackedScrollArea(this, {m_charts}));
}

void LineagePanel::clear() {
    m_charts->clear();
    m_stages.clear();
}

bool LineagePanel::isEmpty() const { return m_charts->isEmpty(); }

ChartView* LineagePanel::chart(const QString& id) const { return m_charts->chart(id); }

void LineagePanel::setRun(const RunStore& store, const RunRecord& run) {
    clear();
    m_stages = stagesOf(store, run);
    if (m_stages.size() < 2) return;
    const auto batch = valueOf(run, "batch_size");
    struct Metric {
        QString id, title, axis;
        std::optional<double> Stage::*member;
    };
    const std::vector<Metric> metrics{
        {QStringLiteral("lineage_accuracy"), tr("Accuracy after each step"), tr("accuracy (fraction)"), &Stage::accuracy},
        {QStringLiteral("lineage_latency"),
         batch ? tr("Median latency after each step (batch %1)").arg(*batch) : tr("Median latency after each step"),
         tr("latency p50 (ms)"), &Stage::latencyMs},
        {QStringLiteral("lineage_bytes"), tr("Model size after each step"), tr("model bytes"), &Stage::bytes}};
    for (std::size_t m = 0; m < metrics.size(); ++m) {
        const Metric& metric = metrics[m];
        if (std::count_if(m_stages.begin(), m_stages.end(), [&](const Stage& s) { return (s.*metric.member).has_value(); }) < 2)
            continue;
        auto* view = new ChartView(metric.title, this);
        view->setObjectName(metric.id);
        view->setMinimumHeight(kLineageChartHeight);
        view->setLegendShown(false);
        QCustomPlot* plot = view->plot();
        auto ticker = QSharedPointer<QCPAxisTickerText>::create();
        auto* bars = new QCPBars(plot->xAxis, plot->yAxis);
        const QColor color = paletteColor(static_cast<int>(m));
        bars->setPen(QPen(color.darker(130)));
        bars->setBrush(color);
        bars->setWidth(0.6);
        bars->setName(metric.title);
        double lo = 0, hi = 0;
        for (std::size_t i = 0; i < m_stages.size(); ++i) {
            ticker->addTick(static_cast<double>(i + 1), m_stages[i].name);
            if (const auto v = m_stages[i].*metric.member) {
                bars->addData(static_cast<double>(i + 1), *v);
                hi = std::max(hi, *v);
                lo = lo == 0 ? *v : std::min(lo, *v);
            }
        }
        plot->xAxis->setTicker(ticker);
        plot->xAxis->setLabel(tr("measured after"));
        plot->yAxis->setLabel(metric.axis);
        view->resetView();
        // Accuracies differ in their third digit: the axis starts a little below the lowest (the bars run
        // off its bottom); sizes and latencies start at zero. Each bar carries its value.
        const bool fromZero = metric.member != &Stage::accuracy;
        const double bottom = fromZero ? 0.0 : lo - 0.25 * (hi - lo + 1e-3);
        plot->yAxis->setRange(bottom, hi + 0.15 * (hi - bottom));
        for (auto it = bars->data()->constBegin(); it != bars->data()->constEnd(); ++it) {
            auto* label = new QCPItemText(plot);
            label->setPositionAlignment(Qt::AlignHCenter | Qt::AlignBottom);
            label->position->setCoords(it->key, it->value);
            label->setText(QString::number(it->value, 'g', metric.member == &Stage::bytes ? 7 : 4));
            label->setColor(palette().color(QPalette::Active, QPalette::Text));
            label->setPadding(QMargins(0, 0, 0, 2));
        }
        plot->xAxis->setRange(0.4, static_cast<double>(m_stages.size()) + 0.6);
        view->setFollowsData(false);
        m_charts->add(metric.id, view);
    }
}

} // namespace lathe::ui

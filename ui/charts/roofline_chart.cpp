// RooflineChart: one roof graph per device (memory, in-cache dashed), one line + markers per run through its
// batch sizes, a legend of families and roofs, and a note with the peaks and what a point above a roof means.
#include "ui/charts/roofline_chart.h"

#include "ui/charts/chart_style.h"
#include "ui/charts/chart_view.h"

#include <qcustomplot.h>

#include <QLabel>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>
#include <set>

namespace lathe::ui {

namespace {
constexpr int kRooflineChartHeight = 340;
constexpr const char* kIntensity = "arithmetic_intensity@b";
constexpr const char* kAchieved = "achieved_tflops@b";

struct Roofs {
    double gflops = 0, gbps = 0, cacheGbps = 0;
};
} // namespace

RooflineChart::RunPoints RooflineChart::fromSummary(std::int64_t runId, const QString& label, const QString& family,
                                                     const QString& device,
                                                     const std::map<std::string, double>& summary) {
    RunPoints r{runId, label, family, device, {}};
    const std::string prefix = kIntensity;
    for (auto it = summary.lower_bound(prefix); it != summary.end() && it->first.rfind(prefix, 0) == 0; ++it) {
        const std::string batchText = it->first.substr(prefix.size());
        std::int64_t batch = 0;
        try {
            std::size_t used = 0;
            batch = std::stoll(batchText, &used);
            if (used != batchText.size()) continue;
        } catch (const std::exception&) {
            continue;
        }
        auto achieved = summary.find(kAchieved + batchText);
        if (achieved == summary.end()) continue;
        const double gflops = achieved->second * 1e3;
        if (!(it->second > 0) || !(gflops > 0) || !std::isfinite(it->second) || !std::isfinite(gflops)) continue;
        r.points.push_back({batch, it->second, gflops});
    }
    std::sort(r.points.begin(), r.points.end(), [](const auto& a, const auto& b) { return a.batch < b.batch; });
    return r;
}

RooflineChart::RooflineChart(QWidget* parent)
    : QWidget(parent), m_view(new ChartView(tr("Roofline: achieved GFLOP/s against arithmetic intensity"), this)),
      m_note(new QLabel(this)) {
    m_view->setObjectName(QStringLiteral("roofline"));
    m_view->setMinimumHeight(kRooflineChartHeight);
    m_note->setWordWrap(true);
    m_note->setTextFormat(Qt::PlainText);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(m_view);
    layout->addWidget(m_note);
    QCustomPlot* plot = m_view->plot();
    plot->xAxis->setLabel(tr("arithmetic intensity (FLOP per byte of weights, input and logits)"));
    plot->yAxis->setLabel(tr("achieved GFLOP/s (dense-equivalent)"));
    connect(plot, &QCustomPlot::plottableClick, this, [this](QCPAbstractPlottable* p, int, QMouseEvent*) {
        const qint64 id = p->property("runId").toLongLong();
        if (id > 0) emit runActivated(id);
    });
}

void RooflineChart::setData(const std::vector<RunPoints>& runs, const std::vector<DevicePeak>& peaks) {
    QCustomPlot* plot = m_view->plot();
    plot->clearGraphs();
    m_pointCount = 0;
    m_roofDevices.clear();
    m_missing.clear();

    std::map<QString, Roofs> roofs;
    for (const DevicePeak& p : peaks) {
        Roofs& r = roofs[QString::fromStdString(p.device)];
        if (p.key == "gemm_f32_gflops") r.gflops = p.value;
        if (p.key == "copy_gbps") r.gbps = p.value;
        if (p.key == "cache_copy_gbps") r.cacheGbps = p.value;
    }

    double xLo = 0, xHi = 0, yLo = 0, yHi = 0;
    auto widen = [](double& lo, double& hi, double v) {
        lo = lo == 0 ? v : std::min(lo, v);
        hi = std::max(hi, v);
    };
    QStringList families, devices;
    for (const RunPoints& r : runs) {
        if (r.points.empty()) continue;
        if (!families.contains(r.family)) families << r.family;
        if (!devices.contains(r.device)) devices << r.device;
        for (const auto& at : r.points) {
            widen(xLo, xHi, at.intensity);
            widen(yLo, yHi, at.gflops);
        }
    }
    for (const QString& d : devices) {
        auto it = roofs.find(d);
        if (it == roofs.end() || !(it->second.gflops > 0) || !(it->second.gbps > 0)) {
            m_missing << d;
            continue;
        }
        m_roofDevices << d;
        widen(xLo, xHi, it->second.gflops / it->second.gbps); // the ridge
        if (it->second.cacheGbps > 0) widen(xLo, xHi, it->second.gflops / it->second.cacheGbps);
        widen(yLo, yHi, it->second.gflops);
    }

    std::vector<LegendEntry> legend;
    const QColor text = palette().color(QPalette::Active, QPalette::Text);
    const double x0 = xLo / 3, x1 = xHi * 3;
    QStringList noteParts;
    for (int i = 0; i < m_roofDevices.size(); ++i) {
        const Roofs& r = roofs[m_roofDevices[i]];
        const Qt::PenStyle styles[] = {Qt::SolidLine, Qt::DashDotLine, Qt::DotLine};
        QPen pen(text, 2.0, i == 0 ? Qt::SolidLine : styles[i % 3]);
        QCPGraph* memory = plot->addGraph();
        memory->setName(tr("roof of %1").arg(m_roofDevices[i]));
        memory->setPen(pen);
        memory->setSelectable(QCP::stNone);
        const double ridge = r.gflops / r.gbps;
        memory->addData(x0, x0 * r.gbps);
        if (ridge > x0 && ridge < x1) memory->addData(ridge, r.gflops);
        memory->addData(x1, std::min(r.gflops, x1 * r.gbps));
        LegendEntry e;
        e.pen = pen;
        e.text = memory->name();
        legend.push_back(e);
        QString part = tr("%1: f32 GEMM %2 GFLOP/s, memory %3 GB/s (ridge at %4 FLOP/B)")
                           .arg(m_roofDevices[i], QString::number(r.gflops, 'f', 1), QString::number(r.gbps, 'f', 1),
                                QString::number(ridge, 'g', 3));
        if (r.cacheGbps > r.gbps) {
            QPen cachePen(text, 1.0, Qt::DashLine);
            QCPGraph* cache = plot->addGraph();
            cache->setName(tr("in-cache roof of %1").arg(m_roofDevices[i]));
            cache->setPen(cachePen);
            cache->setSelectable(QCP::stNone);
            const double cacheRidge = r.gflops / r.cacheGbps;
            cache->addData(x0, x0 * r.cacheGbps);
            if (cacheRidge > x0) cache->addData(std::min(cacheRidge, x1), std::min(r.gflops, x1 * r.cacheGbps));
            widen(yLo, yHi, x0 * r.cacheGbps);
            LegendEntry c;
            c.pen = cachePen;
            c.text = cache->name();
            legend.push_back(c);
            part += tr(", in cache %1 GB/s").arg(QString::number(r.cacheGbps, 'f', 1));
        }
        widen(yLo, yHi, x0 * r.gbps);
        noteParts << part;
    }

    const QColor base = palette().color(QPalette::Base);
    for (const RunPoints& r : runs) {
        if (r.points.empty()) continue;
        const QColor color = paletteColor(static_cast<int>(families.indexOf(r.family)));
        QCPGraph* g = plot->addGraph();
        g->setName(r.label);
        g->setProperty("runId", QVariant::fromValue<qint64>(r.runId));
        g->setPen(QPen(color, 1.2));
        g->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, QPen(color, 1.5), QBrush(base), 7));
        for (const auto& at : r.points) g->addData(at.intensity, at.gflops);
        m_pointCount += static_cast<int>(r.points.size());
    }
    for (int i = 0; i < families.size(); ++i) {
        LegendEntry e;
        const QColor color = paletteColor(i);
        e.pen = QPen(color, 1.2);
        e.scatter = QCPScatterStyle(QCPScatterStyle::ssCircle, QPen(color, 1.5), QBrush(base), 7);
        e.text = families[i];
        legend.insert(legend.begin() + i, e);
    }
    m_view->setLegendEntries(legend);
    m_view->setLogScale(plot->xAxis, true);
    m_view->setLogScale(plot->yAxis, true);
    if (m_pointCount > 0) {
        plot->xAxis->setRange(x0, x1);
        plot->yAxis->setRange(yLo / 2, yHi * 2);
    }
    m_view->setFollowsData(false);
    plot->replot();

    QString note;
    if (m_pointCount > 0) {
        note = tr("One line per run through its timed batch sizes (batch 1 leftmost: the weights are read once per "
                  "batch, so intensity grows with it). Traffic counts every weight once as stored, the input and "
                  "the logits, so a point above the memory roof is a model whose weights stayed in cache. Click a "
                  "line to open its run.");
        if (!noteParts.isEmpty()) note += QLatin1Char(' ') + tr("Roofs: %1.").arg(noteParts.join(QStringLiteral("; ")));
        if (!m_missing.isEmpty())
            note += QLatin1Char(' ') + tr("No roofs stored for %1: run `lathe-cli bench peaks` on that machine to "
                                          "draw them.")
                                           .arg(m_missing.join(QStringLiteral(", ")));
    }
    m_note->setText(note);
}

} // namespace lathe::ui

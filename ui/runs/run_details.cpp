// RunDetails: stored samples -> LiveDashboard, per-layer stats -> LayerChartsPanel, summaries ->
// RunsChartsPanel and a metrics table (one column per run).
#include "ui/runs/run_details.h"

#include "engine/store/run_store.h"
#include "ui/charts/layer_charts_panel.h"
#include "ui/charts/lineage_panel.h"
#include "ui/charts/live_dashboard.h"
#include "ui/charts/runs_charts_panel.h"
#include "ui/runs/compare_view.h"

#include <QFontDatabase>
#include <QHeaderView>
#include <QLabel>
#include <QPlainTextEdit>
#include <QSplitter>
#include <QTabWidget>
#include <QTableWidget>
#include <QVBoxLayout>

#include <nlohmann/json.hpp>

#include <cmath>
#include <set>

namespace lathe::ui {

RunDetails::RunDetails(QWidget* parent)
    : QWidget(parent), m_title(new QLabel(this)), m_dashboard(new LiveDashboard(this)),
      m_layers(new LayerChartsPanel(this)), m_across(new RunsChartsPanel(this)), m_compare(new CompareView(this)),
      m_lineage(new LineagePanel(this)), m_tabs(new QTabWidget(this)),
      m_summary(new QTableWidget(this)), m_config(new QPlainTextEdit(this)) {
    m_title->setWordWrap(true);
    m_title->setTextFormat(Qt::PlainText); // run names are text, even "<b>"
    m_summary->setObjectName(QStringLiteral("summaryTable"));
    m_summary->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_summary->verticalHeader()->setDefaultSectionSize(m_summary->fontMetrics().height() + 6);
    m_config->setReadOnly(true);
    m_config->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
    auto* side = new QTabWidget(this);
    side->addTab(m_summary, tr("Summary"));
    side->addTab(m_config, tr("Configuration"));
    auto* splitter = new QSplitter(Qt::Horizontal, this);
    m_tabs->setObjectName(QStringLiteral("chartTabs"));
    connect(m_across, &RunsChartsPanel::runActivated, this, [this](std::int64_t id) { emit runActivated(id); });
    m_tabs->addTab(m_dashboard, tr("Series"));
    m_tabs->addTab(m_layers, tr("Layers"));
    m_tabs->addTab(m_lineage, tr("Steps"));
    m_tabs->addTab(m_across, tr("Across runs"));
    m_tabs->addTab(m_compare, tr("Compare"));
    splitter->addWidget(m_tabs);
    splitter->addWidget(side);
    splitter->setStretchFactor(0, 3);
    splitter->setStretchFactor(1, 1);
    splitter->setSizes({3000, 1000}); // the charts three quarters, the summary one quarter
    m_summary->horizontalHeader()->setStretchLastSection(true);
    auto* layout = new QVBoxLayout(this);
    layout->addWidget(m_title);
    layout->addWidget(splitter, 1);
    clear();
}

void RunDetails::clear() {
    m_dashboard->clear();
    m_layers->clear();
    m_across->clear();
    m_compare->clear();
    m_lineage->clear();
    m_tabs->setCurrentWidget(m_dashboard);
    m_tabs->setTabEnabled(m_tabs->indexOf(m_lineage), false);
    m_tabs->setTabEnabled(m_tabs->indexOf(m_layers), false);
    m_tabs->setTabEnabled(m_tabs->indexOf(m_compare), false);
    m_runIds.clear();
    m_summary->clear();
    m_summary->setRowCount(0);
    m_summary->setColumnCount(0);
    m_config->clear();
    m_title->setText(tr("Open a run from the Runs tab (double-click) to see its charts and summary."));
}

int RunDetails::showRuns(const RunStore& store, const QList<qint64>& runIds) {
    m_dashboard->clear();
    m_runIds.clear();
    std::vector<RunRecord> records;
    for (qint64 id : runIds) {
        if (auto r = store.run(id)) {
            records.push_back(std::move(*r));
            m_runIds << id;
        }
    }
    std::set<std::string> keys, noteKeys;
    QStringList titles;
    std::vector<RunLayerStats> layerStats;
    std::vector<RunSummary> summaries;
    for (const RunRecord& r : records) {
        const QString label = QStringLiteral("#%1 %2").arg(r.id).arg(QString::fromStdString(r.name));
        m_dashboard->setRunLabel(r.id, label);
        m_dashboard->appendSamples(store.samples(r.id));
        layerStats.push_back({r.id, label, store.layerStats(r.id)});
        const auto env = nlohmann::json::parse(r.environmentJson, nullptr, false);
        QString device;
        if (env.is_object() && env.contains("device") && env["device"].is_object() && env["device"].contains("name") &&
            env["device"]["name"].is_string())
            device = QString::fromStdString(env["device"]["name"].get<std::string>());
        summaries.push_back({r.id, label, r.summary, r.strategyChain, device});
        for (const auto& [k, v] : r.summary) keys.insert(k);
        for (const auto& [k, v] : r.notes) noteKeys.insert(k);
        titles << QStringLiteral("%1 (%2)").arg(label, QString::fromStdString(r.status));
    }
    m_dashboard->replotDirty();
    m_layers->setRuns(layerStats);
    m_across->setDevicePeaks(store.devicePeaks());
    m_across->setRuns(summaries);
    m_tabs->setTabEnabled(m_tabs->indexOf(m_layers), !m_layers->isEmpty());
    const bool several = records.size() > 1;
    if (records.size() == 1) m_lineage->setRun(store, records.front());
    else m_lineage->clear();
    m_tabs->setTabEnabled(m_tabs->indexOf(m_lineage), !m_lineage->isEmpty());
    if (several) m_compare->setRuns(store, records);
    else m_compare->clear();
    m_tabs->setTabEnabled(m_tabs->indexOf(m_compare), several);
    if (several) m_tabs->setCurrentWidget(m_compare);
    else if (!m_tabs->isTabEnabled(m_tabs->currentIndex()) || m_tabs->currentWidget() == m_compare)
        m_tabs->setCurrentWidget(m_dashboard);

    m_summary->clear();
    m_summary->setColumnCount(static_cast<int>(records.size()));
    m_summary->setRowCount(static_cast<int>(keys.size() + noteKeys.size()) + 4);
    QStringList columnHeaders, rowHeaders{tr("status"), tr("device"), tr("steps"), tr("error")};
    for (const RunRecord& r : records) columnHeaders << QStringLiteral("#%1").arg(r.id);
    // Notes say how figures were obtained (e.g. "simulated"): right under the error, before the numbers.
    for (const auto& k : noteKeys) rowHeaders << tr("note: %1").arg(QString::fromStdString(k));
    for (const auto& k : keys) rowHeaders << QString::fromStdString(k);
    m_summary->setHorizontalHeaderLabels(columnHeaders);
    m_summary->setVerticalHeaderLabels(rowHeaders);
    for (int c = 0; c < static_cast<int>(records.size()); ++c) {
        const RunRecord& r = records[static_cast<std::size_t>(c)];
        m_summary->setItem(0, c, new QTableWidgetItem(QString::fromStdString(r.status)));
        m_summary->setItem(1, c, new QTableWidgetItem(QString::fromStdString(r.device)));
        m_summary->setItem(2, c, new QTableWidgetItem(QString::fromStdString(r.strategyChain)));
        auto* error = new QTableWidgetItem(QString::fromStdString(r.error));
        error->setToolTip(error->text());
        m_summary->setItem(3, c, error);
        int row = 4;
        for (const auto& k : noteKeys) {
            auto it = r.notes.find(k);
            if (it != r.notes.end()) {
                auto* note = new QTableWidgetItem(QString::fromStdString(it->second));
                note->setToolTip(note->text());
                m_summary->setItem(row, c, note);
            }
            ++row;
        }
        for (const auto& k : keys) {
            auto it = r.summary.find(k);
            if (it != r.summary.end() && !std::isnan(it->second)) {
                auto* item = new QTableWidgetItem(QString::number(it->second, 'g', 6));
                item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
                m_summary->setItem(row, c, item);
            }
            ++row;
        }
    }
    m_summary->resizeColumnsToContents();
    if (records.size() == 1) {
        const auto config = nlohmann::json::parse(records.front().configJson, nullptr, false);
        m_config->setPlainText(config.is_discarded() ? QString::fromStdString(records.front().configJson)
                                                     : QString::fromStdString(config.dump(2)));
    } else {
        m_config->setPlainText(tr("Select a single run to see its configuration."));
    }
    m_title->setText(records.empty() ? tr("Run not found.") : titles.join(QStringLiteral("   vs   ")));
    return static_cast<int>(records.size());
}

} // namespace lathe::ui

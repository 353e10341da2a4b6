// RunsFilterProxy: record-level filters and typed comparisons.
#include "ui/runs/runs_filter_proxy.h"

#include "ui/runs/runs_table_model.h"

#include <cmath>

namespace lathe::ui {

RunsFilterProxy::RunsFilterProxy(QObject* parent) : QSortFilterProxyModel(parent) {
    setSortRole(RunsTableModel::SortRole);
    setDynamicSortFilter(true);
}

void RunsFilterProxy::setRunsModel(RunsTableModel* model) {
    m_model = model;
    setSourceModel(model);
}

void RunsFilterProxy::setText(const QString& text) {
    const QStringList words = text.toLower().split(QLatin1Char(' '), Qt::SkipEmptyParts);
    if (words != m_words) {
        m_words = words;
        invalidateRowsFilter();
    }
}

void RunsFilterProxy::setStatuses(const QSet<QString>& statuses) {
    m_statuses = statuses;
    invalidateRowsFilter();
}

void RunsFilterProxy::setTag(const QString& tag) {
    m_tag = tag;
    invalidateRowsFilter();
}

void RunsFilterProxy::setModelName(const QString& model) {
    m_modelName = model;
    invalidateRowsFilter();
}

void RunsFilterProxy::setDevice(const QString& device) {
    m_device = device;
    invalidateRowsFilter();
}

bool RunsFilterProxy::filterAcceptsRow(int sourceRow, const QModelIndex&) const {
    if (!m_model) {
        return true;
    }
    const RunRecord& r = m_model->record(sourceRow);
    if (!m_statuses.isEmpty() && !m_statuses.contains(QString::fromStdString(r.status))) {
        return false;
    }
    if (!m_modelName.isEmpty() && QString::fromStdString(r.model) != m_modelName) {
        return false;
    }
    if (!m_device.isEmpty() && QString::fromStdString(r.device) != m_device) {
        return false;
    }
    if (!m_tag.isEmpty()) {
        const std::string tag = m_tag.toStdString();
        if (std::find(r.tags.begin(), r.tags.end(), tag) == r.tags.end()) {
            return false;
        }
    }
    const QString& haystack = m_model->searchText(sourceRow);
    for (const QString& word : m_words) {
        if (!haystack.contains(word)) {
            return false;
        }
    }
    return true;
}

bool RunsFilterProxy::lessThan(const QModelIndex& left, const QModelIndex& right) const {
    if (!m_model) {
        return QSortFilterProxyModel::lessThan(left, right);
    }
    const RunRecord& a = m_model->record(left.row());
    const RunRecord& b = m_model->record(right.row());
    const RunsTableModel::RowCache& ca = m_model->cache(left.row());
    const RunsTableModel::RowCache& cb = m_model->cache(right.row());
    auto byNumber = [&](RunsTableModel::Metric m) {
        const double x = ca.metrics[m], y = cb.metrics[m];
        if (std::isnan(x) != std::isnan(y)) {
            return std::isnan(x); // runs without the metric sort first ascending (last descending)
        }
        return !std::isnan(x) && x < y;
    };
    auto byText = [](const QString& x, const QString& y) { return QString::localeAwareCompare(x, y) < 0; };
    switch (left.column()) {
    case RunsTableModel::Status: return a.status < b.status;
    case RunsTableModel::Id: return a.id < b.id;
    case RunsTableModel::Name: return byText(ca.name, cb.name);
    case RunsTableModel::Experiment: return byText(ca.experiment, cb.experiment);
    case RunsTableModel::Chain: return a.strategyChain < b.strategyChain;
    case RunsTableModel::Model: return a.model < b.model;
    case RunsTableModel::Dataset: return a.dataset < b.dataset;
    case RunsTableModel::Device: return a.device < b.device;
    case RunsTableModel::Accuracy: return byNumber(RunsTableModel::AccuracyMetric);
    case RunsTableModel::LatencyP50: return byNumber(RunsTableModel::LatencyP50Metric);
    case RunsTableModel::LatencyP99: return byNumber(RunsTableModel::LatencyP99Metric);
    case RunsTableModel::Throughput: return byNumber(RunsTableModel::ThroughputMetric);
    case RunsTableModel::ModelBytes: return byNumber(RunsTableModel::ModelBytesMetric);
    case RunsTableModel::Started: return a.startedAt < b.startedAt;
    case RunsTableModel::Duration: {
        const double da = a.finishedAt > 0 && a.startedAt > 0 ? a.finishedAt - a.startedAt : -1;
        const double db = b.finishedAt > 0 && b.startedAt > 0 ? b.finishedAt - b.startedAt : -1;
        return da < db;
    }
    default: return QSortFilterProxyModel::lessThan(left, right);
    }
}

} // namespace lathe::ui

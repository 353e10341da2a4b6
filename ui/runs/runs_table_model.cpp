// RunsTableModel: RunStore::listRuns as a Qt model, refreshed incrementally.
#include "ui/runs/runs_table_model.h"

#include "engine/core/errors.h"

#include <QApplication>
#include <QDateTime>
#include <QElapsedTimer>
#include <QLocale>
#include <QStyle>

#include <cmath>
#include <unordered_map>

namespace lathe::ui {

namespace {
QString qs(const std::string& s) { return QString::fromStdString(s); }

QString durationText(double seconds) {
    if (seconds < 0) {
        return {};
    }
    if (seconds < 60) {
        return QStringLiteral("%1 s").arg(seconds, 0, 'f', seconds < 10 ? 1 : 0);
    }
    const qint64 s = static_cast<qint64>(seconds);
    if (s < 3600) {
        return QStringLiteral("%1 min %2 s").arg(s / 60).arg(s % 60);
    }
    return QStringLiteral("%1 h %2 min").arg(s / 3600).arg((s % 3600) / 60);
}

double durationOf(const RunRecord& r) {
    if (r.startedAt <= 0) {
        return -1;
    }
    const double end = r.finishedAt > 0 ? r.finishedAt : static_cast<double>(QDateTime::currentSecsSinceEpoch());
    return end - r.startedAt;
}

bool sameRow(const RunRecord& a, const RunRecord& b) {
    return a.id == b.id && a.status == b.status && a.finishedAt == b.finishedAt && a.startedAt == b.startedAt &&
           a.name == b.name && a.tags == b.tags && a.summary.size() == b.summary.size() && a.error == b.error;
}
} // namespace

RunsTableModel::RunsTableModel(QObject* parent) : QAbstractTableModel(parent) {
    m_poll.setInterval(1000);
    connect(&m_poll, &QTimer::timeout, this, [this] {
        if (!m_store) {
            return;
        }
        try {
            if (m_store->changeCounter() != m_changeCounter) {
                refresh();
            }
        } catch (const std::exception& e) {
            emit storeError(QString::fromUtf8(e.what()));
        }
    });
}

RunsTableModel::~RunsTableModel() = default;

bool RunsTableModel::open(const QString& path) {
    close();
    try {
        m_store = std::make_unique<RunStore>(path.toStdString(), RunStore::Mode::ReadOnly);
    } catch (const std::exception& e) {
        m_lastError = QString::fromUtf8(e.what());
        return false;
    }
    m_lastError.clear();
    refresh();
    return true;
}

void RunsTableModel::close() {
    if (m_store) {
        beginResetModel();
        m_runs.clear();
        m_cache.clear();
        m_store.reset();
        m_changeCounter = -1;
        endResetModel();
    }
}

QString RunsTableModel::path() const { return m_store ? qs(m_store->path()) : QString(); }

void RunsTableModel::setPollInterval(int ms) {
    if (ms <= 0) {
        m_poll.stop();
    } else {
        m_poll.start(ms);
    }
}

bool RunsTableModel::refresh() {
    if (!m_store) {
        return false;
    }
    QElapsedTimer clock;
    clock.start();
    std::vector<RunRecord> runs;
    try {
        // Read the counter first: a commit that lands during listRuns triggers one more refresh.
        m_changeCounter = m_store->changeCounter();
        RunFilter filter;
        filter.withSummary = true;
        runs = m_store->listRuns(filter);
    } catch (const std::exception& e) {
        m_lastError = QString::fromUtf8(e.what());
        emit storeError(m_lastError);
        return false;
    }
    const bool changed = runs.size() != m_runs.size() ||
                         !std::equal(runs.begin(), runs.end(), m_runs.begin(), m_runs.end(), sameRow);
    if (changed) {
        setRows(std::move(runs));
    }
    m_lastRefreshMs = clock.elapsed();
    emit refreshed();
    return changed;
}

void RunsTableModel::setRows(std::vector<RunRecord> runs) {
    // Newest first: new runs are a prefix. Anything else (deletes, reorders) is a reset.
    const std::size_t oldSize = m_runs.size();
    std::size_t added = 0;
    if (oldSize > 0 && runs.size() >= oldSize) {
        added = runs.size() - oldSize;
        for (std::size_t i = 0; i < oldSize; ++i) {
            if (runs[added + i].id != m_runs[i].id) {
                added = SIZE_MAX;
                break;
            }
        }
    } else {
        added = SIZE_MAX;
    }
    if (added == SIZE_MAX) {
        beginResetModel();
        m_runs = std::move(runs);
        m_cache.clear();
        m_cache.reserve(m_runs.size());
        for (const RunRecord& r : m_runs) {
            m_cache.push_back(makeCache(r));
        }
        endResetModel();
        return;
    }
    if (added > 0) {
        beginInsertRows({}, 0, static_cast<int>(added) - 1);
        m_runs.insert(m_runs.begin(), runs.begin(), runs.begin() + static_cast<std::ptrdiff_t>(added));
        std::vector<RowCache> cache;
        for (std::size_t i = 0; i < added; ++i) {
            cache.push_back(makeCache(runs[i]));
        }
        m_cache.insert(m_cache.begin(), cache.begin(), cache.end());
        endInsertRows();
    }
    for (std::size_t i = added; i < runs.size(); ++i) {
        if (!sameRow(runs[i], m_runs[i])) {
            m_runs[i] = std::move(runs[i]);
            m_cache[i] = makeCache(m_runs[i]);
            emit dataChanged(index(static_cast<int>(i), 0), index(static_cast<int>(i), ColumnCount - 1));
        }
    }
}

const char* RunsTableModel::metricKey(Metric m) {
    static const char* keys[] = {"accuracy", "latency_p50_ms", "latency_p99_ms", "throughput_per_s", "model_bytes"};
    return keys[m];
}

RunsTableModel::RowCache RunsTableModel::makeCache(const RunRecord& r) const {
    RowCache c;
    c.name = qs(r.name);
    c.experiment = qs(r.experimentName);
    for (int m = 0; m < MetricCount; ++m) {
        c.metrics[m] = metric(r, metricKey(static_cast<Metric>(m)));
    }
    QString text = qs(r.name + ' ' + r.experimentName + ' ' + r.strategyChain + ' ' + r.model + ' ' + r.dataset + ' ' +
                      r.device + ' ' + r.status + " #" + std::to_string(r.id));
    for (const auto& tag : r.tags) {
        text += QLatin1Char(' ') + qs(tag);
    }
    c.search = text.toLower();
    return c;
}

int RunsTableModel::rowOfRun(std::int64_t runId) const {
    for (std::size_t i = 0; i < m_runs.size(); ++i) {
        if (m_runs[i].id == runId) {
            return static_cast<int>(i);
        }
    }
    return -1;
}

double RunsTableModel::metric(const RunRecord& run, const std::string& key) {
    auto it = run.summary.find(key);
    if (it != run.summary.end()) {
        return it->second;
    }
    // Measure steps prefix their keys with a label ("int8.latency_p50_ms"); the last one is the result.
    double value = std::nan("");
    const std::string suffix = "." + key;
    for (const auto& [k, v] : run.summary) {
        if (k.size() > suffix.size() && k.compare(k.size() - suffix.size(), suffix.size(), suffix) == 0) {
            value = v;
        }
    }
    return value;
}

QIcon RunsTableModel::statusIcon(const QString& status) {
    QStyle* style = QApplication::style();
    if (status == QLatin1String(run_status::kDone)) return style->standardIcon(QStyle::SP_DialogApplyButton);
    if (status == QLatin1String(run_status::kFailed)) return style->standardIcon(QStyle::SP_MessageBoxCritical);
    if (status == QLatin1String(run_status::kCancelled)) return style->standardIcon(QStyle::SP_BrowserStop);
    if (status == QLatin1String(run_status::kRunning)) return style->standardIcon(QStyle::SP_MediaPlay);
    if (status == QLatin1String(run_status::kInterrupted)) return style->standardIcon(QStyle::SP_MessageBoxWarning);
    return style->standardIcon(QStyle::SP_FileDialogContentsView); // queued
}

int RunsTableModel::rowCount(const QModelIndex& parent) const {
    return parent.isValid() ? 0 : static_cast<int>(m_runs.size());
}

int RunsTableModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : ColumnCount; }

QVariant RunsTableModel::display(const RunRecord& r, int column) const {
    const RowCache& c = m_cache[static_cast<std::size_t>(&r - m_runs.data())];
    auto number = [](double v, int decimals) { return std::isnan(v) ? QVariant() : QVariant(QString::number(v, 'f', decimals)); };
    switch (column) {
    case Status: return qs(r.status);
    case Id: return QVariant::fromValue<qlonglong>(r.id);
    case Name: return qs(r.name);
    case Experiment: return qs(r.experimentName);
    case Chain: return qs(r.strategyChain);
    case Model: return qs(r.model);
    case Dataset: return qs(r.dataset);
    case Device: return qs(r.device);
    case Accuracy: return number(c.metrics[AccuracyMetric], 4);
    case LatencyP50: return number(c.metrics[LatencyP50Metric], 3);
    case LatencyP99: return number(c.metrics[LatencyP99Metric], 3);
    case Throughput: return number(c.metrics[ThroughputMetric], 0);
    case ModelBytes: {
        const double b = c.metrics[ModelBytesMetric];
        return std::isnan(b) ? QVariant() : QVariant(QLocale().formattedDataSize(static_cast<qint64>(b)));
    }
    case Started:
        return r.startedAt > 0 ? QVariant(QDateTime::fromSecsSinceEpoch(static_cast<qint64>(r.startedAt))
                                              .toString(QStringLiteral("yyyy-MM-dd HH:mm:ss")))
                               : QVariant();
    case Duration: return durationText(durationOf(r));
    case Tags: {
        QStringList tags;
        for (const auto& t : r.tags) tags << qs(t);
        return tags.join(QStringLiteral(", "));
    }
    default: return {};
    }
}

QVariant RunsTableModel::sortValue(const RunRecord& r, int column) const {
    const RowCache& c = m_cache[static_cast<std::size_t>(&r - m_runs.data())];
    switch (column) {
    case Id: return QVariant::fromValue<qlonglong>(r.id);
    case Accuracy: return c.metrics[AccuracyMetric];
    case LatencyP50: return c.metrics[LatencyP50Metric];
    case LatencyP99: return c.metrics[LatencyP99Metric];
    case Throughput: return c.metrics[ThroughputMetric];
    case ModelBytes: return c.metrics[ModelBytesMetric];
    case Started: return r.startedAt;
    case Duration: return durationOf(r);
    default: return display(r, column);
    }
}

QVariant RunsTableModel::data(const QModelIndex& index, int role) const {
    if (!index.isValid() || index.row() >= rowCount() || index.column() >= ColumnCount) {
        return {};
    }
    const RunRecord& r = m_runs[static_cast<std::size_t>(index.row())];
    switch (role) {
    case Qt::DisplayRole: return display(r, index.column());
    case SortRole: return sortValue(r, index.column());
    case RunIdRole: return QVariant::fromValue<qlonglong>(r.id);
    case StatusRole: return qs(r.status);
    case Qt::DecorationRole:
        return index.column() == Status ? QVariant(statusIcon(qs(r.status))) : QVariant();
    case Qt::TextAlignmentRole:
        switch (index.column()) {
        case Id: case Accuracy: case LatencyP50: case LatencyP99: case Throughput: case ModelBytes: case Duration:
            return QVariant(Qt::AlignRight | Qt::AlignVCenter);
        default: return {};
        }
    case Qt::ToolTipRole:
        if (!r.error.empty()) return qs(r.error);
        if (index.column() == Chain || index.column() == Name) return display(r, index.column());
        return {};
    default: return {};
    }
}

QVariant RunsTableModel::headerData(int section, Qt::Orientation orientation, int role) const {
    if (orientation != Qt::Horizontal || role != Qt::DisplayRole) {
        return QAbstractTableModel::headerData(section, orientation, role);
    }
    static const char* names[] = {QT_TR_NOOP("Status"),       QT_TR_NOOP("ID"),         QT_TR_NOOP("Name"),
                                  QT_TR_NOOP("Experiment"),   QT_TR_NOOP("Steps"),      QT_TR_NOOP("Model"),
                                  QT_TR_NOOP("Dataset"),      QT_TR_NOOP("Device"),     QT_TR_NOOP("Accuracy"),
                                  QT_TR_NOOP("Latency p50 (ms)"), QT_TR_NOOP("Latency p99 (ms)"),
                                  QT_TR_NOOP("Throughput (/s)"), QT_TR_NOOP("Model size"), QT_TR_NOOP("Started"),
                                  QT_TR_NOOP("Duration"),     QT_TR_NOOP("Tags")};
    return section >= 0 && section < ColumnCount ? tr(names[section]) : QVariant();
}

} // namespace lathe::ui

// RunsTableModel: every run in the run store as a table (status, name, experiment, strategy chain,
// device, key metrics, start time, duration). Reads through its own ReadOnly connection; polls
// RunStore::changeCounter() so runs made by the engine thread or by lathe-cli appear by themselves.
#pragma once

#include "engine/store/run_store.h"

#include <QAbstractTableModel>
#include <QIcon>
#include <QTimer>

#include <memory>
#include <vector>

namespace lathe::ui {

class RunsTableModel : public QAbstractTableModel {
    Q_OBJECT
public:
    enum Column {
        Status, Id, Name, Experiment, Chain, Model, Dataset, Device, Accuracy, LatencyP50, LatencyP99,
        Throughput, ModelBytes, Started, Duration, Tags, ColumnCount
    };
    enum Role { SortRole = Qt::UserRole + 1, RunIdRole, StatusRole };

    explicit RunsTableModel(QObject* parent = nullptr);
    ~RunsTableModel() override;

    // Opens the store read-only (the file must exist). Returns false with the reason in lastError().
    bool open(const QString& path);
    void close();
    QString path() const;
    QString lastError() const { return m_lastError; }
    RunStore* store() const { return m_store.get(); }

    // Re-reads the runs: rows that changed are updated in place, new runs are inserted at the top,
    // anything else resets the model. Returns true when something changed.
    bool refresh();
    // Polls changeCounter() every `ms` (0: stop).
    void setPollInterval(int ms);
    qint64 lastRefreshMs() const { return m_lastRefreshMs; }

    const RunRecord& record(int row) const { return m_runs[static_cast<std::size_t>(row)]; }
    int rowOfRun(std::int64_t runId) const;
    // The key metrics the table shows, looked up once per refresh (sorting compares these).
    enum Metric { AccuracyMetric, LatencyP50Metric, LatencyP99Metric, ThroughputMetric, ModelBytesMetric, MetricCount };
    static const char* metricKey(Metric m);
    struct RowCache {
        QString search; // lower-cased text that free-text filtering matches against
        QString name, experiment;
        double metrics[MetricCount];
    };
    const RowCache& cache(int row) const { return m_cache[static_cast<std::size_t>(row)]; }
    const QString& searchText(int row) const { return cache(row).search; }
    // Value of a summary metric: the exact key, else the last key ending in ".<key>" (a measure label).
    static double metric(const RunRecord& run, const std::string& key);
    static QIcon statusIcon(const QString& status);

    int rowCount(const QModelIndex& parent = {}) const override;
    int columnCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

signals:
    void refreshed();
    void storeError(const QString& message);

private:
    void setRows(std::vector<RunRecord> runs);
    RowCache makeCache(const RunRecord& run) const;
    QVariant display(const RunRecord& run, int column) const;
    QVariant sortValue(const RunRecord& run, int column) const;

    std::unique_ptr<RunStore> m_store;
    std::vector<RunRecord> m_runs;
    std::vector<RowCache> m_cache;
    std::int64_t m_changeCounter = -1;
    QTimer m_poll;
    QString m_lastError;
    qint64 m_lastRefreshMs = 0;
};

} // namespace lathe::ui

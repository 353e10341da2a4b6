// RunsFilterProxy: sorting and filtering of the runs table (free text, status, tag, model, device).
// Compares the source model's records directly, so sorting 10,000 runs does not build QVariants.
#pragma once

#include <QSet>
#include <QSortFilterProxyModel>

namespace lathe::ui {

class RunsTableModel;

class RunsFilterProxy : public QSortFilterProxyModel {
    Q_OBJECT
public:
    explicit RunsFilterProxy(QObject* parent = nullptr);
    void setRunsModel(RunsTableModel* model);
    RunsTableModel* runsModel() const { return m_model; }

    void setText(const QString& text);
    void setStatuses(const QSet<QString>& statuses); // empty: any
    void setTag(const QString& tag);                  // empty: any
    void setModelName(const QString& model);
    void setDevice(const QString& device);

protected:
    bool filterAcceptsRow(int sourceRow, const QModelIndex& sourceParent) const override;
    bool lessThan(const QModelIndex& left, const QModelIndex& right) const override;

private:
    RunsTableModel* m_model = nullptr;
    QStringList m_words;
    QSet<QString> m_statuses;
    QString m_tag, m_modelName, m_device;
};

} // namespace lathe::ui

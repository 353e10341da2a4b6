// RunsView: the runs table with its filter bar (free text, status, model, device, tag), a column
// chooser on the header's context menu and a context menu for the selected runs.
#pragma once

#include <QList>
#include <QWidget>

class QComboBox;
class QLineEdit;
class QTableView;
class QLabel;
class QSplitter;

namespace lathe::ui {

class RunsTableModel;
class RunsFilterProxy;

class RunsView : public QWidget {
    Q_OBJECT
public:
    explicit RunsView(RunsTableModel* model, QWidget* parent = nullptr);

    QTableView* table() const { return m_table; }
    RunsFilterProxy* proxy() const { return m_proxy; }
    QLineEdit* filterEdit() const { return m_filter; }
    QComboBox* statusFilter() const { return m_status; }
    QList<qint64> selectedRunIds() const;
    void selectRun(qint64 runId);
    // Header layout (column order, widths, hidden columns, sort) for QSettings.
    QByteArray saveState() const;
    void restoreState(const QByteArray& state);
    // A panel above the table, in a splitter with it (the submitted sweeps).
    void setTopPanel(QWidget* panel);

signals:
    void openRequested(qint64 runId);
    void compareRequested(const QList<qint64>& runIds);
    void rerunRequested(qint64 runId);
    void exportRequested(const QList<qint64>& runIds);
    // Already confirmed by the user.
    void deleteRequested(const QList<qint64>& runIds);

private:
    void showContextMenu(const QPoint& pos);
    void showColumnMenu(const QPoint& pos);
    void updateFilterChoices();
    void updateCount();
    void confirmDelete(const QList<qint64>& ids);

    RunsTableModel* m_model;
    RunsFilterProxy* m_proxy;
    QTableView* m_table;
    QSplitter* m_splitter;
    QLineEdit* m_filter;
    QComboBox* m_status;
    QComboBox* m_modelFilter;
    QComboBox* m_device;
    QComboBox* m_tag;
    QLabel* m_count;
};

} // namespace lathe::ui

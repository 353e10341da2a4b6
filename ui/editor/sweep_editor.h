// SweepEditor: the experiment's sweep axes, one row per path ("steps[0].params.sparsity") with its
// list of values as JSON ("[0.5, 0.7, 0.9]"). The runs are the cartesian product of the rows.
#pragma once

#include <nlohmann/json.hpp>

#include <QWidget>

class QTableWidget;
class QLabel;

namespace lathe::ui {

class SweepEditor : public QWidget {
    Q_OBJECT
public:
    explicit SweepEditor(QWidget* parent = nullptr);
    void setSweep(const nlohmann::json& sweep); // emits nothing
    // Rows whose values are not a JSON list are left out (and shown in red).
    nlohmann::json sweep() const;
    QTableWidget* table() const { return m_table; }
    void addAxis(const QString& path, const QString& valuesJson);
    // "/sweep/<path>" -> selects that row.
    QWidget* widgetForPointer(const std::string& pointer);

signals:
    void sweepEdited();

private:
    void updateCount();
    QTableWidget* m_table;
    QLabel* m_count;
    bool m_updating = false;
};

} // namespace lathe::ui

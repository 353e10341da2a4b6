// ChartStack: charts one under another, each found by its spec id; the run details' per-layer and
// across-runs panels each hold one.
#pragma once

#include <QString>
#include <QStringList>
#include <QWidget>

#include <initializer_list>
#include <utility>
#include <vector>

class QScrollArea;
class QVBoxLayout;

namespace lathe::ui {

class ChartView;

class ChartStack : public QWidget {
    Q_OBJECT
public:
    explicit ChartStack(QWidget* parent = nullptr);
    // Appends `view` (the stack takes it) under `id`.
    void add(const QString& id, ChartView* view);
    // Deletes every chart.
    void clear();
    bool isEmpty() const { return m_charts.empty(); }
    QStringList ids() const;
    ChartView* chart(const QString& id) const; // nullptr when none has that id

private:
    QVBoxLayout* m_layout;
    std::vector<std::pair<QString, ChartView*>> m_charts;
};

// A frameless scroll area holding `widgets` one under another (then a stretch), as the run details' chart
// panels scroll.
QScrollArea* stackedScrollArea(QWidget* parent, std::initializer_list<QWidget*> widgets);

} // namespace lathe::ui

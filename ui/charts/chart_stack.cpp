// ChartStack: a vertical layout of ChartViews and their ids.
#include "ui/charts/chart_stack.h"

#include "ui/charts/chart_view.h"

#include <QVBoxLayout>

namespace lathe::ui {

ChartStack::ChartStack(QWidget* parent) : QWidget(parent), m_layout(new QVBoxLayout(this)) {
    m_layout->setContentsMargins(0, 0, 0, 0);
}

void ChartStack::add(const QString& id, ChartView* view) {
    m_layout->addWidget(view);
    m_charts.emplace_back(id, view);
}

void ChartStack::clear() {
    for (auto& [id, view] : m_charts) delete view;
    m_charts.clear();
}

QStringList ChartStack::ids() const {
    QStringList ids;
    for (const auto& [id, view] : m_charts) ids << id;
    return ids;
}

ChartView* ChartStack::chart(const QString& id) const {
    for (const auto& [chartId, view] : m_charts) {
        if (chartId == id) return view;
    }
    return nullptr;
}

} // namespace lathe::ui

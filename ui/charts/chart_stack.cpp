// ChartStack: a vertical layout of ChartViews and their ids.
#include "ui/charts/chart_stack.h"

#include "ui/charts/chart_view.h"

#include <QScrollArea>
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

QScrollArea* stackedScrollArea(QWidget* parent, std::initializer_list<QWidget*> widgets) {
    auto* content = new QWidget;
    auto* layout = new QVBoxLayout(content);
    layout->setContentsMargins(0, 0, 0, 0);
    for (QWidget* w : widgets) layout->addWidget(w);
    layout->addStretch(1);
    auto* scroll = new QScrollArea(parent);
    scroll->setWidgetResizable(true);
    scroll->setFrameShape(QFrame::NoFrame);
    scroll->setWidget(content);
    return scroll;
}

} // namespace lathe::ui

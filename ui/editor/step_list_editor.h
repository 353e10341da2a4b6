// StepListEditor: the experiment's chain of steps. A list (drag to reorder, tick to enable) beside a
// form per step generated from its strategy's schema; "Add step" offers every registered strategy.
#pragma once

#include <nlohmann/json.hpp>

#include <QWidget>

class QListWidget;
class QListWidgetItem;
class QStackedWidget;
class QToolButton;

namespace lathe::ui {

class SchemaForm;

class StepListEditor : public QWidget {
    Q_OBJECT
public:
    explicit StepListEditor(QWidget* parent = nullptr);

    void setSteps(const nlohmann::json& steps); // emits nothing
    nlohmann::json steps() const;
    int count() const;
    QListWidget* list() const { return m_list; }
    SchemaForm* formAt(int index) const;

    void addStep(const std::string& strategy); // appended with the schema's defaults; emits stepsEdited
    void removeStep(int index);
    void moveStep(int from, int to);
    // "/steps/2/params/sparsity" -> selects step 2 and returns the sparsity editor (or the list).
    QWidget* widgetForPointer(const std::string& pointer);
    void clearErrors();
    void setStepError(int index, const std::string& field, const QString& message);

signals:
    void stepsEdited();

private:
    QListWidgetItem* makeItem(const nlohmann::json& step);
    void updateItemText(QListWidgetItem* item);

    QListWidget* m_list;
    QStackedWidget* m_forms;
    QToolButton* m_add;
    QToolButton* m_remove;
    bool m_updating = false;
};

} // namespace lathe::ui

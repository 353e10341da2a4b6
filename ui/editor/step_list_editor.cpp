// StepListEditor: steps as list items; each item owns the JSON of its step and a SchemaForm.
#include "ui/editor/step_list_editor.h"

#include "engine/strategies/strategy.h"
#include "ui/editor/schema_form.h"

#include <QHBoxLayout>
#include <QLabel>
#include <QListWidget>
#include <QMenu>
#include <QScrollArea>
#include <QStackedWidget>
#include <QStyle>
#include <QToolButton>
#include <QVBoxLayout>

#include <map>

namespace lathe::ui {

namespace {
constexpr int kStepRole = Qt::UserRole + 1;  // the step's JSON (dump), unknown keys included
constexpr int kFormRole = Qt::UserRole + 2;  // its SchemaForm*

SchemaForm* formOf(const QListWidgetItem* item) {
    return qobject_cast<SchemaForm*>(item->data(kFormRole).value<QObject*>());
}
} // namespace

StepListEditor::StepListEditor(QWidget* parent)
    : QWidget(parent), m_list(new QListWidget(this)), m_forms(new QStackedWidget(this)),
      m_add(new QToolButton(this)), m_remove(new QToolButton(this)) {
    m_list->setObjectName(QStringLiteral("stepList"));
    m_list->setDragDropMode(QAbstractItemView::InternalMove);
    m_list->setDefaultDropAction(Qt::MoveAction);
    m_list->setSelectionMode(QAbstractItemView::SingleSelection);
    m_list->setMinimumWidth(200);
    m_list->setToolTip(tr("Steps run top to bottom. Drag to reorder, untick to skip a step."));

    m_add->setText(tr("Add step"));
    m_add->setIcon(style()->standardIcon(QStyle::SP_FileDialogNewFolder));
    m_add->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    m_add->setPopupMode(QToolButton::InstantPopup);
    auto* menu = new QMenu(m_add);
    // Grouped by family, straight from the registry: a new strategy appears here without UI changes.
    std::map<std::string, QMenu*> families;
    for (const StrategySchema* schema : StrategyRegistry::instance().all()) {
        QMenu*& sub = families[schema->family];
        if (!sub) {
            sub = menu->addMenu(QString::fromStdString(schema->family));
        }
        QAction* a = sub->addAction(QString::fromStdString(schema->name));
        a->setToolTip(QString::fromStdString(schema->summary));
        a->setStatusTip(QString::fromStdString(schema->summary));
        const std::string name = schema->name;
        connect(a, &QAction::triggered, this, [this, name] { addStep(name); });
    }
    menu->setToolTipsVisible(true);
    m_add->setMenu(menu);
    m_remove->setText(tr("Remove"));
    m_remove->setIcon(style()->standardIcon(QStyle::SP_TrashIcon));
    m_remove->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    connect(m_remove, &QToolButton::clicked, this, [this] {
        if (m_list->currentRow() >= 0) {
            removeStep(m_list->currentRow());
        }
    });

    auto* left = new QVBoxLayout;
    auto* buttons = new QHBoxLayout;
    buttons->addWidget(m_add);
    buttons->addWidget(m_remove);
    buttons->addStretch();
    left->addLayout(buttons);
    left->addWidget(m_list, 1);
    auto* scroll = new QScrollArea(this);
    scroll->setWidgetResizable(true);
    scroll->setWidget(m_forms);
    scroll->setFrameShape(QFrame::NoFrame);
    auto* layout = new QHBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addLayout(left, 2);
    layout->addWidget(scroll, 3);
    auto* empty = new QLabel(tr("Select a step to edit its parameters."), m_forms);
    empty->setAlignment(Qt::AlignCenter);
    empty->setEnabled(false);
    m_forms->addWidget(empty);

    connect(m_list, &QListWidget::currentRowChanged, this, [this](int row) {
        QListWidgetItem* item = row >= 0 ? m_list->item(row) : nullptr;
        m_forms->setCurrentWidget(item && formOf(item) ? static_cast<QWidget*>(formOf(item)) : m_forms->widget(0));
        m_remove->setEnabled(item != nullptr);
    });
    connect(m_list, &QListWidget::itemChanged, this, [this](QListWidgetItem* item) {
        if (m_updating) {
            return;
        }
        nlohmann::json step = nlohmann::json::parse(item->data(kStepRole).toString().toStdString());
        const bool enabled = item->checkState() == Qt::Checked;
        if (step.value("enabled", true) == enabled) {
            return;
        }
        if (enabled) {
            step.erase("enabled"); // the default; keep files minimal
        } else {
            step["enabled"] = false;
        }
        m_updating = true;
        item->setData(kStepRole, QString::fromStdString(step.dump()));
        updateItemText(item);
        m_updating = false;
        emit stepsEdited();
    });
    // Drag and drop reorders the rows of the list's model; the step order follows.
    connect(m_list->model(), &QAbstractItemModel::rowsMoved, this, [this] {
        if (!m_updating) {
            emit stepsEdited();
        }
    });
    m_remove->setEnabled(false);
}

QListWidgetItem* StepListEditor::makeItem(const nlohmann::json& step) {
    auto* item = new QListWidgetItem;
    item->setFlags(Qt::ItemIsEnabled | Qt::ItemIsSelectable | Qt::ItemIsUserCheckable | Qt::ItemIsDragEnabled);
    item->setData(kStepRole, QString::fromStdString(step.dump()));
    const std::string strategy = step.is_object() && step.contains("strategy") && step["strategy"].is_string()
                                     ? step["strategy"].get<std::string>()
                                     : std::string();
    const StrategySchema* schema = StrategyRegistry::instance().find(strategy);
    if (schema) {
        auto* form = new SchemaForm(*schema, m_forms);
        form->setValues(step.contains("params") ? step["params"] : nlohmann::json::object());
        m_forms->addWidget(form);
        item->setData(kFormRole, QVariant::fromValue<QObject*>(form));
        item->setToolTip(QString::fromStdString(schema->summary));
        connect(form, &SchemaForm::fieldEdited, this, [this, item, form] {
            nlohmann::json s = nlohmann::json::parse(item->data(kStepRole).toString().toStdString());
            s["params"] = form->explicitValues();
            m_updating = true;
            item->setData(kStepRole, QString::fromStdString(s.dump()));
            updateItemText(item);
            m_updating = false;
            emit stepsEdited();
        });
    } else {
        item->setIcon(style()->standardIcon(QStyle::SP_MessageBoxWarning));
        item->setToolTip(tr("Unknown strategy \"%1\": edit it in the JSON tab").arg(QString::fromStdString(strategy)));
    }
    item->setCheckState(step.is_object() && step.value("enabled", true) ? Qt::Checked : Qt::Unchecked);
    updateItemText(item);
    return item;
}

void StepListEditor::updateItemText(QListWidgetItem* item) {
    const nlohmann::json step = nlohmann::json::parse(item->data(kStepRole).toString().toStdString());
    QString text = QString::fromStdString(step.is_object() ? step.value("strategy", std::string("?")) : "?");
    if (step.is_object() && step.contains("params") && step["params"].is_object() && !step["params"].empty()) {
        QStringList parts;
        for (auto it = step["params"].begin(); it != step["params"].end() && parts.size() < 3; ++it) {
            parts << QStringLiteral("%1=%2").arg(QString::fromStdString(it.key()), QString::fromStdString(it->dump()));
        }
        text += QStringLiteral("  (%1)").arg(parts.join(QStringLiteral(", ")));
    }
    item->setText(text);
}

void StepListEditor::setSteps(const nlohmann::json& steps) {
    m_updating = true;
    const int row = m_list->currentRow();
    m_list->clear();
    while (m_forms->count() > 1) {
        QWidget* w = m_forms->widget(1);
        m_forms->removeWidget(w);
        delete w;
    }
    if (steps.is_array()) {
        for (const auto& step : steps) {
            m_list->addItem(makeItem(step));
        }
    }
    m_list->setCurrentRow(std::min(row, m_list->count() - 1));
    m_updating = false;
}

nlohmann::json StepListEditor::steps() const {
    nlohmann::json out = nlohmann::json::array();
    for (int i = 0; i < m_list->count(); ++i) {
        out.push_back(nlohmann::json::parse(m_list->item(i)->data(kStepRole).toString().toStdString()));
    }
    return out;
}

int StepListEditor::count() const { return m_list->count(); }

SchemaForm* StepListEditor::formAt(int index) const {
    QListWidgetItem* item = m_list->item(index);
    return item ? formOf(item) : nullptr;
}

void StepListEditor::addStep(const std::string& strategy) {
    nlohmann::json step = {{"strategy", strategy}};
    if (const StrategySchema* schema = StrategyRegistry::instance().find(strategy)) {
        step["params"] = SchemaForm::defaults(*schema);
    }
    m_updating = true;
    m_list->addItem(makeItem(step));
    m_list->setCurrentRow(m_list->count() - 1);
    m_updating = false;
    emit stepsEdited();
}

void StepListEditor::removeStep(int index) {
    QListWidgetItem* item = m_list->item(index);
    if (!item) {
        return;
    }
    m_updating = true;
    if (SchemaForm* form = formOf(item)) {
        m_forms->removeWidget(form);
        form->deleteLater();
    }
    delete m_list->takeItem(index);
    m_updating = false;
    emit stepsEdited();
}

void StepListEditor::moveStep(int from, int to) {
    if (from < 0 || from >= m_list->count() || to < 0 || to >= m_list->count() || from == to) {
        return;
    }
    m_updating = true;
    QListWidgetItem* item = m_list->takeItem(from);
    m_list->insertItem(to, item);
    m_list->setCurrentRow(to);
    m_updating = false;
    emit stepsEdited();
}

QWidget* StepListEditor::widgetForPointer(const std::string& pointer) {
    // "/steps/<i>[/params/<field>]"
    const std::string prefix = "/steps/";
    if (pointer.rfind(prefix, 0) != 0) {
        return m_list;
    }
    const std::string rest = pointer.substr(prefix.size());
    const std::size_t slash = rest.find('/');
    bool ok = false;
    const int index = QString::fromStdString(rest.substr(0, slash)).toInt(&ok);
    if (!ok || index < 0 || index >= m_list->count()) {
        return m_list;
    }
    m_list->setCurrentRow(index);
    const std::string params = "/params/";
    if (slash != std::string::npos && rest.compare(slash, params.size(), params) == 0) {
        const std::string field = rest.substr(slash + params.size());
        if (SchemaForm* form = formAt(index)) {
            if (QWidget* w = form->fieldWidget(field.substr(0, field.find('/')))) {
                return w;
            }
        }
    }
    return m_list;
}

void StepListEditor::clearErrors() {
    for (int i = 0; i < m_list->count(); ++i) {
        if (SchemaForm* form = formAt(i)) {
            form->clearErrors();
        }
        m_list->item(i)->setData(Qt::ForegroundRole, QVariant());
    }
}

void StepListEditor::setStepError(int index, const std::string& field, const QString& message) {
    QListWidgetItem* item = m_list->item(index);
    if (!item) {
        return;
    }
    item->setData(Qt::ForegroundRole, QColor(213, 94, 0));
    if (SchemaForm* form = formAt(index); form && !field.empty()) {
        form->setFieldError(field, message);
    }
}

} // namespace lathe::ui

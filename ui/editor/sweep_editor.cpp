// SweepEditor: a two-column table kept in step with the "sweep" object.
#include "ui/editor/sweep_editor.h"

#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QStyle>
#include <QTableWidget>
#include <QToolButton>
#include <QVBoxLayout>

namespace lathe::ui {

SweepEditor::SweepEditor(QWidget* parent) : QWidget(parent), m_table(new QTableWidget(0, 2, this)), m_count(new QLabel(this)) {
    m_table->setObjectName(QStringLiteral("sweepTable"));
    m_table->setHorizontalHeaderLabels({tr("Path"), tr("Values (JSON list)")});
    m_table->horizontalHeader()->setSectionResizeMode(0, QHeaderView::Stretch);
    m_table->horizontalHeader()->setSectionResizeMode(1, QHeaderView::Stretch);
    m_table->verticalHeader()->setVisible(false);
    m_table->setToolTip(tr("Each row varies one field; the runs are every combination of the rows.\n"
                           "Path example: steps[0].params.sparsity   Values example: [0.5, 0.7, 0.9]"));
    m_table->setMinimumHeight(90);
    auto* add = new QToolButton(this);
    add->setText(tr("Add axis"));
    add->setIcon(style()->standardIcon(QStyle::SP_FileDialogNewFolder));
    add->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    auto* remove = new QToolButton(this);
    remove->setText(tr("Remove"));
    remove->setIcon(style()->standardIcon(QStyle::SP_TrashIcon));
    remove->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    connect(add, &QToolButton::clicked, this, [this] { addAxis(QStringLiteral("seed"), QStringLiteral("[1, 2, 3]")); });
    connect(remove, &QToolButton::clicked, this, [this] {
        if (m_table->currentRow() >= 0) {
            m_table->removeRow(m_table->currentRow());
            updateCount();
            emit sweepEdited();
        }
    });
    connect(m_table, &QTableWidget::itemChanged, this, [this] {
        if (!m_updating) {
            updateCount();
            emit sweepEdited();
        }
    });
    auto* buttons = new QHBoxLayout;
    buttons->addWidget(add);
    buttons->addWidget(remove);
    buttons->addStretch();
    buttons->addWidget(m_count);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addLayout(buttons);
    layout->addWidget(m_table);
    updateCount();
}

void SweepEditor::addAxis(const QString& path, const QString& valuesJson) {
    m_updating = true;
    const int row = m_table->rowCount();
    m_table->insertRow(row);
    m_table->setItem(row, 0, new QTableWidgetItem(path));
    m_table->setItem(row, 1, new QTableWidgetItem(valuesJson));
    m_updating = false;
    updateCount();
    emit sweepEdited();
}

void SweepEditor::setSweep(const nlohmann::json& sweep) {
    m_updating = true;
    m_table->setRowCount(0);
    if (sweep.is_object()) {
        for (auto it = sweep.begin(); it != sweep.end(); ++it) {
            const int row = m_table->rowCount();
            m_table->insertRow(row);
            m_table->setItem(row, 0, new QTableWidgetItem(QString::fromStdString(it.key())));
            m_table->setItem(row, 1, new QTableWidgetItem(QString::fromStdString(it.value().dump())));
        }
    }
    m_updating = false;
    updateCount();
}

nlohmann::json SweepEditor::sweep() const {
    nlohmann::json out = nlohmann::json::object();
    for (int row = 0; row < m_table->rowCount(); ++row) {
        const QTableWidgetItem* path = m_table->item(row, 0);
        const QTableWidgetItem* values = m_table->item(row, 1);
        if (!path || !values || path->text().trimmed().isEmpty()) {
            continue;
        }
        const auto parsed = nlohmann::json::parse(values->text().toStdString(), nullptr, false);
        if (!parsed.is_discarded()) {
            out[path->text().trimmed().toStdString()] = parsed;
        }
    }
    return out;
}

void SweepEditor::updateCount() {
    std::size_t runs = 1;
    for (int row = 0; row < m_table->rowCount(); ++row) {
        QTableWidgetItem* values = m_table->item(row, 1);
        if (!values) {
            continue;
        }
        const auto parsed = nlohmann::json::parse(values->text().toStdString(), nullptr, false);
        const bool ok = parsed.is_array() && !parsed.empty();
        const bool wasUpdating = m_updating;
        m_updating = true;
        values->setForeground(ok ? palette().text() : QBrush(QColor(213, 94, 0)));
        values->setToolTip(ok ? QString() : tr("not a JSON list of values"));
        m_updating = wasUpdating;
        if (ok) {
            runs *= parsed.size();
        }
    }
    m_count->setText(m_table->rowCount() == 0 ? tr("no sweep: one run") : tr("%n run(s)", nullptr, static_cast<int>(runs)));
}

QWidget* SweepEditor::widgetForPointer(const std::string& pointer) {
    const std::string prefix = "/sweep/";
    if (pointer.rfind(prefix, 0) == 0) {
        std::string key = pointer.substr(prefix.size());
        key = key.substr(0, key.find('/'));
        // JSON pointer escapes
        for (std::size_t p; (p = key.find("~1")) != std::string::npos;) key.replace(p, 2, "/");
        for (std::size_t p; (p = key.find("~0")) != std::string::npos;) key.replace(p, 2, "~");
        for (int row = 0; row < m_table->rowCount(); ++row) {
            if (m_table->item(row, 0) && m_table->item(row, 0)->text().toStdString() == key) {
                m_table->setCurrentCell(row, 1);
            }
        }
    }
    return m_table;
}

} // namespace lathe::ui

// RunsView: filter bar + table + menus over RunsTableModel.
#include "ui/runs/runs_view.h"

#include "engine/store/run_store.h"
#include "ui/common/record_table.h"
#include "ui/runs/runs_filter_proxy.h"
#include "ui/runs/runs_table_model.h"

#include <QAction>
#include <QComboBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QMenu>
#include <QMessageBox>
#include <QSet>
#include <QSplitter>
#include <QStyle>
#include <QTableView>
#include <QVBoxLayout>

#include <set>

namespace lathe::ui {

namespace {
void setChoices(QComboBox* combo, const QString& anyText, const std::set<std::string>& values) {
    const QString current = combo->currentIndex() > 0 ? combo->currentText() : QString();
    QStringList items{anyText};
    for (const auto& v : values) {
        if (!v.empty()) items << QString::fromStdString(v);
    }
    QStringList existing;
    for (int i = 0; i < combo->count(); ++i) existing << combo->itemText(i);
    if (existing == items) {
        return;
    }
    const QSignalBlocker block(combo);
    combo->clear();
    combo->addItems(items);
    const int idx = current.isEmpty() ? 0 : combo->findText(current);
    combo->setCurrentIndex(idx < 0 ? 0 : idx);
}
} // namespace

RunsView::RunsView(RunsTableModel* model, QWidget* parent)
    : QWidget(parent), m_model(model), m_proxy(new RunsFilterProxy(this)), m_table(new QTableView(this)),
      m_splitter(new QSplitter(Qt::Vertical, this)), m_filter(new QLineEdit(this)), m_status(new QComboBox(this)), m_modelFilter(new QComboBox(this)),
      m_device(new QComboBox(this)), m_tag(new QComboBox(this)), m_count(new QLabel(this)) {
    m_proxy->setRunsModel(model);
    m_filter->setObjectName(QStringLiteral("runFilter"));
    m_filter->setPlaceholderText(tr("Filter runs (name, experiment, steps, model, tag...)  Ctrl+F"));
    m_filter->setClearButtonEnabled(true);
    m_status->addItem(tr("Any status"));
    for (const char* s : {run_status::kDone, run_status::kRunning, run_status::kQueued, run_status::kFailed,
                          run_status::kCancelled, run_status::kInterrupted}) {
        m_status->addItem(RunsTableModel::statusIcon(QString::fromLatin1(s)), QString::fromLatin1(s));
    }
    m_modelFilter->addItem(tr("Any model"));
    m_device->addItem(tr("Any device"));
    m_tag->addItem(tr("Any tag"));
    auto* bar = new QHBoxLayout;
    bar->addWidget(m_filter, 3);
    bar->addWidget(m_status);
    bar->addWidget(m_modelFilter);
    bar->addWidget(m_device);
    bar->addWidget(m_tag);
    bar->addWidget(m_count);

    m_table->setModel(m_proxy);
    m_table->setObjectName(QStringLiteral("runsTable"));
    m_table->setSortingEnabled(true);
    m_table->sortByColumn(RunsTableModel::Id, Qt::DescendingOrder);
    setUpRecordTable(m_table);
    m_table->setSelectionMode(QAbstractItemView::ExtendedSelection);
    QHeaderView* header = m_table->horizontalHeader();
    header->setSectionsMovable(true);
    header->setContextMenuPolicy(Qt::CustomContextMenu);
    header->setStretchLastSection(true);
    header->setDefaultSectionSize(110);
    header->resizeSection(RunsTableModel::Status, 100);
    header->resizeSection(RunsTableModel::Id, 50);
    header->resizeSection(RunsTableModel::Name, 200);
    header->resizeSection(RunsTableModel::Chain, 220);
    header->resizeSection(RunsTableModel::Started, 150);
    for (int c : {RunsTableModel::Dataset, RunsTableModel::LatencyP99, RunsTableModel::Tags}) {
        m_table->setColumnHidden(c, true);
    }

    // The filter bar and the table, below an optional top panel (setTopPanel) in a splitter.
    auto* runsPane = new QWidget(this);
    auto* paneLayout = new QVBoxLayout(runsPane);
    paneLayout->setContentsMargins(0, 0, 0, 0);
    paneLayout->addLayout(bar);
    paneLayout->addWidget(m_table, 1);
    m_splitter->addWidget(runsPane);
    m_splitter->setChildrenCollapsible(false);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(m_splitter, 1);

    connect(m_filter, &QLineEdit::textChanged, m_proxy, &RunsFilterProxy::setText);
    connect(m_status, &QComboBox::currentIndexChanged, this, [this](int i) {
        m_proxy->setStatuses(i <= 0 ? QSet<QString>{} : QSet<QString>{m_status->itemText(i)});
    });
    connect(m_modelFilter, &QComboBox::currentIndexChanged, this,
            [this](int i) { m_proxy->setModelName(i <= 0 ? QString() : m_modelFilter->itemText(i)); });
    connect(m_device, &QComboBox::currentIndexChanged, this,
            [this](int i) { m_proxy->setDevice(i <= 0 ? QString() : m_device->itemText(i)); });
    connect(m_tag, &QComboBox::currentIndexChanged, this,
            [this](int i) { m_proxy->setTag(i <= 0 ? QString() : m_tag->itemText(i)); });
    connect(m_table, &QTableView::customContextMenuRequested, this, &RunsView::showContextMenu);
    connect(header, &QHeaderView::customContextMenuRequested, this, &RunsView::showColumnMenu);
    connect(m_table, &QTableView::activated, this, [this](const QModelIndex& index) {
        emit openRequested(index.data(RunsTableModel::RunIdRole).toLongLong());
    });
    connect(m_model, &RunsTableModel::refreshed, this, &RunsView::updateFilterChoices);
    connect(m_proxy, &QAbstractItemModel::rowsInserted, this, &RunsView::updateCount);
    connect(m_proxy, &QAbstractItemModel::rowsRemoved, this, &RunsView::updateCount);
    connect(m_proxy, &QAbstractItemModel::modelReset, this, &RunsView::updateCount);
    connect(m_proxy, &QAbstractItemModel::layoutChanged, this, &RunsView::updateCount);

    auto* deleteAction = new QAction(tr("Delete runs"), this);
    deleteAction->setShortcut(QKeySequence::Delete);
    deleteAction->setShortcutContext(Qt::WidgetWithChildrenShortcut);
    connect(deleteAction, &QAction::triggered, this, [this] {
        const auto ids = selectedRunIds();
        if (!ids.isEmpty()) confirmDelete(ids);
    });
    m_table->addAction(deleteAction);
    updateFilterChoices();
    updateCount();
}

QList<qint64> RunsView::selectedRunIds() const {
    QList<qint64> ids;
    for (const QModelIndex& index : m_table->selectionModel()->selectedRows()) {
        ids << index.data(RunsTableModel::RunIdRole).toLongLong();
    }
    return ids;
}

void RunsView::selectRun(qint64 runId) {
    const int sourceRow = m_model->rowOfRun(runId);
    if (sourceRow < 0) {
        return;
    }
    const QModelIndex index = m_proxy->mapFromSource(m_model->index(sourceRow, 0));
    if (index.isValid()) {
        m_table->selectionModel()->select(index, QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
        m_table->scrollTo(index);
    }
}

QByteArray RunsView::saveState() const { return m_table->horizontalHeader()->saveState(); }

void RunsView::restoreState(const QByteArray& state) {
    if (!state.isEmpty()) {
        m_table->horizontalHeader()->restoreState(state);
    }
}

void RunsView::setTopPanel(QWidget* panel) {
    m_splitter->insertWidget(0, panel);
    m_splitter->setStretchFactor(0, 0);
    m_splitter->setStretchFactor(1, 1);
}

void RunsView::updateFilterChoices() {
    std::set<std::string> models, devices, tags;
    for (int row = 0; row < m_model->rowCount(); ++row) {
        const RunRecord& r = m_model->record(row);
        models.insert(r.model);
        devices.insert(r.device);
        tags.insert(r.tags.begin(), r.tags.end());
    }
    setChoices(m_modelFilter, tr("Any model"), models);
    setChoices(m_device, tr("Any device"), devices);
    setChoices(m_tag, tr("Any tag"), tags);
    updateCount();
}

void RunsView::updateCount() {
    const int shown = m_proxy->rowCount(), total = m_model->rowCount();
    m_count->setText(shown == total ? tr("%n run(s)", nullptr, total) : tr("%1 of %2 runs").arg(shown).arg(total));
}

void RunsView::showContextMenu(const QPoint& pos) {
    const QList<qint64> ids = selectedRunIds();
    if (ids.isEmpty()) {
        return;
    }
    QMenu menu(this);
    QAction* open = menu.addAction(style()->standardIcon(QStyle::SP_DialogOpenButton), tr("Open"));
    open->setEnabled(ids.size() == 1);
    QAction* compare = menu.addAction(tr("Compare (overlay charts)"));
    compare->setEnabled(ids.size() >= 2);
    QAction* rerun = menu.addAction(style()->standardIcon(QStyle::SP_BrowserReload), tr("Re-run"));
    rerun->setEnabled(ids.size() == 1);
    QAction* exportAction = menu.addAction(style()->standardIcon(QStyle::SP_DialogSaveButton), tr("Export as JSON..."));
    menu.addSeparator();
    QAction* remove = menu.addAction(style()->standardIcon(QStyle::SP_TrashIcon), tr("Delete..."));
    QAction* chosen = menu.exec(m_table->viewport()->mapToGlobal(pos));
    if (chosen == open) emit openRequested(ids.front());
    else if (chosen == compare) emit compareRequested(ids);
    else if (chosen == rerun) emit rerunRequested(ids.front());
    else if (chosen == exportAction) emit exportRequested(ids);
    else if (chosen == remove) confirmDelete(ids);
}

void RunsView::confirmDelete(const QList<qint64>& ids) {
    const auto answer = QMessageBox::question(
        this, tr("Delete runs"),
        tr("Delete %n run(s) with their samples and summaries? This cannot be undone.", nullptr, static_cast<int>(ids.size())),
        QMessageBox::Yes | QMessageBox::Cancel, QMessageBox::Cancel);
    if (answer == QMessageBox::Yes) {
        emit deleteRequested(ids);
    }
}

void RunsView::showColumnMenu(const QPoint& pos) {
    QMenu menu(this);
    QHeaderView* header = m_table->horizontalHeader();
    for (int c = 0; c < m_model->columnCount(); ++c) {
        QAction* a = menu.addAction(m_model->headerData(c, Qt::Horizontal).toString());
        a->setCheckable(true);
        a->setChecked(!header->isSectionHidden(c));
        connect(a, &QAction::toggled, this, [this, c](bool on) { m_table->setColumnHidden(c, !on); });
    }
    menu.exec(header->mapToGlobal(pos));
}

} // namespace lathe::ui

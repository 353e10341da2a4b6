// SubmissionsView: a compact table over SubmissionsModel with its status line and menu.
#include "ui/runs/submissions_view.h"

#include "ui/common/record_table.h"
#include "ui/runs/submissions_model.h"

#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QMenu>
#include <QScrollBar>
#include <QTableView>
#include <QTime>
#include <QVBoxLayout>

#include <algorithm>

namespace lathe::ui {

SubmissionsView::SubmissionsView(SubmissionsModel* model, QWidget* parent)
    : QWidget(parent), m_model(model), m_table(new QTableView(this)), m_title(new QLabel(tr("<b>Submitted sweeps</b> (Slurm)"), this)),
      m_status(new QLabel(this)) {
    setObjectName(QStringLiteral("submissionsView"));
    m_table->setObjectName(QStringLiteral("submissionsTable"));
    m_status->setObjectName(QStringLiteral("submissionsStatus"));
    m_table->setModel(model);
    setUpRecordTable(m_table);
    m_table->setSelectionMode(QAbstractItemView::SingleSelection);
    QHeaderView* header = m_table->horizontalHeader();
    header->setStretchLastSection(true);
    header->setDefaultSectionSize(70);
    header->resizeSection(SubmissionsModel::State, 170);
    header->resizeSection(SubmissionsModel::Experiment, 180);
    header->resizeSection(SubmissionsModel::SlurmJob, 80);
    header->resizeSection(SubmissionsModel::Merged, 90);
    header->resizeSection(SubmissionsModel::MergeJob, 130);

    auto* top = new QHBoxLayout;
    top->addWidget(m_title);
    top->addStretch(1);
    top->addWidget(m_status);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addLayout(top);
    layout->addWidget(m_table, 1);

    connect(m_table, &QTableView::customContextMenuRequested, this, &SubmissionsView::showContextMenu);
    connect(m_table, &QTableView::activated, this, [this](const QModelIndex& index) {
        emit showRunsRequested(m_model->index(index.row(), SubmissionsModel::Experiment).data().toString());
    });
    connect(m_model, &QAbstractItemModel::modelReset, this, &SubmissionsView::updateVisibility);
    connect(m_model, &SubmissionsModel::statesChanged, this, &SubmissionsView::updateStatus);
    updateVisibility();
    updateStatus();
}

QStringList SubmissionsView::finishedShards(int row) const {
    QStringList out;
    if (row < 0 || row >= m_model->rowCount()) return out;
    const auto& r = m_model->row(row);
    if (!r.answered) return out;
    for (const std::string& s : lathe::finishedShards(r.submission, r.counts)) out << QString::fromStdString(s);
    return out;
}

QSize SubmissionsView::sizeHint() const {
    const int rows = std::clamp(m_model->rowCount(), 1, 4);
    const int height = m_title->sizeHint().height() + layout()->spacing() + m_table->horizontalHeader()->sizeHint().height() +
                       rows * m_table->verticalHeader()->defaultSectionSize() + 2 * m_table->frameWidth() +
                       m_table->horizontalScrollBar()->sizeHint().height();
    return {QWidget::sizeHint().width(), height};
}

void SubmissionsView::updateVisibility() {
    setVisible(m_model->rowCount() > 0);
    updateGeometry();
    updateStatus();
}

void SubmissionsView::updateStatus() {
    // One line for the whole panel: the first reason Slurm could not be asked, else when it last answered.
    for (int r = 0; r < m_model->rowCount(); ++r) {
        const QString error = m_model->errorText(r);
        if (!error.isEmpty()) {
            m_status->setText(tr("<span style='color:#d55e00'>Slurm controller unreachable</span>: counts from the shards"));
            m_status->setToolTip(error);
            return;
        }
    }
    m_status->setToolTip({});
    m_status->setText(m_model->answers() > 0 ? tr("updated %1").arg(QTime::currentTime().toString(QStringLiteral("HH:mm:ss")))
                                             : QString());
}

void SubmissionsView::showContextMenu(const QPoint& pos) {
    const QModelIndex index = m_table->indexAt(pos);
    if (!index.isValid()) return;
    const int row = index.row();
    const QString name = m_model->index(row, SubmissionsModel::Experiment).data().toString();
    const QStringList shards = finishedShards(row);
    QMenu menu(this);
    QAction* show = menu.addAction(tr("Show its runs"));
    QAction* merge = menu.addAction(tr("Merge finished shards (%n)", nullptr, static_cast<int>(shards.size())));
    merge->setEnabled(!shards.isEmpty());
    QAction* chosen = menu.exec(m_table->viewport()->mapToGlobal(pos));
    if (chosen == show) emit showRunsRequested(name);
    else if (chosen == merge) emit mergeRequested(name, shards);
}

} // namespace lathe::ui

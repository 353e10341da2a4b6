// CompareView: runs x metrics with deltas against a baseline, significance rows, hide/transpose/copy.
#include "ui/runs/compare_view.h"

#include <QApplication>
#include <QCheckBox>
#include <QClipboard>
#include <QComboBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QPushButton>
#include <QTableWidget>
#include <QVBoxLayout>

#include <cmath>
#include <set>

namespace lathe::ui {

CompareView::CompareView(QWidget* parent)
    : QWidget(parent), m_baseline(new QComboBox(this)), m_hideIdentical(new QCheckBox(tr("Hide identical rows"), this)),
      m_transpose(new QCheckBox(tr("Transpose"), this)), m_note(new QLabel(this)), m_table(new QTableWidget(this)) {
    m_baseline->setObjectName(QStringLiteral("compareBaseline"));
    // Run names can be long (a sweep's label): the bar must not set the details' minimum width.
    m_baseline->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
    m_baseline->setMinimumContentsLength(16);
    m_table->setObjectName(QStringLiteral("compareTable"));
    m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_table->verticalHeader()->setDefaultSectionSize(m_table->fontMetrics().height() + 6);
    m_note->setWordWrap(true);
    m_note->setTextFormat(Qt::PlainText);
    auto* copyCsv = new QPushButton(tr("Copy as CSV"), this);
    auto* copyMarkdown = new QPushButton(tr("Copy as Markdown"), this);
    auto* bar = new QHBoxLayout;
    bar->addWidget(new QLabel(tr("Baseline:"), this));
    bar->addWidget(m_baseline, 1);
    bar->addWidget(m_hideIdentical);
    bar->addWidget(m_transpose);
    bar->addWidget(copyCsv);
    bar->addWidget(copyMarkdown);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addLayout(bar);
    layout->addWidget(m_table, 1);
    layout->addWidget(m_note);
    connect(m_baseline, qOverload<int>(&QComboBox::currentIndexChanged), this, [this] { rebuild(); });
    connect(m_hideIdentical, &QCheckBox::toggled, this, [this] { rebuild(); });
    connect(m_transpose, &QCheckBox::toggled, this, [this] { rebuild(); });
    connect(copyCsv, &QPushButton::clicked, this, [this] { QApplication::clipboard()->setText(toCsv()); });
    connect(copyMarkdown, &QPushButton::clicked, this, [this] { QApplication::clipboard()->setText(toMarkdown()); });
    clear();
}

void CompareView::clear() {
    m_comparison = {};
    m_rows.clear();
    const QSignalBlocker block(m_baseline);
    m_baseline->clear();
    m_table->clear();
    m_table->setRowCount(0);
    m_table->setColumnCount(0);
    m_note->clear();
}

void CompareView::setRuns(const RunStore& store, const std::vector<RunRecord>& runs) {
    clear();
    m_comparison = ComparisonTable(store, runs);
    {
        const QSignalBlocker block(m_baseline);
        for (const RunRecord& r : runs)
            m_baseline->addItem(ComparisonTable::runHeader(r), QVariant::fromValue<qint64>(r.id));
    }
    rebuild();
}

void CompareView::setBaseline(std::int64_t runId) {
    const int i = m_baseline->findData(QVariant::fromValue<qint64>(runId));
    if (i >= 0) m_baseline->setCurrentIndex(i);
}

std::int64_t CompareView::baselineRunId() const {
    return m_baseline->currentData().toLongLong();
}

void CompareView::setHideIdentical(bool on) {
    m_hideIdentical->setChecked(on);
}
void CompareView::setTransposed(bool on) {
    m_transpose->setChecked(on);
}

void CompareView::rebuild() {
    m_rows = m_comparison.rows(static_cast<std::size_t>(std::max(0, m_baseline->currentIndex())));
    const ComparisonTable::Shown shown =
        m_comparison.shown(m_rows, m_hideIdentical->isChecked(), m_transpose->isChecked());
    const QStringList& rowHeaders = shown.rowHeaders;
    const QStringList& columnHeaders = shown.columnHeaders;
    const auto& cells = shown.cells;
    m_table->clear();
    m_table->setRowCount(static_cast<int>(rowHeaders.size()));
    m_table->setColumnCount(static_cast<int>(columnHeaders.size()));
    m_table->setVerticalHeaderLabels(rowHeaders);
    m_table->setHorizontalHeaderLabels(columnHeaders);
    const QColor better(205, 238, 205), worse(246, 210, 210);
    const QColor muted = palette().color(QPalette::Disabled, QPalette::Text);
    for (int r = 0; r < static_cast<int>(cells.size()); ++r) {
        for (int c = 0; c < static_cast<int>(cells[static_cast<std::size_t>(r)].size()); ++c) {
            const ComparisonTable::Cell* cell = cells[static_cast<std::size_t>(r)][static_cast<std::size_t>(c)];
            if (cell->text.isEmpty()) continue;
            auto* item = new QTableWidgetItem(cell->text);
            item->setToolTip(cell->toolTip);
            item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
            if (cell->verdict == Verdict::Better) item->setBackground(better);
            if (cell->verdict == Verdict::Worse) item->setBackground(worse);
            if (cell->verdict == Verdict::NotSignificant) item->setForeground(muted);
            m_table->setItem(r, c, item);
        }
    }
    m_table->resizeColumnsToContents();
    const int hidden =
        static_cast<int>(std::count_if(m_rows.begin(), m_rows.end(), [this](const ComparisonTable::Row& r) {
            return m_hideIdentical->isChecked() && r.identical;
        }));
    QStringList note = m_comparison.caveats();
    if (!m_comparison.runs().empty())
        note << tr("Deltas against %1; green is better, red worse, by each metric's direction. Latency rows: "
                   "difference of the medians of every timed forward with its 95% bootstrap interval; grey when "
                   "the interval contains zero.")
                    .arg(m_baseline->currentText());
    if (hidden) note << tr("%1 identical rows hidden.").arg(hidden);
    m_note->setText(note.join(QLatin1Char(' ')));
}

CompareView::Verdict CompareView::verdict(const QString& rowKey, std::int64_t runId) const {
    const auto& runs = m_comparison.runs();
    for (const ComparisonTable::Row& r : m_rows) {
        if (r.key != rowKey) continue;
        for (std::size_t i = 0; i < runs.size(); ++i)
            if (runs[i].id == runId) return r.cells[i].verdict;
    }
    return Verdict::None;
}

QList<QStringList> CompareView::shownText() const {
    return ComparisonTable::text(m_comparison.shown(m_rows, m_hideIdentical->isChecked(), m_transpose->isChecked()));
}

QString CompareView::toCsv() const {
    return ComparisonTable::toCsv(shownText());
}

QString CompareView::toMarkdown() const {
    return ComparisonTable::toMarkdown(shownText());
}

} // namespace lathe::ui

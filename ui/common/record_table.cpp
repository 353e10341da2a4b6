// setUpRecordTable: shared by the runs table and the submitted sweeps above it.
#include "ui/common/record_table.h"

#include <QHeaderView>
#include <QTableView>

namespace lathe::ui {

void setUpRecordTable(QTableView* table) {
    table->setSelectionBehavior(QAbstractItemView::SelectRows);
    table->setAlternatingRowColors(true);
    table->setWordWrap(false);
    table->setContextMenuPolicy(Qt::CustomContextMenu);
    table->verticalHeader()->setVisible(false);
    // Fixed row height: no per-row size hints to compute for 10,000 runs.
    table->verticalHeader()->setSectionResizeMode(QHeaderView::Fixed);
    table->verticalHeader()->setDefaultSectionSize(table->fontMetrics().height() + 8);
}

} // namespace lathe::ui

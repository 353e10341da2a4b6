// The look of a table with one record per row (the runs, the submitted sweeps): whole-row selection,
// alternating colours, no wrapping, a context menu, and a fixed row height (no per-row size hints).
#pragma once

class QTableView;

namespace lathe::ui {

void setUpRecordTable(QTableView* table);

} // namespace lathe::ui

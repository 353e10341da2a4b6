// CompareView: several stored runs side by side (ui/runs/comparison_table.h): every summary metric with
// each run's delta against a baseline run chosen in the bar, tinted green (better) or red (worse), and the
// latency significance rows, grey where the difference is within noise. Rows where every run has the same
// value can be hidden, the table transposed (runs as rows), and what is shown copied as CSV or Markdown.
#pragma once

#include "ui/runs/comparison_table.h"

#include <QList>
#include <QString>
#include <QStringList>
#include <QWidget>

#include <cstdint>
#include <map>
#include <vector>

class QCheckBox;
class QComboBox;
class QLabel;
class QTableWidget;

namespace lathe::ui {

class CompareView : public QWidget {
    Q_OBJECT
  public:
    using Verdict = ComparisonTable::Verdict;

    explicit CompareView(QWidget* parent = nullptr);

    // Reads the runs' summaries and the per-repeat latencies of their final measurements; the first run
    // is the baseline until another is chosen.
    void setRuns(const RunStore& store, const std::vector<RunRecord>& runs);
    void clear();

    void setBaseline(std::int64_t runId);
    std::int64_t baselineRunId() const;
    void setHideIdentical(bool on);
    void setTransposed(bool on);

    QTableWidget* table() const { return m_table; }
    // The verdict of the cell of metric (or latency row) `rowKey` for run `runId` ("latency@b256" for the
    // significance rows); None when there is no such cell.
    Verdict verdict(const QString& rowKey, std::int64_t runId) const;
    // The table as shown (hidden rows left out, transposed or not).
    QString toCsv() const;
    QString toMarkdown() const;

  private:
    void rebuild();
    QList<QStringList> shownText() const;

    QComboBox* m_baseline;
    QCheckBox* m_hideIdentical;
    QCheckBox* m_transpose;
    QLabel* m_note;
    QTableWidget* m_table;
    ComparisonTable m_comparison;
    std::vector<ComparisonTable::Row> m_rows;
};

} // namespace lathe::ui

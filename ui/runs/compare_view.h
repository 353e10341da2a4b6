// CompareView: several stored runs side by side. Every summary metric, with each run's delta against a
// baseline run chosen in the bar, tinted better or worse by the metric's direction (lower latency, higher
// accuracy); below the metrics, for each batch size the runs timed, whether a run's latency differs from
// the baseline's by more than noise (engine/experiment/run_comparison.h). Rows where every run has the same
// value can be hidden, the table transposed (runs as rows), and what is shown copied as CSV or Markdown.
#pragma once

#include "engine/store/run_store.h"

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
    // How a cell compares with the baseline, by the metric's direction.
    enum class Verdict { None, Better, Worse, NotSignificant };

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
    struct Cell {
        QString text;
        QString toolTip;
        Verdict verdict = Verdict::None;
    };
    struct Row {
        QString key;   // "accuracy", "latency@b256"
        QString label; // shown in the header
        std::vector<Cell> cells; // one per run
        bool identical = false;
    };
    void rebuild();
    std::vector<Row> buildRows() const;
    // The table as shown as text: a header line (the corner, then the column headers), then each row.
    QList<QStringList> shownText() const;
    // Header texts and cells as shown: rows x columns after hiding and transposing.
    void shown(QStringList& rowHeaders, QStringList& columnHeaders, std::vector<std::vector<const Cell*>>& cells) const;

    QComboBox* m_baseline;
    QCheckBox* m_hideIdentical;
    QCheckBox* m_transpose;
    QLabel* m_note;
    QTableWidget* m_table;
    std::vector<RunRecord> m_runs;
    std::vector<std::map<std::int64_t, std::vector<double>>> m_latencies; // per run: batch -> samples
    std::vector<Row> m_rows;
};

} // namespace lathe::ui

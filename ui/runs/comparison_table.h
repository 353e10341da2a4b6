// ComparisonTable: the numbers of a comparison of stored runs, without widgets (the Compare tab and the
// reports show it). Every summary metric, each run's delta against a baseline run, judged better or worse
// by the metric's direction (lower latency, higher accuracy); then, for each batch size the runs timed,
// whether a run's latency differs from the baseline's by more than noise (engine/experiment/
// run_comparison.h); and the table as text: CSV, or Markdown with names escaped.
#pragma once

#include "engine/store/run_store.h"

#include <QList>
#include <QString>
#include <QStringList>

#include <cstdint>
#include <map>
#include <vector>

namespace lathe::ui {

class ComparisonTable {
  public:
    // How a cell compares with the baseline, by the metric's direction.
    enum class Verdict { None, Better, Worse, NotSignificant };
    struct Cell {
        QString text;
        QString toolTip;
        Verdict verdict = Verdict::None;
    };
    struct Row {
        QString key;             // "accuracy", "latency@b256"
        QString label;           // shown in the header
        std::vector<Cell> cells; // one per run
        bool identical = false;  // every run has the same value (or none)
    };
    // Rows x columns as shown (identical rows hidden or not, runs as columns or, transposed, as rows).
    struct Shown {
        QStringList rowHeaders, columnHeaders;
        std::vector<std::vector<const Cell*>> cells;
        bool transposed = false;
    };

    ComparisonTable() = default;
    // Reads the per-repeat latencies of the runs' final measurements from `store`.
    ComparisonTable(const RunStore& store, std::vector<RunRecord> runs);

    const std::vector<RunRecord>& runs() const { return m_runs; }
    // What makes the comparison weaker, said plainly: runs evaluated on different datasets or splits, no
    // summary metric that every run has.
    QStringList caveats() const;
    // The rows against runs()[baseline] (the last run when out of range).
    std::vector<Row> rows(std::size_t baseline) const;
    // `rows` (which must outlive the result) laid out as shown.
    Shown shown(const std::vector<Row>& rows, bool hideIdentical, bool transposed) const;

    // A header line (the corner, then the column headers), then each row: the cells' texts.
    static QList<QStringList> text(const Shown& shown);
    static QString toCsv(const QList<QStringList>& grid);
    // HTML special characters as entities (a run named "<script>" stays text), pipes and backslashes
    // escaped, line breaks as spaces.
    static QString toMarkdown(const QList<QStringList>& grid);
    static QString markdownCell(const QString& text);
    // "#12 mlp-prune-patterns [...]"
    static QString runHeader(const RunRecord& run);

  private:
    std::vector<RunRecord> m_runs;
    std::vector<std::map<std::int64_t, std::vector<double>>> m_latencies; // per run: batch -> samples
};

} // namespace lathe::ui

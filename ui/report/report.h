// Reports a colleague can read without Lathe: one run or a comparison of several, from the run store, as
// a self-contained HTML file (charts embedded as PNG data), a PDF (Qt's PDF writer; charts as PNG
// images), or Markdown with its chart PNGs in a folder beside it. Content: the runs, the comparison table
// (deltas against the first run, latency significance) or one run's summary, the run details' charts
// (series, per layer, across runs with the Pareto chart), notes and errors, and the methodology
// (environment, seeds, dataset files and hashes, warm-up and repeats, the significance method). Every text
// that comes from a run (names, notes, tags, descriptions) is escaped. Needs a QApplication (any platform,
// offscreen included).
#pragma once

#include "engine/store/run_store.h"

#include <QList>
#include <QString>

namespace lathe::ui {

enum class ReportFormat { Html, Pdf, Markdown };

// From a name ("html", "pdf", "md"/"markdown") or a file's extension (".html", ".htm", ".pdf", ".md");
// ConfigError naming what was given otherwise.
ReportFormat reportFormatFromName(const QString& name);
ReportFormat reportFormatForPath(const QString& path);

// Writes the report of `runIds` (in that order; the first is the comparison's baseline) to `path`.
// Nothing is left half-written: the file is written aside and renamed into place (a Markdown report's
// images go to "<name>_files/" beside it first). ConfigError for a run id not in the store; Error naming
// the path when it cannot be written.
void writeReport(const RunStore& store, const QList<qint64>& runIds, const QString& path, ReportFormat format);

} // namespace lathe::ui

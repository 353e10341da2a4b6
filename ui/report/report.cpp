// Reports: the content is assembled once as blocks (headings, paragraphs, tables, figures) and written
// as HTML (figures as data URIs), as a QTextDocument printed to PDF (figures as document resources), or as
// Markdown (figures as PNG files beside it).
#include "ui/report/report.h"

#include "engine/core/errors.h"
#include "ui/charts/chart_view.h"
#include "ui/charts/layer_charts_panel.h"
#include "ui/charts/live_dashboard.h"
#include "ui/charts/pareto_chart.h"
#include "ui/charts/roofline_chart.h"
#include "ui/charts/runs_charts_panel.h"
#include "ui/devices/devices_panel.h"
#include "ui/runs/comparison_table.h"
#include "ui/runs/run_details.h"

#include <qcustomplot.h>

#include <QBuffer>
#include <QCoreApplication>
#include <QDateTime>
#include <QDir>
#include <QFileInfo>
#include <QImage>
#include <QPageLayout>
#include <QPageSize>
#include <QPdfWriter>
#include <QSaveFile>
#include <QTemporaryDir>
#include <QTextDocument>

#include <nlohmann/json.hpp>

#include <cmath>
#include <variant>

namespace lathe::ui {

namespace {

QString tr(const char* text) { return QCoreApplication::translate("Report", text); }

constexpr int kChartWidth = 1000, kChartHeight = 460;

struct Heading {
    int level;
    QString text;
};
struct Paragraph {
    QString text;
};
// One cell per column; `verdicts` (optional) tints cells in HTML and PDF.
struct Table {
    QList<QStringList> grid; // the first line is the header
    std::vector<std::vector<ComparisonTable::Verdict>> verdicts;
};
struct Figure {
    QString caption;
    QByteArray png;
};
using Block = std::variant<Heading, Paragraph, Table, Figure>;

QString qs(const std::string& s) { return QString::fromStdString(s); }

QString formatTime(double unixS) {
    return unixS > 0 ? QDateTime::fromSecsSinceEpoch(static_cast<qint64>(unixS)).toString(Qt::ISODate) : QStringLiteral("-");
}

QByteArray chartPng(ChartView* view) {
    QPixmap pixmap = view->plot()->toPixmap(kChartWidth, kChartHeight, 1.0);
    QByteArray bytes;
    QBuffer buffer(&bytes);
    buffer.open(QIODevice::WriteOnly);
    pixmap.save(&buffer, "PNG");
    return bytes;
}

// Every chart the run details draw for these runs, in tab order.
std::vector<Figure> charts(const RunStore& store, const QList<qint64>& runIds) {
    RunDetails details;
    details.setAttribute(Qt::WA_DontShowOnScreen);
    details.resize(1400, 1000);
    details.show(); // laid out, never on screen
    details.showRuns(store, runIds);
    std::vector<Figure> out;
    for (ChartView* view : details.dashboard()->charts()) out.push_back({view->title(), chartPng(view)});
    for (const QString& id : details.layerCharts()->chartIds()) {
        ChartView* view = details.layerCharts()->chart(id);
        out.push_back({view->title(), chartPng(view)});
    }
    RunsChartsPanel* across = details.runsCharts();
    if (!across->pareto()->isHidden())
        out.push_back({across->pareto()->view()->title() + QStringLiteral(". ") + across->pareto()->frontLabel()->text(),
                       chartPng(across->pareto()->view())});
    if (!across->roofline()->isHidden())
        out.push_back({across->roofline()->view()->title() + QStringLiteral(". ") + across->roofline()->noteLabel()->text(),
                       chartPng(across->roofline()->view())});
    for (const QString& id : across->chartIds()) {
        ChartView* view = across->chart(id);
        out.push_back({view->title(), chartPng(view)});
    }
    details.hide();
    return out;
}

QString jsonText(const nlohmann::json& j, const char* key) {
    if (!j.is_object() || !j.contains(key)) return {};
    const auto& v = j.at(key);
    return v.is_string() ? qs(v.get<std::string>()) : qs(v.dump());
}

// What a reader needs to reproduce or judge the figures, per run.
std::vector<Block> methodology(const std::vector<RunRecord>& runs) {
    std::vector<Block> out;
    out.push_back(Heading{2, tr("Methodology")});
    out.push_back(Paragraph{tr(
        "Latency is the median of the timed forwards of the final measurement after warm-up forwards (the batch "
        "size listed first in the experiment's measure section is the one the plain keys describe), with a 95% "
        "percentile-bootstrap interval of the median (2000 resamples). A latency difference between two runs is the "
        "difference of their medians with a 95% percentile-bootstrap interval (each run resampled independently) "
        "and the two-sided Mann-Whitney U p-value (normal approximation, tie- and continuity-corrected); it is "
        "called significant when the interval excludes zero. Repeats are treated as independent draws. Accuracy is "
        "top-1 on the evaluated split.")});
    for (const RunRecord& r : runs) {
        const auto config = nlohmann::json::parse(r.configJson, nullptr, false);
        const auto env = nlohmann::json::parse(r.environmentJson, nullptr, false);
        QList<QStringList> grid{{tr("item"), tr("value")}};
        grid << QStringList{tr("seed"), jsonText(config, "seed")};
        if (config.is_object() && config.contains("dataset")) grid << QStringList{tr("dataset"), jsonText(config, "dataset")};
        if (config.is_object() && config.contains("baseline")) grid << QStringList{tr("baseline"), jsonText(config, "baseline")};
        if (config.is_object() && config.contains("measure"))
            grid << QStringList{tr("measurement (warm-up, repeats, batch sizes)"), jsonText(config, "measure")};
        if (env.is_object()) {
            grid << QStringList{tr("Lathe"), jsonText(env, "lathe_version") + QStringLiteral(" (") + jsonText(env, "git_revision") +
                                                     QStringLiteral(", ") + jsonText(env, "build_type") + QStringLiteral(")")};
            if (env.contains("device") && env.at("device").is_object()) {
                const auto& d = env.at("device");
                grid << QStringList{tr("device"), jsonText(d, "name") + QStringLiteral(" — ") + jsonText(d, "runtime_version")};
            }
            grid << QStringList{tr("CPU"), jsonText(env, "cpu_model") + QStringLiteral(", ") + jsonText(env, "cpu_cores") +
                                              tr(" cores")};
            grid << QStringList{tr("operating system"), jsonText(env, "os")};
            if (env.contains("dataset_files") && env.at("dataset_files").is_array())
                for (const auto& f : env.at("dataset_files"))
                    grid << QStringList{tr("dataset file"), jsonText(f, "path") + QStringLiteral("  sha256 ") + jsonText(f, "sha256")};
            grid << QStringList{tr("captured at"), jsonText(env, "captured_at")};
        }
        out.push_back(Heading{3, ComparisonTable::runHeader(r)});
        out.push_back(Table{grid, {}});
    }
    return out;
}

std::vector<Block> content(const RunStore& store, const QList<qint64>& runIds) {
    std::vector<RunRecord> runs;
    for (qint64 id : runIds) {
        auto r = store.run(id);
        if (!r) throw ConfigError("report: no run " + std::to_string(id) + " in " + store.path());
        runs.push_back(std::move(*r));
    }
    if (runs.empty()) throw ConfigError("report: no run to report on");
    std::vector<Block> out;
    out.push_back(Heading{1, runs.size() == 1 ? tr("Lathe report: %1").arg(ComparisonTable::runHeader(runs.front()))
                                              : tr("Lathe report: %1 runs compared").arg(runs.size())});
    out.push_back(Paragraph{tr("Generated %1 by Lathe %2 from %3.")
                                .arg(QDateTime::currentDateTime().toString(Qt::ISODate), DevicesPanel::engineVersion(),
                                     qs(store.path()))});

    QList<QStringList> list{{tr("run"), tr("experiment"), tr("status"), tr("model"), tr("dataset"), tr("device"),
                             tr("steps"), tr("tags"), tr("finished")}};
    for (const RunRecord& r : runs) {
        QStringList tags;
        for (const auto& t : r.tags) tags << qs(t);
        list << QStringList{ComparisonTable::runHeader(r), qs(r.experimentName), qs(r.status), qs(r.model), qs(r.dataset),
                            qs(r.device), qs(r.strategyChain), tags.join(QStringLiteral(", ")), formatTime(r.finishedAt)};
    }
    out.push_back(Heading{2, tr("Runs")});
    out.push_back(Table{list, {}});

    const ComparisonTable comparison(store, runs);
    const auto rows = comparison.rows(0);
    const auto shown = comparison.shown(rows, runs.size() > 1, false);
    Table table{ComparisonTable::text(shown), {}};
    for (const auto& line : shown.cells) {
        table.verdicts.emplace_back();
        for (const auto* c : line) table.verdicts.back().push_back(c->verdict);
    }
    out.push_back(Heading{2, runs.size() > 1 ? tr("Comparison") : tr("Summary")});
    for (const QString& caveat : comparison.caveats()) out.push_back(Paragraph{caveat});
    if (runs.size() > 1)
        out.push_back(Paragraph{tr("Deltas against %1 (green better, red worse, by each metric's direction; grey: "
                                   "a latency difference within noise). Rows equal for every run are left out.")
                                    .arg(ComparisonTable::runHeader(runs.front()))});
    out.push_back(std::move(table));

    out.push_back(Heading{2, tr("Charts")});
    for (Figure& f : charts(store, runIds)) out.push_back(std::move(f));

    bool anyNote = false;
    for (const RunRecord& r : runs) {
        if (r.notes.empty() && r.error.empty()) continue;
        if (!anyNote) out.push_back(Heading{2, tr("Notes and errors")});
        anyNote = true;
        QList<QStringList> grid{{tr("key"), tr("text")}};
        if (!r.error.empty()) grid << QStringList{tr("error"), qs(r.error)};
        for (const auto& [k, v] : r.notes) grid << QStringList{qs(k), qs(v)};
        out.push_back(Heading{3, ComparisonTable::runHeader(r)});
        out.push_back(Table{grid, {}});
    }
    for (Block& b : methodology(runs)) out.push_back(std::move(b));
    return out;
}

QString verdictClass(ComparisonTable::Verdict v) {
    switch (v) {
    case ComparisonTable::Verdict::Better: return QStringLiteral(" class=\"better\"");
    case ComparisonTable::Verdict::Worse: return QStringLiteral(" class=\"worse\"");
    case ComparisonTable::Verdict::NotSignificant: return QStringLiteral(" class=\"ns\"");
    case ComparisonTable::Verdict::None: break;
    }
    return {};
}

// HTML for a browser (`imageSource` gives each figure's src) or for QTextDocument (which ignores CSS
// classes on cells, so the tints are also given as bgcolor).
QString toHtml(const std::vector<Block>& blocks, const std::function<QString(int, const Figure&)>& imageSource,
               int imageWidth) {
    QString title;
    QString body;
    int figure = 0;
    for (const Block& b : blocks) {
        if (const auto* h = std::get_if<Heading>(&b)) {
            if (title.isEmpty()) title = h->text;
            body += QStringLiteral("<h%1>%2</h%1>\n").arg(h->level).arg(h->text.toHtmlEscaped());
        } else if (const auto* p = std::get_if<Paragraph>(&b)) {
            body += QStringLiteral("<p>%1</p>\n").arg(p->text.toHtmlEscaped());
        } else if (const auto* t = std::get_if<Table>(&b)) {
            body += QStringLiteral("<table border=\"1\" cellspacing=\"0\" cellpadding=\"3\">\n");
            for (int r = 0; r < t->grid.size(); ++r) {
                body += QStringLiteral("<tr>");
                for (int c = 0; c < t->grid[r].size(); ++c) {
                    const QString text = t->grid[r][c].toHtmlEscaped();
                    if (r == 0 || c == 0) {
                        body += QStringLiteral("<th>%1</th>").arg(text);
                        continue;
                    }
                    const std::size_t vr = static_cast<std::size_t>(r - 1), vc = static_cast<std::size_t>(c - 1);
                    const auto v = vr < t->verdicts.size() && vc < t->verdicts[vr].size() ? t->verdicts[vr][vc]
                                                                                          : ComparisonTable::Verdict::None;
                    const QString bg = v == ComparisonTable::Verdict::Better  ? QStringLiteral(" bgcolor=\"#cdeecd\"")
                                       : v == ComparisonTable::Verdict::Worse ? QStringLiteral(" bgcolor=\"#f6d2d2\"")
                                                                              : QString();
                    body += QStringLiteral("<td%1%2>%3</td>").arg(verdictClass(v), bg, text);
                }
                body += QStringLiteral("</tr>\n");
            }
            body += QStringLiteral("</table>\n");
        } else if (const auto* f = std::get_if<Figure>(&b)) {
            // Paragraphs rather than <figure>, which QTextDocument (the PDF) does not lay out.
            body += QStringLiteral("<p class=\"figure\"><img src=\"%1\" width=\"%2\" alt=\"%3\"></p>\n"
                                   "<p class=\"caption\"><i>%4</i></p>\n")
                        .arg(imageSource(figure, *f))
                        .arg(imageWidth)
                        .arg(f->caption.toHtmlEscaped(), f->caption.toHtmlEscaped());
            ++figure;
        }
    }
    return QStringLiteral("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%1</title>\n<style>\n"
                          "body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em;color:#222}\n"
                          "table{border-collapse:collapse;margin:0.5em 0;font-size:0.9em}\n"
                          "th,td{border:1px solid #bbb;padding:3px 6px;text-align:right}th{background:#eee}\n"
                          "td.better{background:#cdeecd}td.worse{background:#f6d2d2}td.ns{color:#888}\n"
                          "p.figure{margin:1em 0 0 0}img{max-width:100%;height:auto}p.caption{font-size:0.9em;color:#555}\n"
                          "</style></head><body>\n%2</body></html>\n")
        .arg(title.toHtmlEscaped(), body);
}

// Markdown text outside tables: HTML special characters as entities and Markdown's own marks escaped.
QString markdownText(const QString& s) {
    QString out;
    for (QChar c : s.toHtmlEscaped()) {
        if (QStringLiteral("\\`*_[]#|").contains(c)) out += QLatin1Char('\\');
        out += c == QLatin1Char('\n') ? QLatin1Char(' ') : c;
    }
    return out;
}

QString toMarkdown(const std::vector<Block>& blocks, const QString& imageFolder) {
    QString out;
    int figure = 0;
    for (const Block& b : blocks) {
        if (const auto* h = std::get_if<Heading>(&b)) {
            out += QString(h->level, QLatin1Char('#')) + QLatin1Char(' ') + markdownText(h->text) + QStringLiteral("\n\n");
        } else if (const auto* p = std::get_if<Paragraph>(&b)) {
            out += markdownText(p->text) + QStringLiteral("\n\n");
        } else if (const auto* t = std::get_if<Table>(&b)) {
            out += ComparisonTable::toMarkdown(t->grid) + QLatin1Char('\n');
        } else if (const auto* f = std::get_if<Figure>(&b)) {
            out += QStringLiteral("![%1](%2/chart-%3.png)\n\n").arg(markdownText(f->caption), imageFolder).arg(++figure);
        }
    }
    return out;
}

void commitOrThrow(QSaveFile& file, const QString& path) {
    if (!file.commit()) throw Error("report: cannot write " + path.toStdString() + ": " + file.errorString().toStdString());
}

} // namespace

ReportFormat reportFormatFromName(const QString& name) {
    const QString n = name.toLower();
    if (n == QLatin1String("html") || n == QLatin1String("htm")) return ReportFormat::Html;
    if (n == QLatin1String("pdf")) return ReportFormat::Pdf;
    if (n == QLatin1String("md") || n == QLatin1String("markdown")) return ReportFormat::Markdown;
    throw ConfigError("report format \"" + name.toStdString() + "\": expected html, pdf or md");
}

ReportFormat reportFormatForPath(const QString& path) { return reportFormatFromName(QFileInfo(path).suffix()); }

void writeReport(const RunStore& store, const QList<qint64>& runIds, const QString& path, ReportFormat format) {
    const std::vector<Block> blocks = content(store, runIds);
    const QFileInfo target(path);
    if (!target.absoluteDir().exists())
        throw Error("report: cannot write " + path.toStdString() + ": the folder " +
                    target.absolutePath().toStdString() + " does not exist");
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly))
        throw Error("report: cannot write " + path.toStdString() + ": " + file.errorString().toStdString());

    if (format == ReportFormat::Html) {
        file.write(toHtml(
                       blocks,
                       [](int, const Figure& f) {
                           return QStringLiteral("data:image/png;base64,") + QString::fromLatin1(f.png.toBase64());
                       },
                       kChartWidth * 2 / 3)
                       .toUtf8());
        commitOrThrow(file, path);
        return;
    }
    if (format == ReportFormat::Pdf) {
        QTextDocument doc;
        int n = 0;
        for (const Block& b : blocks)
            if (const auto* f = std::get_if<Figure>(&b))
                doc.addResource(QTextDocument::ImageResource, QUrl(QStringLiteral("chart-%1.png").arg(n++)),
                                QImage::fromData(f->png, "PNG"));
        // The page's printable width at 150 dpi is about 1060 pixels.
        doc.setHtml(toHtml(blocks, [](int i, const Figure&) { return QStringLiteral("chart-%1.png").arg(i); }, kChartWidth));
        QPdfWriter writer(&file);
        writer.setPageSize(QPageSize(QPageSize::A4));
        writer.setPageMargins(QMarginsF(15, 15, 15, 15), QPageLayout::Millimeter);
        writer.setResolution(150);
        writer.setTitle(QStringLiteral("Lathe report"));
        writer.setCreator(QStringLiteral("Lathe ") + DevicesPanel::engineVersion());
        doc.setPageSize(writer.pageLayout().paintRectPixels(writer.resolution()).size());
        doc.print(&writer);
        commitOrThrow(file, path);
        return;
    }
    // Markdown: the images into a fresh folder beside the file, swapped in just before the text is.
    const QString folderName = target.completeBaseName() + QStringLiteral("_files");
    const QString folder = target.absoluteDir().filePath(folderName);
    QTemporaryDir staging(target.absoluteDir().filePath(folderName + QStringLiteral(".XXXXXX")));
    if (!staging.isValid())
        throw Error("report: cannot write " + path.toStdString() + ": cannot create a folder beside it");
    int n = 0;
    for (const Block& b : blocks) {
        if (const auto* f = std::get_if<Figure>(&b)) {
            QSaveFile image(QDir(staging.path()).filePath(QStringLiteral("chart-%1.png").arg(++n)));
            if (!image.open(QIODevice::WriteOnly) || image.write(f->png) != f->png.size() || !image.commit())
                throw Error("report: cannot write the images of " + path.toStdString() + ": " + image.errorString().toStdString());
        }
    }
    file.write(toMarkdown(blocks, folderName).toUtf8());
    if (QFileInfo::exists(folder) && !QDir(folder).removeRecursively())
        throw Error("report: cannot replace " + folder.toStdString());
    if (!QDir().rename(staging.path(), folder)) throw Error("report: cannot move the images to " + folder.toStdString());
    staging.setAutoRemove(false);
    QFile::setPermissions(folder, QFile::permissions(target.absolutePath())); // not the staging folder's 0700
    commitOrThrow(file, path);
}

} // namespace lathe::ui

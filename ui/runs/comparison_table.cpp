// ComparisonTable: summary metrics with deltas against a baseline, latency significance rows, and the table
// as text (CSV, Markdown).
#include "ui/runs/comparison_table.h"

#include "engine/core/metric_keys.h"
#include "engine/experiment/run_comparison.h"

#include <QCoreApplication>

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>

namespace lathe::ui {

namespace {

QString tr(const char* text) {
    return QCoreApplication::translate("ComparisonTable", text);
}

QString number(double v) {
    return QString::number(v, 'g', 6);
}

QString signedNumber(double v, int digits = 6) {
    return (v >= 0 ? QStringLiteral("+") : QString()) + QString::number(v, 'g', digits);
}

// A CSV field, quoted when it holds a separator, a quote or a line break.
QString csvField(const QString& s) {
    if (!s.contains(QLatin1Char(',')) && !s.contains(QLatin1Char('"')) && !s.contains(QLatin1Char('\n')) &&
        !s.contains(QLatin1Char('\r')))
        return s;
    QString out = s;
    out.replace(QLatin1String("\""), QLatin1String("\"\""));
    return QLatin1Char('"') + out + QLatin1Char('"');
}

} // namespace

QString ComparisonTable::runHeader(const RunRecord& r) {
    return QStringLiteral("#%1 %2").arg(r.id).arg(QString::fromStdString(r.name));
}

QString ComparisonTable::markdownCell(const QString& s) {
    QString out = s.toHtmlEscaped();
    out.replace(QLatin1Char('\\'), QLatin1String("\\\\"));
    out.replace(QLatin1Char('|'), QLatin1String("\\|"));
    out.replace(QLatin1Char('\r'), QLatin1Char(' '));
    out.replace(QLatin1Char('\n'), QLatin1Char(' '));
    return out;
}

ComparisonTable::ComparisonTable(const RunStore& store, std::vector<RunRecord> runs) : m_runs(std::move(runs)) {
    for (const RunRecord& r : m_runs)
        m_latencies.push_back(finalLatencySamples(store, r.id));
}

QStringList ComparisonTable::caveats() const {
    QStringList out;
    if (m_runs.size() < 2) return out;
    std::set<std::string> datasets;
    for (const RunRecord& r : m_runs) datasets.insert(r.dataset);
    if (datasets.size() > 1) {
        QStringList names;
        for (const std::string& d : datasets) names << QString::fromStdString(d.empty() ? "(none)" : d);
        out << tr("The runs were evaluated on different datasets (%1): their accuracies do not compare.")
                   .arg(names.join(QStringLiteral(", ")));
    }
    std::set<std::string> common;
    for (const auto& [k, v] : m_runs.front().summary) common.insert(k);
    for (const RunRecord& r : m_runs)
        std::erase_if(common, [&](const std::string& k) { return !r.summary.count(k); });
    if (common.empty()) out << tr("No summary metric is stored for every run: each row below is missing some runs.");
    return out;
}

std::vector<ComparisonTable::Row> ComparisonTable::rows(std::size_t baseline) const {
    std::vector<Row> rows;
    const int base = static_cast<int>(std::min(baseline, m_runs.empty() ? 0 : m_runs.size() - 1));
    const std::size_t n = m_runs.size();
    std::set<std::string> all;
    for (const RunRecord& r : m_runs)
        for (const auto& [k, v] : r.summary)
            all.insert(k);
    for (const std::string& key : orderMetricKeys(all)) {
        Row row{QString::fromStdString(key), QString::fromStdString(key), std::vector<Cell>(n), true};
        const MetricDirection dir = metricDirection(key);
        auto valueOf = [&](std::size_t i) {
            auto it = m_runs[i].summary.find(key);
            return it == m_runs[i].summary.end() ? std::optional<double>{} : std::optional<double>{it->second};
        };
        const auto baseValue = valueOf(static_cast<std::size_t>(base));
        auto same = [](const std::optional<double>& a, const std::optional<double>& b) {
            return a == b || (a && b && std::isnan(*a) && std::isnan(*b));
        };
        for (std::size_t i = 0; i < n; ++i) {
            const auto v = valueOf(i);
            row.identical = row.identical && same(v, valueOf(0));
            Cell& c = row.cells[i];
            if (!v) continue;
            c.text = number(*v);
            if (static_cast<int>(i) == base || !baseValue || !std::isfinite(*v) || !std::isfinite(*baseValue)) continue;
            const double d = *v - *baseValue;
            c.text += QStringLiteral(" (%1").arg(signedNumber(d));
            if (*baseValue != 0)
                c.text += QStringLiteral(", %1%").arg(signedNumber(100.0 * d / std::fabs(*baseValue), 3));
            c.text += QLatin1Char(')');
            if (d != 0 && dir != MetricDirection::Neutral)
                c.verdict = (d > 0) == (dir == MetricDirection::HigherIsBetter) ? Verdict::Better : Verdict::Worse;
        }
        rows.push_back(std::move(row));
    }

    // Latency significance at every batch size the baseline and another run timed.
    std::set<std::int64_t> batches;
    for (const auto& l : m_latencies)
        for (const auto& [b, samples] : l)
            batches.insert(b);
    auto noisy = [&](std::size_t i) {
        auto it = m_runs[i].summary.find("latency_noisy");
        return it != m_runs[i].summary.end() && it->second != 0;
    };
    for (std::int64_t b : batches) {
        const auto& baseSamples = m_latencies[static_cast<std::size_t>(base)];
        auto bit = baseSamples.find(b);
        if (bit == baseSamples.end() || bit->second.size() < 2) continue;
        Row row{QStringLiteral("latency@b%1").arg(b), tr("latency @b%1 vs baseline (95% CI, p)").arg(b),
                std::vector<Cell>(n), false};
        bool any = false;
        for (std::size_t i = 0; i < n; ++i) {
            auto it = m_latencies[i].find(b);
            if (it == m_latencies[i].end() || it->second.size() < 2) continue;
            Cell& c = row.cells[i];
            if (static_cast<int>(i) == base) {
                c.text = tr("baseline, %1 repeats").arg(qlonglong(it->second.size()));
                continue;
            }
            const LatencyDifference d = compareLatency(bit->second, it->second, 1 + static_cast<std::uint64_t>(b));
            any = true;
            c.text = QStringLiteral("%1 ms (%2%) [%3, %4], p = %5")
                         .arg(signedNumber(d.delta, 3), signedNumber(100.0 * d.relative, 3),
                              QString::number(d.ciLow, 'g', 3), QString::number(d.ciHigh, 'g', 3),
                              QString::number(d.pValue, 'g', 2));
            c.toolTip = tr("median %1 ms against %2 ms; difference of medians with its 95% bootstrap interval "
                           "(%3 and %4 timed forwards) and the two-sided Mann-Whitney U p-value")
                            .arg(number(d.medianB), number(d.medianA))
                            .arg(qlonglong(d.countB))
                            .arg(qlonglong(d.countA));
            if (d.significant) {
                c.verdict = d.delta < 0 ? Verdict::Better : Verdict::Worse;
            } else {
                c.verdict = Verdict::NotSignificant;
                c.text += tr(": not significant");
            }
            if (noisy(i) || noisy(static_cast<std::size_t>(base))) {
                c.text += tr(" (noisy)");
                c.toolTip += tr("\nA run's latency is flagged noisy: the median's own interval is wide.");
            }
        }
        if (any) rows.push_back(std::move(row));
    }
    return rows;
}

ComparisonTable::Shown ComparisonTable::shown(const std::vector<Row>& all, bool hideIdentical, bool transposed) const {
    Shown out;
    QStringList& rowHeaders = out.rowHeaders;
    QStringList& columnHeaders = out.columnHeaders;
    auto& cells = out.cells;
    out.transposed = transposed;
    std::vector<const Row*> rows;
    for (const Row& r : all)
        if (!(hideIdentical && r.identical)) rows.push_back(&r);
    QStringList runHeaders;
    for (const RunRecord& r : m_runs)
        runHeaders << runHeader(r);
    QStringList metricHeaders;
    for (const Row* r : rows)
        metricHeaders << r->label;
    cells.clear();
    if (!transposed) {
        rowHeaders = metricHeaders;
        columnHeaders = runHeaders;
        for (const Row* r : rows) {
            cells.emplace_back();
            for (const Cell& c : r->cells)
                cells.back().push_back(&c);
        }
    } else {
        rowHeaders = runHeaders;
        columnHeaders = metricHeaders;
        for (std::size_t i = 0; i < m_runs.size(); ++i) {
            cells.emplace_back();
            for (const Row* r : rows)
                cells.back().push_back(&r->cells[i]);
        }
    }
    return out;
}

QList<QStringList> ComparisonTable::text(const Shown& s) {
    QList<QStringList> grid{QStringList{s.transposed ? tr("run") : tr("metric")} + s.columnHeaders};
    for (int r = 0; r < s.rowHeaders.size(); ++r) {
        QStringList line{s.rowHeaders[r]};
        for (const Cell* c : s.cells[static_cast<std::size_t>(r)])
            line << c->text;
        grid << line;
    }
    return grid;
}

QString ComparisonTable::toCsv(const QList<QStringList>& grid) {
    QString out;
    for (const QStringList& line : grid) {
        QStringList fields;
        for (const QString& f : line)
            fields << csvField(f);
        out += fields.join(QLatin1Char(',')) + QLatin1Char('\n');
    }
    return out;
}

QString ComparisonTable::toMarkdown(const QList<QStringList>& grid) {
    QString out;
    for (int i = 0; i < grid.size(); ++i) {
        QStringList cells;
        for (const QString& f : grid[i])
            cells << markdownCell(f);
        out += QStringLiteral("| %1 |\n").arg(cells.join(QLatin1String(" | ")));
        if (i == 0) out += QStringLiteral("|---%1|\n").arg(QStringLiteral("|---:").repeated(int(grid[i].size()) - 1));
    }
    return out;
}

} // namespace lathe::ui

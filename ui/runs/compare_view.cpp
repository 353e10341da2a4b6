// CompareView: runs x metrics with deltas against a baseline, significance rows, hide/transpose/copy.
#include "ui/runs/compare_view.h"

#include "engine/core/metric_keys.h"
#include "engine/experiment/run_comparison.h"

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

namespace {

QString number(double v) { return QString::number(v, 'g', 6); }

QString signedNumber(double v, int digits = 6) {
    return (v >= 0 ? QStringLiteral("+") : QString()) + QString::number(v, 'g', digits);
}

QString runHeader(const RunRecord& r) {
    return QStringLiteral("#%1 %2").arg(r.id).arg(QString::fromStdString(r.name));
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

// A Markdown table cell: HTML special characters as entities (a run named "<script>" stays text), pipes
// and backslashes escaped, line breaks as spaces.
QString markdownCell(const QString& s) {
    QString out = s.toHtmlEscaped();
    out.replace(QLatin1Char('\\'), QLatin1String("\\\\"));
    out.replace(QLatin1Char('|'), QLatin1String("\\|"));
    out.replace(QLatin1Char('\r'), QLatin1Char(' '));
    out.replace(QLatin1Char('\n'), QLatin1Char(' '));
    return out;
}

} // namespace

CompareView::CompareView(QWidget* parent)
    : QWidget(parent), m_baseline(new QComboBox(this)), m_hideIdentical(new QCheckBox(tr("Hide identical rows"), this)),
      m_transpose(new QCheckBox(tr("Transpose"), this)), m_note(new QLabel(this)), m_table(new QTableWidget(this)) {
    m_baseline->setObjectName(QStringLiteral("compareBaseline"));
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
    m_runs.clear();
    m_latencies.clear();
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
    m_runs = runs;
    for (const RunRecord& r : m_runs) m_latencies.push_back(finalLatencySamples(store, r.id));
    {
        const QSignalBlocker block(m_baseline);
        for (const RunRecord& r : m_runs) m_baseline->addItem(runHeader(r), QVariant::fromValue<qint64>(r.id));
    }
    rebuild();
}

void CompareView::setBaseline(std::int64_t runId) {
    const int i = m_baseline->findData(QVariant::fromValue<qint64>(runId));
    if (i >= 0) m_baseline->setCurrentIndex(i);
}

std::int64_t CompareView::baselineRunId() const { return m_baseline->currentData().toLongLong(); }

void CompareView::setHideIdentical(bool on) { m_hideIdentical->setChecked(on); }
void CompareView::setTransposed(bool on) { m_transpose->setChecked(on); }

std::vector<CompareView::Row> CompareView::buildRows() const {
    std::vector<Row> rows;
    const int base = std::max(0, m_baseline->currentIndex());
    const std::size_t n = m_runs.size();
    std::set<std::string> all;
    for (const RunRecord& r : m_runs)
        for (const auto& [k, v] : r.summary) all.insert(k);
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
            if (*baseValue != 0) c.text += QStringLiteral(", %1%").arg(signedNumber(100.0 * d / std::fabs(*baseValue), 3));
            c.text += QLatin1Char(')');
            if (d != 0 && dir != MetricDirection::Neutral)
                c.verdict = (d > 0) == (dir == MetricDirection::HigherIsBetter) ? Verdict::Better : Verdict::Worse;
        }
        rows.push_back(std::move(row));
    }

    // Latency significance at every batch size the baseline and another run timed.
    std::set<std::int64_t> batches;
    for (const auto& l : m_latencies)
        for (const auto& [b, samples] : l) batches.insert(b);
    auto noisy = [&](std::size_t i) {
        auto it = m_runs[i].summary.find("latency_noisy");
        return it != m_runs[i].summary.end() && it->second != 0;
    };
    for (std::int64_t b : batches) {
        const auto& baseSamples = m_latencies[static_cast<std::size_t>(base)];
        auto bit = baseSamples.find(b);
        if (bit == baseSamples.end() || bit->second.size() < 2) continue;
        Row row{QStringLiteral("latency@b%1").arg(b),
                tr("latency @b%1 vs baseline (95% CI, p)").arg(b), std::vector<Cell>(n), false};
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
                         .arg(signedNumber(d.delta, 3), signedNumber(100.0 * d.relative, 3), QString::number(d.ciLow, 'g', 3),
                              QString::number(d.ciHigh, 'g', 3), QString::number(d.pValue, 'g', 2));
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

void CompareView::shown(QStringList& rowHeaders, QStringList& columnHeaders,
                        std::vector<std::vector<const Cell*>>& cells) const {
    std::vector<const Row*> rows;
    for (const Row& r : m_rows)
        if (!(m_hideIdentical->isChecked() && r.identical)) rows.push_back(&r);
    QStringList runHeaders;
    for (const RunRecord& r : m_runs) runHeaders << runHeader(r);
    QStringList metricHeaders;
    for (const Row* r : rows) metricHeaders << r->label;
    cells.clear();
    if (!m_transpose->isChecked()) {
        rowHeaders = metricHeaders;
        columnHeaders = runHeaders;
        for (const Row* r : rows) {
            cells.emplace_back();
            for (const Cell& c : r->cells) cells.back().push_back(&c);
        }
    } else {
        rowHeaders = runHeaders;
        columnHeaders = metricHeaders;
        for (std::size_t i = 0; i < m_runs.size(); ++i) {
            cells.emplace_back();
            for (const Row* r : rows) cells.back().push_back(&r->cells[i]);
        }
    }
}

void CompareView::rebuild() {
    m_rows = buildRows();
    QStringList rowHeaders, columnHeaders;
    std::vector<std::vector<const Cell*>> cells;
    shown(rowHeaders, columnHeaders, cells);
    m_table->clear();
    m_table->setRowCount(static_cast<int>(rowHeaders.size()));
    m_table->setColumnCount(static_cast<int>(columnHeaders.size()));
    m_table->setVerticalHeaderLabels(rowHeaders);
    m_table->setHorizontalHeaderLabels(columnHeaders);
    const QColor better(205, 238, 205), worse(246, 210, 210);
    const QColor muted = palette().color(QPalette::Disabled, QPalette::Text);
    for (int r = 0; r < static_cast<int>(cells.size()); ++r) {
        for (int c = 0; c < static_cast<int>(cells[static_cast<std::size_t>(r)].size()); ++c) {
            const Cell* cell = cells[static_cast<std::size_t>(r)][static_cast<std::size_t>(c)];
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
    const int hidden = static_cast<int>(
        std::count_if(m_rows.begin(), m_rows.end(), [this](const Row& r) { return m_hideIdentical->isChecked() && r.identical; }));
    m_note->setText(m_runs.empty() ? QString()
                                   : tr("Deltas against %1; green is better, red worse, by each metric's direction. "
                                        "Latency rows: difference of the medians of every timed forward with its 95% "
                                        "bootstrap interval; grey when the interval contains zero.%2")
                                         .arg(m_baseline->currentText(),
                                              hidden ? tr(" %1 identical rows hidden.").arg(hidden) : QString()));
}

CompareView::Verdict CompareView::verdict(const QString& rowKey, std::int64_t runId) const {
    for (const Row& r : m_rows) {
        if (r.key != rowKey) continue;
        for (std::size_t i = 0; i < m_runs.size(); ++i)
            if (m_runs[i].id == runId) return r.cells[i].verdict;
    }
    return Verdict::None;
}

QList<QStringList> CompareView::shownText() const {
    QStringList rowHeaders, columnHeaders;
    std::vector<std::vector<const Cell*>> cells;
    shown(rowHeaders, columnHeaders, cells);
    QList<QStringList> grid{QStringList{m_transpose->isChecked() ? tr("run") : tr("metric")} + columnHeaders};
    for (int r = 0; r < rowHeaders.size(); ++r) {
        QStringList line{rowHeaders[r]};
        for (const Cell* c : cells[static_cast<std::size_t>(r)]) line << c->text;
        grid << line;
    }
    return grid;
}

QString CompareView::toCsv() const {
    QString out;
    for (const QStringList& line : shownText()) {
        QStringList fields;
        for (const QString& f : line) fields << csvField(f);
        out += fields.join(QLatin1Char(',')) + QLatin1Char('\n');
    }
    return out;
}

QString CompareView::toMarkdown() const {
    QString out;
    const QList<QStringList> grid = shownText();
    for (int i = 0; i < grid.size(); ++i) {
        QStringList cells;
        for (const QString& f : grid[i]) cells << markdownCell(f);
        out += QStringLiteral("| %1 |\n").arg(cells.join(QLatin1String(" | ")));
        if (i == 0) out += QStringLiteral("|---%1|\n").arg(QStringLiteral("|---:").repeated(int(grid[i].size()) - 1));
    }
    return out;
}

} // namespace lathe::ui

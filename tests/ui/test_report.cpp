// Reports from a temporary run store with hostile names: HTML (self-contained, names escaped, charts
// embedded, comparison tinted, methodology with dataset hashes), Markdown (escaped, a PNG per chart in the
// folder beside it), PDF (several pages; the first, rendered to PNG with pdftoppm, is not blank); errors
// name the path or the run and leave nothing half-written; `lathe --report` writes the same without a
// window.
#include "engine/core/errors.h"
#include "engine/store/run_store.h"
#include "ui/report/report.h"

#include "tests/support/test_support.h"

#include <QDir>
#include <QFile>
#include <QImage>
#include <QProcess>
#include <QStandardPaths>
#include <QtTest>

#include <cmath>

using namespace lathe;
using namespace lathe::ui;

namespace {
const char* kHostile = "<script>alert(1)</script> | pruned";

QString readAll(const QString& path) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) return {};
    return QString::fromUtf8(f.readAll());
}
} // namespace

class TestReport : public QObject {
    Q_OBJECT
    QString m_dir, m_db;
    std::int64_t m_base = 0, m_pruned = 0;

private slots:
    void initTestCase() {
        m_dir = QString::fromStdString(test::tempDir());
        m_db = m_dir + QStringLiteral("/report.sqlite");
        RunStore store(m_db.toStdString());
        auto add = [&](const std::string& name, double scale, double accuracy, const std::string& chain) {
            NewRun r;
            r.name = name;
            r.model = "mlp-784-256-128-10";
            r.dataset = "fashion-mnist";
            r.device = "cpu";
            r.strategyChain = chain;
            r.tags = {"<b>tag</b>"};
            r.configJson = R"({"name":"x","seed":42,"measure":{"batch_sizes":[1],"warmup":10,"repeats":60}})";
            r.environmentJson = R"({"lathe_version":"0.1.0","git_revision":"abc1234","cpu_model":"Test CPU","cpu_cores":2,)"
                                R"("os":"Linux","dataset_files":[{"path":"/data/t10k-images-idx3-ubyte.gz","sha256":"cc1d090a38ace84d"}]})";
            const auto id = store.createRun(r);
            store.startRun(id);
            store.finishRun(id, run_status::kDone);
            std::vector<MetricSample> samples;
            for (int i = 0; i < 60; ++i)
                samples.push_back(makeSample(id, "latency_ms/b1", i, i, scale * (1.0 + 0.05 * std::sin(i * 1.7))));
            for (int step = 1; step <= 50; ++step) samples.push_back(makeSample(id, "loss", step, step, 2.0 / step));
            store.appendSamples(samples);
            store.setSummary(id, {{"accuracy", accuracy}, {"latency_p50_ms", scale}, {"latency_p99_ms", scale * 1.1},
                                  {"model_bytes", 940584}, {"batch_size", 1}});
            store.addLayerStats(id, std::vector<LayerStat>{{"layers.0.weight", "sparsity", scale < 1 ? 0.5 : 0.0},
                                                           {"layers.2.weight", "sparsity", scale < 1 ? 0.5 : 0.0}});
            store.setNotes(id, {{"sparse_paths", "layers.0.weight: csr | dense <i>"}});
            return id;
        };
        m_base = add("dense", 1.0, 0.88, "train > finetune");
        m_pruned = add(kHostile, 0.8, 0.87, "train > prune.magnitude > finetune");
    }

    void htmlIsSelfContainedAndEscaped() {
        auto store = RunStore::openForReading(m_db.toStdString());
        const QString path = m_dir + QStringLiteral("/report.html");
        writeReport(*store, {m_base, m_pruned}, path, ReportFormat::Html);
        const QString html = readAll(path);
        QVERIFY(html.startsWith(QLatin1String("<!DOCTYPE html>")));
        QVERIFY(html.contains(QLatin1String("&lt;script&gt;alert(1)&lt;/script&gt; | pruned")));
        QVERIFY(!html.contains(QLatin1String("<script")));
        QVERIFY(!html.contains(QLatin1String("<b>tag")) && html.contains(QLatin1String("&lt;b&gt;tag")));
        QVERIFY(html.contains(QLatin1String("csr | dense &lt;i&gt;")));
        // Charts as data (series: latency, its CDF, throughput-free here, loss; layers: sparsity, bytes-free;
        // across runs: the Pareto chart), no file they would depend on.
        QVERIFY2(html.count(QLatin1String("src=\"data:image/png;base64,")) >= 4,
                 qPrintable(QString::number(html.count(QLatin1String("data:image/png")))));
        QVERIFY(!html.contains(QLatin1String("src=\"chart-")));
        QVERIFY(html.contains(QLatin1String("class=\"better\""))); // the pruned run's latency
        QVERIFY(html.contains(QLatin1String("class=\"worse\"")));  // and its accuracy
        QVERIFY(html.contains(QLatin1String("Methodology")) && html.contains(QLatin1String("sha256 cc1d090a38ace84d")) &&
                html.contains(QLatin1String("Mann-Whitney")) && html.contains(QLatin1String("&quot;repeats&quot;:60")));
    }

    void markdownEscapesAndWritesItsImages() {
        auto store = RunStore::openForReading(m_db.toStdString());
        const QString path = m_dir + QStringLiteral("/report.md");
        writeReport(*store, {m_base, m_pruned}, path, ReportFormat::Markdown);
        const QString md = readAll(path);
        QVERIFY(md.contains(QLatin1String("&lt;script&gt;alert(1)&lt;/script&gt; \\| pruned")));
        QVERIFY(!md.contains(QLatin1String("<script")));
        const QDir images(m_dir + QStringLiteral("/report_files"));
        const QStringList pngs = images.entryList({QStringLiteral("*.png")}, QDir::Files);
        QVERIFY(pngs.size() >= 4);
        QCOMPARE(md.count(QLatin1String("](report_files/chart-")), pngs.size());
        for (const QString& png : pngs) QVERIFY(!QImage(images.filePath(png)).isNull());
        // Written again: the folder is replaced, not merged; no staging folder stays behind.
        writeReport(*store, {m_base}, path, ReportFormat::Markdown);
        QVERIFY(QDir(m_dir).entryList({QStringLiteral("report_files.*")}, QDir::Dirs).isEmpty());
        QVERIFY(readAll(path).contains(QLatin1String("# Lathe report: \\#")));
    }

    void pdfHasPagesAndAFirstPageThatIsNotBlank() {
        auto store = RunStore::openForReading(m_db.toStdString());
        const QString path = m_dir + QStringLiteral("/report.pdf");
        writeReport(*store, {m_base, m_pruned}, path, ReportFormat::Pdf);
        QFile pdf(path);
        QVERIFY(pdf.open(QIODevice::ReadOnly));
        QVERIFY(pdf.read(5) == "%PDF-");
        pdf.close();
        const QString pdftoppm = QStandardPaths::findExecutable(QStringLiteral("pdftoppm"));
        const QString pdfinfo = QStandardPaths::findExecutable(QStringLiteral("pdfinfo"));
        if (pdftoppm.isEmpty() || pdfinfo.isEmpty()) QSKIP("pdftoppm / pdfinfo (Debian poppler-utils) are not installed");
        QProcess info;
        info.start(pdfinfo, {path});
        QVERIFY(info.waitForFinished(30000));
        const QString infoText = QString::fromUtf8(info.readAllStandardOutput());
        const auto pages = QRegularExpression(QStringLiteral("Pages:\\s+(\\d+)")).match(infoText);
        QVERIFY2(pages.hasMatch() && pages.captured(1).toInt() >= 2, qPrintable(infoText));
        QProcess render;
        render.start(pdftoppm, {QStringLiteral("-png"), QStringLiteral("-r"), QStringLiteral("40"), QStringLiteral("-f"),
                                QStringLiteral("1"), QStringLiteral("-l"), QStringLiteral("1"), path,
                                m_dir + QStringLiteral("/page")});
        QVERIFY(render.waitForFinished(30000));
        const QStringList rendered = QDir(m_dir).entryList({QStringLiteral("page*.png")}, QDir::Files);
        QCOMPARE(rendered.size(), 1);
        const QImage page(QDir(m_dir).filePath(rendered.front()));
        QVERIFY(!page.isNull());
        int dark = 0;
        for (int y = 0; y < page.height(); ++y)
            for (int x = 0; x < page.width(); ++x) dark += qGray(page.pixel(x, y)) < 200 ? 1 : 0;
        QVERIFY2(dark > page.width() * page.height() / 100, qPrintable(QString::number(dark)));
    }

    void errorsNameWhatAndLeaveNothingBehind() {
        auto store = RunStore::openForReading(m_db.toStdString());
        const QString missingFolder = m_dir + QStringLiteral("/no/such/folder/report.html");
        try {
            writeReport(*store, {m_base}, missingFolder, ReportFormat::Html);
            QFAIL("no error for a report in a folder that does not exist");
        } catch (const Error& e) {
            QVERIFY2(QString::fromUtf8(e.what()).contains(missingFolder), e.what());
        }
        QVERIFY(!QFile::exists(missingFolder));
        // An unknown run: refused before anything is written; the report already there stays as it was.
        const QString existing = m_dir + QStringLiteral("/kept.html");
        {
            QFile f(existing);
            QVERIFY(f.open(QIODevice::WriteOnly));
            f.write("old report");
        }
        QVERIFY_THROWS_EXCEPTION(ConfigError, writeReport(*store, {m_base, 999}, existing, ReportFormat::Html));
        QCOMPARE(readAll(existing), QStringLiteral("old report"));
        QVERIFY_THROWS_EXCEPTION(ConfigError, reportFormatFromName(QStringLiteral("docx")));
        QCOMPARE(reportFormatForPath(QStringLiteral("/x/y.PDF")), ReportFormat::Pdf);
    }

    void latheReportWritesWithoutAWindow() {
        const QString path = m_dir + QStringLiteral("/cli.html");
        QProcess p;
        QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
        env.remove(QStringLiteral("QT_QPA_PLATFORM")); // --report picks the offscreen platform itself
        env.remove(QStringLiteral("DISPLAY"));
        p.setProcessEnvironment(env);
        p.start(QStringLiteral(LATHE_GUI), {QStringLiteral("--report"), QString::number(m_base), QString::number(m_pruned),
                                            QStringLiteral("--format"), QStringLiteral("html"), QStringLiteral("-o"), path,
                                            QStringLiteral("--db"), m_db});
        QVERIFY(p.waitForFinished(120000));
        QCOMPARE(p.exitCode(), 0);
        QVERIFY(readAll(path).contains(QLatin1String("&lt;script&gt;")));
        p.start(QStringLiteral(LATHE_GUI), {QStringLiteral("--report"), QStringLiteral("12345"), QStringLiteral("-o"), path,
                                            QStringLiteral("--db"), m_db});
        QVERIFY(p.waitForFinished(120000));
        QCOMPARE(p.exitCode(), 2);
        QVERIFY(p.readAllStandardError().contains("no run 12345"));
    }
};

QTEST_MAIN(TestReport)
#include "test_report.moc"

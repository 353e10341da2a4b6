// lathe: the workbench GUI. Sets up the application (HiDPI, system theme, settings identity), starts
// the engine thread and shows the main window.
#include "app/gui/app_controller.h"
#include "app/gui/main_window.h"
#include "ui/common/icons.h"
#include "ui/settings/app_settings.h"

#include "engine/core/errors.h"
#include "engine/store/run_store.h"
#include "ui/report/report.h"

#include <QApplication>
#include <QCommandLineParser>

#include <cstdio>
#include <cstring>

namespace {

// lathe --report RUN_ID... --format html|pdf|md -o FILE [--db FILE]: the report, no window.
int writeReportAndExit(const QCommandLineParser& parser, const QString& db) {
    const QString output = parser.value(QStringLiteral("o"));
    if (output.isEmpty()) {
        std::fprintf(stderr, "lathe --report: -o FILE is required\n");
        return 2;
    }
    QList<qint64> ids;
    for (const QString& arg : parser.positionalArguments()) {
        bool ok = false;
        const qint64 id = arg.toLongLong(&ok);
        if (!ok || id <= 0) {
            std::fprintf(stderr, "lathe --report: \"%s\" is not a run id\n", qPrintable(arg));
            return 2;
        }
        ids << id;
    }
    if (ids.isEmpty()) {
        std::fprintf(stderr, "lathe --report: give one or more RUN_IDs\n");
        return 2;
    }
    try {
        const auto format = parser.isSet(QStringLiteral("format"))
                                ? lathe::ui::reportFormatFromName(parser.value(QStringLiteral("format")))
                                : lathe::ui::reportFormatForPath(output);
        auto store = lathe::RunStore::openForReading(db.toStdString());
        if (!store) {
            std::fprintf(stderr, "lathe --report: no run database at %s\n", qPrintable(db));
            return 2;
        }
        lathe::ui::writeReport(*store, ids, output, format);
    } catch (const lathe::ConfigError& e) {
        std::fprintf(stderr, "lathe: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "lathe: %s\n", e.what());
        return 1;
    }
    std::printf("%s\n", qPrintable(output));
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    // A report needs no screen: the offscreen platform unless the caller chose one.
    for (int i = 1; i < argc; ++i)
        if (std::strcmp(argv[i], "--report") == 0 && qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM"))
            qputenv("QT_QPA_PLATFORM", "offscreen");
    // Qt 6 scales for HiDPI by default; keep fractional factors (1.25, 1.5) instead of rounding them.
    QApplication::setHighDpiScaleFactorRoundingPolicy(Qt::HighDpiScaleFactorRoundingPolicy::PassThrough);
    QApplication app(argc, argv);
    QApplication::setOrganizationName(QStringLiteral("Lathe"));
    QApplication::setApplicationName(QStringLiteral("lathe"));
    QApplication::setApplicationDisplayName(QStringLiteral("Lathe"));
    QApplication::setApplicationVersion(QStringLiteral(LATHE_VERSION));
    QApplication::setDesktopFileName(QStringLiteral("lathe"));
    QApplication::setWindowIcon(lathe::ui::applicationIcon());

    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral("Lathe: a workbench for inference-optimization experiments"));
    parser.addHelpOption();
    parser.addVersionOption();
    QCommandLineOption dbOption(QStringLiteral("db"), QStringLiteral("Run database (default: the one in Settings)."), QStringLiteral("FILE"));
    QCommandLineOption runOption(QStringLiteral("run"), QStringLiteral("Run the opened experiment right away."));
    QCommandLineOption reportOption(QStringLiteral("report"),
                                    QStringLiteral("Write a report of the RUN_IDs given as arguments and exit (no window)."));
    QCommandLineOption formatOption(QStringLiteral("format"), QStringLiteral("Report format: html, pdf or md (default: from -o's extension)."),
                                    QStringLiteral("FORMAT"));
    QCommandLineOption outputOption(QStringList{QStringLiteral("o"), QStringLiteral("output")},
                                    QStringLiteral("The report file to write."), QStringLiteral("FILE"));
    parser.addOption(dbOption);
    parser.addOption(runOption);
    parser.addOption(reportOption);
    parser.addOption(formatOption);
    parser.addOption(outputOption);
    parser.addPositionalArgument(QStringLiteral("experiment"),
                                 QStringLiteral("An experiment file to open (with --report: the run ids to report on)."),
                                 QStringLiteral("[experiment.json | RUN_ID...]"));
    parser.process(app);

    const QString db = parser.isSet(dbOption) ? parser.value(dbOption) : lathe::ui::AppSettings::databasePath();
    if (parser.isSet(reportOption)) return writeReportAndExit(parser, db);
    lathe::app::AppController controller(db);
    lathe::app::MainWindow window(&controller);
    window.show();
    if (!parser.positionalArguments().isEmpty() && window.openExperiment(parser.positionalArguments().front()) &&
        parser.isSet(runOption)) {
        window.runExperiment();
    }
    const int rc = QApplication::exec();
    controller.shutdown();
    return rc;
}

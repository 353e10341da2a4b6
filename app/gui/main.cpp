// lathe: the workbench GUI. Sets up the application (HiDPI, system theme, settings identity), starts
// the engine thread and shows the main window.
#include "app/gui/app_controller.h"
#include "app/gui/main_window.h"
#include "ui/common/icons.h"
#include "ui/settings/app_settings.h"

#include <QApplication>
#include <QCommandLineParser>

int main(int argc, char** argv) {
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
    parser.addOption(dbOption);
    parser.addOption(runOption);
    parser.addPositionalArgument(QStringLiteral("experiment"), QStringLiteral("An experiment file to open."), QStringLiteral("[experiment.json]"));
    parser.process(app);

    const QString db = parser.isSet(dbOption) ? parser.value(dbOption) : lathe::ui::AppSettings::databasePath();
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

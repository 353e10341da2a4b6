// lathe: the workbench GUI.
#include <QApplication>
#include <QLabel>

int main(int argc, char** argv) {
    QApplication app(argc, argv);
    QLabel label(QStringLiteral("Lathe %1").arg(QStringLiteral(LATHE_VERSION)));
    label.show();
    return app.exec();
}

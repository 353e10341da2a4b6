// AppSettings: QSettings keys and defaults.
#include "ui/settings/app_settings.h"

#include "engine/store/run_store.h"

#include <QSettings>

namespace lathe::ui {

QString AppSettings::defaultDatabasePath() { return QString::fromStdString(RunStore::defaultPath()); }

QString AppSettings::databasePath() {
    const QString path = QSettings().value(QStringLiteral("database/path")).toString();
    return path.isEmpty() ? defaultDatabasePath() : path;
}

void AppSettings::setDatabasePath(const QString& path) {
    QSettings s;
    if (path.isEmpty() || path == defaultDatabasePath()) s.remove(QStringLiteral("database/path"));
    else s.setValue(QStringLiteral("database/path"), path);
}

QString AppSettings::defaultDevice() { return QSettings().value(QStringLiteral("run/device"), QStringLiteral("auto")).toString(); }

void AppSettings::setDefaultDevice(const QString& device) { QSettings().setValue(QStringLiteral("run/device"), device); }

} // namespace lathe::ui

// AppSettings: the workbench's persistent preferences (QSettings), with their defaults in one place.
#pragma once

#include <QString>

namespace lathe::ui {

struct AppSettings {
    // The run store; default RunStore::defaultPath() ($XDG_DATA_HOME/lathe/runs.sqlite).
    static QString databasePath();
    static void setDatabasePath(const QString& path);
    static QString defaultDatabasePath();
    // The device new runs use when the experiment says "auto" ("" or "auto": the experiment decides).
    static QString defaultDevice();
    static void setDefaultDevice(const QString& device);
};

} // namespace lathe::ui

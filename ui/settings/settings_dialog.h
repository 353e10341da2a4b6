// SettingsDialog: database location and default device. The theme follows the system (nothing to set).
#pragma once

#include <QDialog>

class QComboBox;
class QLineEdit;

namespace lathe::ui {

class SettingsDialog : public QDialog {
    Q_OBJECT
public:
    explicit SettingsDialog(QWidget* parent = nullptr);
    QString databasePath() const;
    void setDatabasePath(const QString& path);
    QString defaultDevice() const;
    // Writes the choices to QSettings; true when the database location changed.
    bool apply();

private:
    QLineEdit* m_database;
    QComboBox* m_device;
};

} // namespace lathe::ui

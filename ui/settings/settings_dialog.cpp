// SettingsDialog: a small form over AppSettings.
#include "ui/settings/settings_dialog.h"

#include "engine/backends/registry.h"
#include "ui/settings/app_settings.h"

#include <QComboBox>
#include <QDialogButtonBox>
#include <QFileDialog>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QVBoxLayout>

namespace lathe::ui {

SettingsDialog::SettingsDialog(QWidget* parent) : QDialog(parent), m_database(new QLineEdit(this)), m_device(new QComboBox(this)) {
    setWindowTitle(tr("Lathe settings"));
    m_database->setText(AppSettings::databasePath());
    m_database->setPlaceholderText(AppSettings::defaultDatabasePath());
    auto* browse = new QPushButton(tr("Browse..."), this);
    auto* reset = new QPushButton(tr("Default"), this);
    connect(browse, &QPushButton::clicked, this, [this] {
        const QString path = QFileDialog::getSaveFileName(this, tr("Run database"), m_database->text(), tr("SQLite database (*.sqlite *.db)"),
                                                          nullptr, QFileDialog::DontConfirmOverwrite);
        if (!path.isEmpty()) m_database->setText(path);
    });
    connect(reset, &QPushButton::clicked, this, [this] { m_database->setText(AppSettings::defaultDatabasePath()); });
    auto* dbRow = new QHBoxLayout;
    dbRow->addWidget(m_database, 1);
    dbRow->addWidget(browse);
    dbRow->addWidget(reset);

    m_device->addItem(QStringLiteral("auto"));
    for (const BackendEntry& e : probeBackends()) {
        if (e.info.available) m_device->addItem(QString::fromStdString(e.info.device.toString()));
    }
    m_device->setCurrentText(AppSettings::defaultDevice());
    m_device->setToolTip(tr("Used when an experiment's device is \"auto\""));

    auto* form = new QFormLayout;
    form->addRow(tr("Run database"), dbRow);
    form->addRow(tr("Default device"), m_device);
    auto* theme = new QLabel(tr("Colours follow the system theme."), this);
    theme->setEnabled(false);
    form->addRow(tr("Theme"), theme);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
    connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(form);
    layout->addWidget(buttons);
    resize(560, sizeHint().height());
}

QString SettingsDialog::databasePath() const { return m_database->text().trimmed(); }
void SettingsDialog::setDatabasePath(const QString& path) { m_database->setText(path); }
QString SettingsDialog::defaultDevice() const { return m_device->currentText(); }

bool SettingsDialog::apply() {
    const bool changed = databasePath() != AppSettings::databasePath();
    AppSettings::setDatabasePath(databasePath());
    AppSettings::setDefaultDevice(defaultDevice());
    return changed;
}

} // namespace lathe::ui

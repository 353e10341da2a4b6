// DevicesPanel: probeBackends() as a tree.
#include "ui/devices/devices_panel.h"

#include "engine/backends/registry.h"

#include <QHeaderView>
#include <QLabel>
#include <QLocale>
#include <QStyle>
#include <QTreeWidget>
#include <QVBoxLayout>

namespace lathe::ui {

QString DevicesPanel::engineVersion() {
#ifdef LATHE_VERSION
    return QStringLiteral(LATHE_VERSION);
#else
    return QStringLiteral("unknown");
#endif
}

DevicesPanel::DevicesPanel(QWidget* parent) : QWidget(parent), m_tree(new QTreeWidget(this)), m_version(new QLabel(this)) {
    setObjectName(QStringLiteral("devicesPanel"));
    m_tree->setHeaderLabels({tr("Device"), tr("Details")});
    m_tree->setRootIsDecorated(false);
    m_tree->header()->setSectionResizeMode(0, QHeaderView::ResizeToContents);
    m_version->setTextInteractionFlags(Qt::TextSelectableByMouse);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(2, 2, 2, 2);
    layout->addWidget(m_tree, 1);
    layout->addWidget(m_version);
    refresh();
}

void DevicesPanel::refresh() {
    m_tree->clear();
    m_autoDevice.clear();
    QString firstAvailable, firstCuda;
    for (const BackendEntry& entry : probeBackends()) {
        const DeviceInfo& info = entry.info;
        const QString id = QString::fromStdString(info.available ? info.device.toString() : info.backend);
        QStringList details;
        if (info.available) {
            details << QString::fromStdString(info.name);
            if (info.memoryTotalBytes) {
                details << tr("%1 memory (%2 free)").arg(QLocale().formattedDataSize(static_cast<qint64>(info.memoryTotalBytes)),
                                                         QLocale().formattedDataSize(static_cast<qint64>(info.memoryFreeBytes)));
            }
            if (info.threads) details << tr("%n thread(s)", nullptr, info.threads);
            if (info.computeCapabilityMajor) details << tr("compute %1.%2").arg(info.computeCapabilityMajor).arg(info.computeCapabilityMinor);
            if (!info.runtimeVersion.empty()) details << QString::fromStdString(info.runtimeVersion);
        } else {
            details << tr("unavailable: %1").arg(QString::fromStdString(info.reason));
        }
        auto* item = new QTreeWidgetItem(m_tree, {id, details.join(QStringLiteral(" · "))});
        item->setIcon(0, style()->standardIcon(info.available ? QStyle::SP_ComputerIcon : QStyle::SP_MessageBoxWarning));
        item->setToolTip(1, details.join(QLatin1Char('\n')));
        if (!info.available) item->setForeground(1, palette().color(QPalette::Disabled, QPalette::Text));
        if (info.available && firstAvailable.isEmpty()) firstAvailable = id + QStringLiteral(": ") + QString::fromStdString(info.name);
        if (info.available && info.backend == "cuda" && firstCuda.isEmpty()) firstCuda = id + QStringLiteral(": ") + QString::fromStdString(info.name);
    }
    m_autoDevice = firstCuda.isEmpty() ? firstAvailable : firstCuda;
    m_version->setText(tr("Lathe engine %1").arg(engineVersion()));
}

} // namespace lathe::ui

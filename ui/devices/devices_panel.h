// DevicesPanel: the backends this machine offers (name, memory, threads, runtime) and why missing
// ones are missing, with the engine's version: what `lathe-cli devices` prints, as a widget.
#pragma once

#include <QWidget>

class QTreeWidget;
class QLabel;

namespace lathe::ui {

class DevicesPanel : public QWidget {
    Q_OBJECT
public:
    explicit DevicesPanel(QWidget* parent = nullptr);
    void refresh();
    QTreeWidget* tree() const { return m_tree; }
    // "cpu: AMD EPYC (2 threads)" of the device "auto" picks.
    QString autoDeviceText() const { return m_autoDevice; }
    static QString engineVersion();

private:
    QTreeWidget* m_tree;
    QLabel* m_version;
    QString m_autoDevice;
};

} // namespace lathe::ui

// Icons: resource lookup with a style fallback.
#include "ui/common/icons.h"

#include <QApplication>
#include <QFile>

// Resources compiled into a static library must be registered explicitly.
static void initLatheResources() {
#ifdef LATHE_HAVE_RESOURCES
    static const bool done = [] {
        Q_INIT_RESOURCE(lathe);
        return true;
    }();
    (void)done;
#endif
}

namespace lathe::ui {

QIcon toolbarIcon(const QString& name, QStyle::StandardPixmap fallback) {
    initLatheResources();
    const QString path = QStringLiteral(":/icons/toolbar/%1.svg").arg(name);
    if (QFile::exists(path)) {
        QIcon icon(path);
        if (!icon.pixmap(24, 24).isNull()) return icon; // needs the SVG image plugin
    }
    return QApplication::style()->standardIcon(fallback);
}

QIcon applicationIcon() {
    initLatheResources();
    QIcon icon;
    for (int size : {16, 22, 24, 32, 48, 64, 128, 256}) {
        const QString path = QStringLiteral(":/icons/app/lathe-%1.png").arg(size);
        if (QFile::exists(path)) icon.addFile(path, QSize(size, size));
    }
    if (icon.isNull() && QFile::exists(QStringLiteral(":/icons/lathe.svg"))) icon = QIcon(QStringLiteral(":/icons/lathe.svg"));
    return icon;
}

} // namespace lathe::ui

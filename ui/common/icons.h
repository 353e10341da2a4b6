// Icons: toolbar icons from resources/ (:/icons/toolbar/<name>.svg), falling back to the style's
// standard icons when the resource is not built in. Also the application icon.
#pragma once

#include <QIcon>
#include <QStyle>

namespace lathe::ui {

QIcon toolbarIcon(const QString& name, QStyle::StandardPixmap fallback);
QIcon applicationIcon();

} // namespace lathe::ui

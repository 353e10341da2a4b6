// ExperimentLibrary: two folders of experiment files as a searchable tree.
#include "ui/library/experiment_library.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QHeaderView>
#include <QInputDialog>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLineEdit>
#include <QMenu>
#include <QMessageBox>
#include <QStandardPaths>
#include <QStyle>
#include <QTreeWidget>
#include <QVBoxLayout>

namespace lathe::ui {

namespace {
constexpr int kPathRole = Qt::UserRole + 1;
constexpr int kBundledRole = Qt::UserRole + 2;

QString describe(const QString& path) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly) || f.size() > 1 << 20) {
        return {};
    }
    const QJsonObject o = QJsonDocument::fromJson(f.readAll()).object();
    return o.value(QStringLiteral("description")).toString();
}
} // namespace

ExperimentLibrary::ExperimentLibrary(QWidget* parent)
    : QDockWidget(tr("Experiments"), parent), m_search(new QLineEdit), m_tree(new QTreeWidget) {
    setObjectName(QStringLiteral("experimentLibrary"));
    auto* body = new QWidget(this);
    auto* layout = new QVBoxLayout(body);
    layout->setContentsMargins(2, 2, 2, 2);
    m_search->setPlaceholderText(tr("Search experiments"));
    m_search->setClearButtonEnabled(true);
    m_tree->setHeaderHidden(true);
    m_tree->setContextMenuPolicy(Qt::CustomContextMenu);
    m_tree->setObjectName(QStringLiteral("experimentTree"));
    layout->addWidget(m_search);
    layout->addWidget(m_tree, 1);
    setWidget(body);

    m_bundled = new QTreeWidgetItem(m_tree, {tr("Bundled examples")});
    m_bundled->setIcon(0, style()->standardIcon(QStyle::SP_DirIcon));
    m_user = new QTreeWidgetItem(m_tree, {tr("My experiments")});
    m_user->setIcon(0, style()->standardIcon(QStyle::SP_DirHomeIcon));
    for (QTreeWidgetItem* g : {m_bundled, m_user}) {
        g->setFlags(Qt::ItemIsEnabled);
        QFont f = g->font(0);
        f.setBold(true);
        g->setFont(0, f);
    }

    connect(m_search, &QLineEdit::textChanged, this, &ExperimentLibrary::applySearch);
    connect(m_tree, &QTreeWidget::itemActivated, this, [this](QTreeWidgetItem* item) {
        const QString path = item->data(0, kPathRole).toString();
        if (!path.isEmpty()) emit openRequested(path);
    });
    connect(m_tree, &QTreeWidget::customContextMenuRequested, this, &ExperimentLibrary::showContextMenu);
    connect(&m_watcher, &QFileSystemWatcher::directoryChanged, this, &ExperimentLibrary::refresh);
    refresh();
}

QStringList ExperimentLibrary::bundledDirs() {
    QStringList dirs;
    const QString env = qEnvironmentVariable("LATHE_EXPERIMENTS_DIR");
    if (!env.isEmpty()) dirs << env;
#ifdef LATHE_SOURCE_EXPERIMENTS_DIR
    dirs << QStringLiteral(LATHE_SOURCE_EXPERIMENTS_DIR);
#endif
#ifdef LATHE_INSTALLED_EXPERIMENTS_DIR
    dirs << QStringLiteral(LATHE_INSTALLED_EXPERIMENTS_DIR);
#endif
    for (const QString& d : QStandardPaths::locateAll(QStandardPaths::GenericDataLocation, QStringLiteral("lathe/experiments"),
                                                       QStandardPaths::LocateDirectory)) {
        if (!d.startsWith(QStandardPaths::writableLocation(QStandardPaths::GenericDataLocation))) dirs << d;
    }
    return dirs;
}

QString ExperimentLibrary::bundledDir() {
    for (const QString& d : bundledDirs()) {
        if (QFileInfo(d).isDir()) return d;
    }
    return {};
}

QString ExperimentLibrary::userDir() {
    const QString dir = QStandardPaths::writableLocation(QStandardPaths::GenericDataLocation) + QStringLiteral("/lathe/experiments");
    QDir().mkpath(dir);
    return dir;
}

void ExperimentLibrary::refresh() {
    const QStringList watched = m_watcher.directories();
    if (!watched.isEmpty()) m_watcher.removePaths(watched);
    for (auto [group, dir, bundled] : {std::tuple{m_bundled, bundledDir(), true}, std::tuple{m_user, userDir(), false}}) {
        qDeleteAll(group->takeChildren());
        if (dir.isEmpty()) continue;
        m_watcher.addPath(dir);
        const QFileInfoList files = QDir(dir).entryInfoList({QStringLiteral("*.json")}, QDir::Files, QDir::Name);
        for (const QFileInfo& fi : files) {
            auto* item = new QTreeWidgetItem(group);
            item->setData(0, kPathRole, fi.absoluteFilePath());
            item->setData(0, kBundledRole, bundled);
            item->setIcon(0, style()->standardIcon(QStyle::SP_FileIcon));
            const QString description = describe(fi.absoluteFilePath());
            item->setToolTip(0, description.isEmpty() ? fi.absoluteFilePath() : description + QStringLiteral("\n") + fi.absoluteFilePath());
            updateItem(item);
        }
        group->setExpanded(true);
    }
    applySearch();
}

QStringList ExperimentLibrary::files() const {
    QStringList out;
    for (QTreeWidgetItem* g : {m_bundled, m_user}) {
        for (int i = 0; i < g->childCount(); ++i) out << g->child(i)->data(0, kPathRole).toString();
    }
    return out;
}

void ExperimentLibrary::updateItem(QTreeWidgetItem* item) {
    const QString path = item->data(0, kPathRole).toString();
    const bool modified = m_modified.contains(path);
    item->setText(0, QFileInfo(path).completeBaseName() + (modified ? QStringLiteral(" *") : QString()));
    QFont f = item->font(0);
    f.setItalic(modified);
    f.setBold(path == m_current);
    item->setFont(0, f);
}

void ExperimentLibrary::setModified(const QString& path, bool modified) {
    if (modified) m_modified.insert(path); else m_modified.remove(path);
    for (QTreeWidgetItem* g : {m_bundled, m_user}) {
        for (int i = 0; i < g->childCount(); ++i) updateItem(g->child(i));
    }
}

void ExperimentLibrary::setCurrent(const QString& path) {
    m_current = path;
    setModified(path, m_modified.contains(path));
}

void ExperimentLibrary::applySearch() {
    const QString text = m_search->text().trimmed();
    for (QTreeWidgetItem* g : {m_bundled, m_user}) {
        for (int i = 0; i < g->childCount(); ++i) {
            QTreeWidgetItem* item = g->child(i);
            const bool match = text.isEmpty() || item->text(0).contains(text, Qt::CaseInsensitive) ||
                               item->toolTip(0).contains(text, Qt::CaseInsensitive);
            item->setHidden(!match);
        }
    }
}

QString ExperimentLibrary::duplicate(const QString& path) {
    const QFileInfo fi(path);
    const QString dir = userDir();
    QString target;
    for (int n = 1; n < 1000; ++n) {
        target = QStringLiteral("%1/%2%3.json").arg(dir, fi.completeBaseName(), n == 1 ? QStringLiteral("-copy") : QStringLiteral("-copy%1").arg(n));
        if (!QFileInfo::exists(target)) break;
    }
    if (!QFile::copy(path, target)) return {};
    QFile(target).setPermissions(QFile::ReadOwner | QFile::WriteOwner | QFile::ReadGroup | QFile::ReadOther);
    refresh();
    return target;
}

void ExperimentLibrary::renameItem(QTreeWidgetItem* item) {
    const QString path = item->data(0, kPathRole).toString();
    const QFileInfo fi(path);
    bool ok = false;
    const QString name = QInputDialog::getText(this, tr("Rename experiment"), tr("New file name:"), QLineEdit::Normal,
                                               fi.completeBaseName(), &ok).trimmed();
    if (!ok || name.isEmpty() || name == fi.completeBaseName()) return;
    const QString target = fi.absolutePath() + QLatin1Char('/') + name + QStringLiteral(".json");
    if (QFileInfo::exists(target) || !QFile::rename(path, target)) {
        QMessageBox::warning(this, tr("Rename experiment"), tr("Could not rename %1 to %2.").arg(fi.fileName(), QFileInfo(target).fileName()));
        return;
    }
    emit fileRenamed(path, target);
    refresh();
}

void ExperimentLibrary::deleteItem(QTreeWidgetItem* item) {
    const QString path = item->data(0, kPathRole).toString();
    if (QMessageBox::question(this, tr("Delete experiment"), tr("Delete %1? Its runs stay in the database.").arg(QFileInfo(path).fileName()),
                              QMessageBox::Yes | QMessageBox::Cancel, QMessageBox::Cancel) != QMessageBox::Yes) {
        return;
    }
    if (QFile::remove(path)) {
        emit fileDeleted(path);
        refresh();
    }
}

void ExperimentLibrary::showContextMenu(const QPoint& pos) {
    QTreeWidgetItem* item = m_tree->itemAt(pos);
    if (!item || item->data(0, kPathRole).toString().isEmpty()) return;
    const bool bundled = item->data(0, kBundledRole).toBool();
    QMenu menu(this);
    QAction* open = menu.addAction(style()->standardIcon(QStyle::SP_DialogOpenButton), tr("Open"));
    QAction* dup = menu.addAction(tr("Duplicate to my experiments"));
    QAction* rename = menu.addAction(tr("Rename..."));
    QAction* remove = menu.addAction(style()->standardIcon(QStyle::SP_TrashIcon), tr("Delete..."));
    rename->setEnabled(!bundled);
    remove->setEnabled(!bundled);
    QAction* chosen = menu.exec(m_tree->viewport()->mapToGlobal(pos));
    if (chosen == open) emit openRequested(item->data(0, kPathRole).toString());
    else if (chosen == dup) {
        const QString copy = duplicate(item->data(0, kPathRole).toString());
        if (!copy.isEmpty()) emit openRequested(copy);
    } else if (chosen == rename) renameItem(item);
    else if (chosen == remove) deleteItem(item);
}

} // namespace lathe::ui

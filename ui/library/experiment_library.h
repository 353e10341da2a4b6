// ExperimentLibrary: the experiment files a user can open: the bundled examples (read-only; from the
// source tree in a build folder, share/lathe/experiments when installed) and the user's own files in
// $XDG_DATA_HOME/lathe/experiments. Search, open, duplicate, rename, delete; unsaved ones marked.
#pragma once

#include <QDockWidget>
#include <QFileSystemWatcher>
#include <QSet>

class QLineEdit;
class QTreeWidget;
class QTreeWidgetItem;

namespace lathe::ui {

class ExperimentLibrary : public QDockWidget {
    Q_OBJECT
public:
    explicit ExperimentLibrary(QWidget* parent = nullptr);

    // Folders searched for bundled experiments, first existing wins (LATHE_EXPERIMENTS_DIR overrides).
    static QStringList bundledDirs();
    static QString bundledDir();
    // The user's experiments folder (created on demand).
    static QString userDir();

    void refresh();
    // Marks a file as having unsaved changes in the editor ("name *").
    void setModified(const QString& path, bool modified);
    void setCurrent(const QString& path);
    QTreeWidget* tree() const { return m_tree; }
    QLineEdit* searchEdit() const { return m_search; }
    QStringList files() const; // every listed path

    // Copies `path` into the user folder under a free name; returns the new path (empty on failure).
    QString duplicate(const QString& path);

signals:
    void openRequested(const QString& path);
    // A file the editor has open was renamed or deleted.
    void fileRenamed(const QString& from, const QString& to);
    void fileDeleted(const QString& path);

private:
    void applySearch();
    void showContextMenu(const QPoint& pos);
    void renameItem(QTreeWidgetItem* item);
    void deleteItem(QTreeWidgetItem* item);
    void updateItem(QTreeWidgetItem* item);

    QLineEdit* m_search;
    QTreeWidget* m_tree;
    QTreeWidgetItem* m_bundled;
    QTreeWidgetItem* m_user;
    QFileSystemWatcher m_watcher;
    QSet<QString> m_modified;
    QString m_current;
};

} // namespace lathe::ui

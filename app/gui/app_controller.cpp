// AppController: the QThread + worker-object bridge between the window and the engine.
#include "app/gui/app_controller.h"

#include "engine/store/run_store.h"

namespace lathe::app {

AppController::AppController(const QString& databasePath, QObject* parent)
    : QObject(parent), m_databasePath(databasePath), m_ring(1 << 16) {
    qRegisterMetaType<QList<qint64>>("QList<qint64>");
    try {
        // Create and migrate once here, so the UI's ReadOnly connections find the current schema,
        // and mark runs left `running` by a crashed process as interrupted.
        RunStore store(databasePath.toStdString(), RunStore::Mode::ReadWrite);
        store.recoverInterrupted();
    } catch (const std::exception& e) {
        m_databaseError = QString::fromUtf8(e.what());
    }
    m_thread.setObjectName(QStringLiteral("lathe-engine"));
    m_worker = new EngineWorker(databasePath, &m_ring);
    m_worker->moveToThread(&m_thread);
    connect(&m_thread, &QThread::finished, m_worker, &QObject::deleteLater);

    // Worker signals arrive queued (different thread) and are re-emitted on the UI thread.
    connect(m_worker, &EngineWorker::experimentStarted, this, &AppController::experimentStarted);
    connect(m_worker, &EngineWorker::runStarted, this, &AppController::runStarted);
    connect(m_worker, &EngineWorker::runFinished, this, &AppController::runFinished);
    connect(m_worker, &EngineWorker::runFailed, this, &AppController::runFailed);
    connect(m_worker, &EngineWorker::progressChanged, this, &AppController::progressChanged);
    connect(m_worker, &EngineWorker::logMessage, this, &AppController::logMessage);
    connect(m_worker, &EngineWorker::runsDeleted, this, &AppController::runsDeleted);
    connect(m_worker, &EngineWorker::shardsMerged, this, &AppController::shardsMerged);
    connect(m_worker, &EngineWorker::experimentFinished, this, [this](bool cancelled, const QString& error) {
        m_running = false;
        emit runningChanged(false);
        emit experimentFinished(cancelled, error);
    });
    m_thread.start();
}

AppController::~AppController() { shutdown(); }

bool AppController::startRun(const nlohmann::json& doc, const QString& sourcePath, const QString& device) {
    if (m_running || m_shutDown) {
        return false;
    }
    m_running = true;
    m_worker->resetCancel();
    emit runningChanged(true);
    queuedCallPosted(m_worker);
    QMetaObject::invokeMethod(m_worker, "startRun", Qt::QueuedConnection,
                              Q_ARG(QString, QString::fromStdString(doc.dump())), Q_ARG(QString, sourcePath),
                              Q_ARG(QString, device));
    return true;
}

void AppController::cancelRun() {
    if (m_worker && m_running) {
        m_worker->requestCancel();
    }
}

void AppController::deleteRuns(const QList<qint64>& runIds) {
    if (!m_shutDown) {
        queuedCallPosted(m_worker);
        QMetaObject::invokeMethod(m_worker, "deleteRuns", Qt::QueuedConnection, Q_ARG(QList<qint64>, runIds));
    }
}

void AppController::mergeShards(const QStringList& shards) {
    if (!m_shutDown) {
        queuedCallPosted(m_worker);
        QMetaObject::invokeMethod(m_worker, "mergeShards", Qt::QueuedConnection, Q_ARG(QStringList, shards));
    }
}

QString AppController::setDatabasePath(const QString& path) {
    if (m_running) {
        return tr("an experiment is running; switch the database when it has finished");
    }
    if (m_shutDown) {
        return tr("the engine has shut down");
    }
    // The worker owns the only write connection; it opens the new file on its own thread. It is idle
    // (no experiment runs), so the wait is the time to open the file.
    QString error;
    QMetaObject::invokeMethod(m_worker, [&] { error = m_worker->setDatabasePath(path); }, Qt::BlockingQueuedConnection);
    if (!error.isEmpty()) {
        return error;
    }
    m_databasePath = path;
    m_databaseError.clear();
    emit databaseChanged(path);
    return {};
}

void AppController::shutdown() {
    if (m_shutDown) {
        return;
    }
    m_shutDown = true;
    if (m_worker) {
        m_worker->requestCancel();
    }
    m_thread.quit();
    m_thread.wait();
    m_running = false;
}

} // namespace lathe::app

// AppController: owns the engine thread. An EngineWorker is moved onto a QThread; the UI talks to it
// through queued calls (startRun, deleteRuns) and a thread-safe cancel flag, and reads live samples
// from the SampleRing. Shutdown: cancel, quit(), wait(); nothing is killed mid-transaction.
#pragma once

#include "app/gui/engine_worker.h"
#include "engine/experiment/sample_ring.h"

#include <nlohmann/json.hpp>

#include <QObject>
#include <QThread>

namespace lathe::app {

class AppController : public QObject {
    Q_OBJECT
public:
    // Creates/migrates the database (so read-only connections can open it) and starts the thread.
    explicit AppController(const QString& databasePath, QObject* parent = nullptr);
    ~AppController() override; // shutdown()

    QString databasePath() const { return m_databasePath; }
    // Empty when the database could be opened; otherwise the reason (the thread still runs).
    QString databaseError() const { return m_databaseError; }
    SampleRing& sampleRing() { return m_ring; }
    EngineWorker* worker() const { return m_worker; }
    bool isRunning() const { return m_running; }
    bool isShutDown() const { return m_shutDown; }

    // Queues the experiment on the engine thread. False when one is already running.
    bool startRun(const nlohmann::json& doc, const QString& sourcePath = {}, const QString& device = {});
    // Stops the running experiment between batches; its current run is stored as cancelled.
    void cancelRun();
    void deleteRuns(const QList<qint64>& runIds);
    // Merges shards into the run store on the engine thread (after the running experiment, if any).
    void mergeShards(const QStringList& shards);
    // Switches the engine to another run database at once (created and migrated when new), on the
    // engine thread. Refused while an experiment runs. Returns the reason on failure (the old one stays).
    QString setDatabasePath(const QString& path);
    // Cancels, stops the thread and waits for it (the current batch finishes, the store is closed).
    void shutdown();

signals:
    void experimentStarted(const QString& name, int runCount);
    void runStarted(qint64 runId, const QString& label, int index, int total);
    void runFinished(qint64 runId, const QString& status, const QString& error);
    void runFailed(qint64 runId, const QString& error);
    void progressChanged(double fraction, const QString& step, double etaS);
    void logMessage(int level, const QString& text);
    void experimentFinished(bool cancelled, const QString& error);
    void runsDeleted(int count, const QString& error);
    void shardsMerged(int merged, int broken, const QString& report, const QString& error);
    void runningChanged(bool running);
    void databaseChanged(const QString& path);

private:
    QString m_databasePath;
    QString m_databaseError;
    SampleRing m_ring;
    QThread m_thread;
    EngineWorker* m_worker = nullptr;
    bool m_running = false;
    bool m_shutDown = false;
};

} // namespace lathe::app

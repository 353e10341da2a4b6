// EngineWorker: the engine thread's QObject. Runs experiments with the Runner (which owns the single
// write connection to the run store) and turns its callbacks into queued signals; metric samples go
// through the SampleRing instead, never one signal per sample. Lives on AppController's QThread.
#pragma once

#include <QList>
#include <QObject>
#include <QString>
#include <QStringList>

#include <atomic>
#include <memory>

namespace lathe {
class RunStore;
class SampleRing;
}

namespace lathe::app {

// A queued call runs on the engine thread after the UI-thread code that posted it; Qt's event queue
// orders the two through its own locks, which ThreadSanitizer (tsan preset; Qt is not instrumented)
// cannot see. The poster calls queuedCallPosted(receiver) before posting, the slot calls
// queuedCallArrived(this) first: that states the order where it is checked. No-ops otherwise.
#if defined(__SANITIZE_THREAD__)
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
inline void queuedCallPosted(void* receiver) { __tsan_release(receiver); }
inline void queuedCallArrived(void* receiver) { __tsan_acquire(receiver); }
#else
inline void queuedCallPosted(void*) {}
inline void queuedCallArrived(void*) {}
#endif

class EngineWorker : public QObject {
    Q_OBJECT
public:
    EngineWorker(QString databasePath, SampleRing* ring, QObject* parent = nullptr);
    ~EngineWorker() override;

    // Thread-safe (called from the UI thread while startRun blocks the engine thread): the Runner
    // checks the flag between batches and stores the run as cancelled.
    void requestCancel() { m_cancel.store(true, std::memory_order_release); }
    // Called by AppController before queuing a run, so a cancel that arrives before the run starts counts.
    void resetCancel() { m_cancel.store(false, std::memory_order_relaxed); }
    bool cancelRequested() const { return m_cancel.load(std::memory_order_relaxed); }

public slots:
    // docJson: the experiment document; sourcePath: its file (for relative paths; may be empty);
    // device: overrides the experiment's device when not empty.
    void startRun(const QString& docJson, const QString& sourcePath, const QString& device);
    // Slot form of requestCancel() for queued use.
    void cancelRun() { requestCancel(); }
    void deleteRuns(const QList<qint64>& runIds);
    // Merges run stores (a cluster sweep's finished shards) into the store: RunStore::mergeShards, what
    // `lathe-cli merge` does, in one transaction on this thread's write connection.
    void mergeShards(const QStringList& shards);
    // Closes the store and opens (creating and migrating) the one at `path`, marking runs a crashed
    // process left `running` as interrupted. Returns the reason on failure, the old store then stays.
    QString setDatabasePath(const QString& path);
    QString databasePath() const { return m_databasePath; }

signals:
    void experimentStarted(const QString& name, int runCount);
    void runStarted(qint64 runId, const QString& label, int index, int total);
    void runFinished(qint64 runId, const QString& status, const QString& error);
    void runFailed(qint64 runId, const QString& error);
    // fraction of the whole experiment, step in progress, seconds left (-1: unknown)
    void progressChanged(double fraction, const QString& step, double etaS);
    void logMessage(int level, const QString& text); // lathe::LogLevel
    // Every plan done, or stopped by cancel or an error before any run (error not empty).
    void experimentFinished(bool cancelled, const QString& error);
    void runsDeleted(int count, const QString& error);
    // One line per shard (as lathe-cli merge prints) and the totals; error: the merge could not run.
    void shardsMerged(int merged, int broken, const QString& report, const QString& error);

private:
    RunStore& store();

    QString m_databasePath;
    SampleRing* m_ring;
    std::unique_ptr<RunStore> m_store;
    std::atomic<bool> m_cancel{false};
};

} // namespace lathe::app

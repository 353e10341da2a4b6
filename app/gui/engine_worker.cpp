// EngineWorker: Runner on the engine thread, callbacks out as queued signals.
#include "app/gui/engine_worker.h"

#include "engine/core/errors.h"
#include "engine/experiment/runner.h"
#include "engine/experiment/search_runner.h"
#include "engine/experiment/sample_ring.h"
#include "engine/store/run_merge.h"
#include "engine/store/run_store.h"

#include <QElapsedTimer>

#include <nlohmann/json.hpp>

#include <vector>

namespace lathe::app {

namespace {
QString qs(const std::string& s) { return QString::fromStdString(s); }
} // namespace

EngineWorker::EngineWorker(QString databasePath, SampleRing* ring, QObject* parent)
    : QObject(parent), m_databasePath(std::move(databasePath)), m_ring(ring) {}

// The worker is deleted on the engine thread (deleteLater when the thread finishes) after
// AppController::shutdown() set the cancel flag from the UI thread. QThread::quit()/wait() order the
// two, but through Qt's own locks, which ThreadSanitizer cannot see; reading the flag with acquire
// (requestCancel() stores with release) states the order in terms it checks.
EngineWorker::~EngineWorker() { (void)m_cancel.load(std::memory_order_acquire); }

RunStore& EngineWorker::store() {
    if (!m_store) {
        m_store = std::make_unique<RunStore>(m_databasePath.toStdString(), RunStore::Mode::ReadWrite);
    }
    return *m_store;
}

void EngineWorker::startRun(const QString& docJson, const QString& sourcePath, const QString& device) {
    queuedCallArrived(this);
    try {
        const nlohmann::json doc = nlohmann::json::parse(docJson.toStdString());
        const std::string source = sourcePath.isEmpty() ? std::string("(editor)") : sourcePath.toStdString();
        const ExperimentSpec spec = parseExperiment(doc, source);
        RunnerOptions options;
        options.deviceOverride = device.toStdString();
        Runner runner(store(), options);

        // Progress arrives per batch; the UI only needs a few updates per second.
        QElapsedTimer lastProgress;
        RunnerEvents events;
        events.liveSink = m_ring;
        events.runStarted = [this](std::int64_t runId, const RunPlan& plan) {
            emit runStarted(runId, qs(plan.label), plan.index, plan.total);
        };
        events.runFinished = [this](const RunOutcome& outcome) {
            emit runFinished(outcome.runId, qs(outcome.status), qs(outcome.error));
            if (outcome.status == run_status::kFailed) {
                emit runFailed(outcome.runId, qs(outcome.error));
            }
        };
        events.progress = [this, &lastProgress](double fraction, const std::string& step, double etaS) {
            if (!lastProgress.isValid() || lastProgress.elapsed() >= 100 || fraction >= 1.0) {
                lastProgress.restart();
                emit progressChanged(fraction, qs(step), etaS);
            }
        };
        events.log = [this](LogLevel level, const std::string& text) { emit logMessage(static_cast<int>(level), qs(text)); };

        if (!spec.search.is_null()) {
            // A search: every trial is a run with these events; the search's own run is stored beside them.
            // A sweep beside it runs one search per plan, one after the other.
            const std::vector<RunPlan> plans = expandSweep(spec, doc);
            emit experimentStarted(qs(spec.name), parseSearchSection(spec.search, source).trials * static_cast<int>(plans.size()));
            SearchEvents searchEvents;
            searchEvents.run = events;
            for (const RunPlan& plan : plans) {
                if (m_cancel.load(std::memory_order_relaxed)) break;
                SearchRunner(store(), options).run(plan.spec, plan.resolved, searchEvents, m_cancel);
            }
            emit experimentFinished(m_cancel.load(std::memory_order_relaxed), {});
            return;
        }
        emit experimentStarted(qs(spec.name), static_cast<int>(expandSweep(spec, doc).size()));
        runner.run(spec, doc, events, m_cancel);
        emit experimentFinished(m_cancel.load(std::memory_order_relaxed), {});
    } catch (const std::exception& e) {
        // Invalid experiment, unreadable store...: nothing ran (a failing run is reported by the Runner).
        emit logMessage(static_cast<int>(LogLevel::Error), QString::fromUtf8(e.what()));
        emit experimentFinished(m_cancel.load(std::memory_order_relaxed), QString::fromUtf8(e.what()));
    }
}

QString EngineWorker::setDatabasePath(const QString& path) {
    try {
        auto next = std::make_unique<RunStore>(path.toStdString(), RunStore::Mode::ReadWrite);
        next->recoverInterrupted();
        m_store = std::move(next);
        m_databasePath = path;
        return {};
    } catch (const std::exception& e) {
        return QString::fromUtf8(e.what());
    }
}

void EngineWorker::deleteRuns(const QList<qint64>& runIds) {
    queuedCallArrived(this);
    try {
        std::vector<std::int64_t> ids(runIds.begin(), runIds.end());
        const int n = store().deleteRuns(ids);
        emit runsDeleted(n, {});
    } catch (const std::exception& e) {
        emit runsDeleted(0, QString::fromUtf8(e.what()));
    }
}

void EngineWorker::mergeShards(const QStringList& shards) {
    queuedCallArrived(this);
    try {
        std::vector<std::string> paths;
        for (const QString& s : shards) paths.push_back(s.toStdString());
        const MergeReport report = store().mergeShards(paths, {});
        QStringList lines;
        for (const ShardMergeResult& s : report.shards) {
            const QString path = QString::fromStdString(s.path);
            if (s.missing) lines << tr("missing %1 (its task never wrote it)").arg(path);
            else if (!s.ok()) lines << tr("broken %1: %2").arg(path, QString::fromStdString(s.error));
            else lines << tr("merged %1: %2 new, %3 replaced, %4 already there").arg(path).arg(s.merged).arg(s.replaced).arg(s.skipped);
        }
        int broken = 0;
        for (const ShardMergeResult& s : report.shards) broken += !s.ok() && !s.missing;
        emit shardsMerged(report.total(&ShardMergeResult::merged) + report.total(&ShardMergeResult::replaced), broken,
                          lines.join(QLatin1Char('\n')), {});
    } catch (const std::exception& e) {
        emit shardsMerged(0, 0, {}, QString::fromUtf8(e.what()));
    }
}

} // namespace lathe::app

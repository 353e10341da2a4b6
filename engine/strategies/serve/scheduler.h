// The serving scheduler's core: the batching policies (none, static, dynamic, adaptive, priority), the
// bounded request queues they draw from, and the discrete-event driver that runs a stream through them on
// a virtual clock with a BatchExecutor saying how long each batch takes (a fake table in tests, the fitted
// latency model in simulate mode). The real-time driver (realtime.h) uses the same ServeScheduler.
#pragma once

#include "engine/strategies/serve/arrivals.h"

#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace lathe::serve {

inline constexpr double kNever = std::numeric_limits<double>::infinity();

struct ServeRequest {
    std::int64_t id = 0;       // position in the stream (0 = first offered)
    double arrivalMs = 0;
    int samples = 1;
    int priority = 0;
    int client = -1;           // closed loop: the client waiting for it
};

// What a policy sees of the queues when it decides.
struct QueueView {
    std::size_t count = 0;       // queued requests (all classes)
    double oldestMs = kNever;    // arrival time of the oldest queued request
    bool streamEnded = false;    // no request will arrive any more
};

// How many queued requests to dispatch now as one batch (0: wait), and when to be asked again while
// waiting (kNever: only on the next arrival or completion).
struct Decision {
    std::size_t take = 0;
    double wakeMs = kNever;
};

enum class PolicyKind { None, Static, Dynamic, Adaptive, Priority };

struct PolicySettings {
    PolicyKind kind = PolicyKind::Dynamic;
    int maxBatch = 32;                     // static: the batch it waits for
    double maxDelayMs = 2;                 // dynamic, adaptive, priority: longest wait of the oldest request
    std::vector<std::int64_t> preferred;   // dynamic, priority: batch sizes to dispatch when reached
};

class BatchPolicy {
public:
    virtual ~BatchPolicy() = default;
    virtual Decision decide(const QueueView& q, double nowMs) = 0;
    virtual void observeArrival(double /*nowMs*/) {}
    // Batches are filled from class 0 first (several queues) instead of in arrival order (one queue).
    virtual bool priorityOrder() const { return false; }
};

std::unique_ptr<BatchPolicy> makePolicy(const PolicySettings& s);
// "none", "static", "dynamic", "adaptive", "priority" (the names experiment files use).
const std::vector<std::pair<std::string, PolicyKind>>& policyNames();
std::string policyName(PolicyKind kind);

struct SchedulerSettings {
    int instances = 1;            // model instances executing batches at once
    std::size_t queueCap = 10000; // queued requests beyond this are dropped (counted), never stored
    int classes = 1;              // priority classes
};

struct BatchDispatch {
    std::int64_t index = 0;       // 0, 1, ... in dispatch order
    int instance = 0;
    double dispatchMs = 0;
    std::size_t queueAfter = 0;   // requests still queued once this batch left
    std::vector<ServeRequest> requests;
    int samples() const {
        int n = 0;
        for (const auto& r : requests) n += r.samples;
        return n;
    }
};

// Queues, drop accounting and instance bookkeeping, driven by whoever owns the clock: arrive() and
// complete() as events happen, then poll() for the batches the policy releases.
class ServeScheduler {
public:
    ServeScheduler(BatchPolicy& policy, SchedulerSettings settings);
    // The request dropped for want of room, if any: the arriving one when the queue is full, or, with
    // priority order, the newest queued request of a lower class than the arriving one, which takes its place.
    std::optional<ServeRequest> arrive(const ServeRequest& r, double nowMs);
    void complete(int instance);
    void endStream() { m_ended = true; }
    // Every batch the policy releases now onto free instances.
    std::vector<BatchDispatch> poll(double nowMs);
    // When the policy wants to be asked again (kNever: on the next event only).
    double wakeMs() const { return m_wakeMs; }
    std::size_t queued() const { return m_count; }
    std::int64_t dropped() const { return m_dropped; }
    int freeInstances() const;
    bool idle() const { return m_count == 0 && freeInstances() == m_settings.instances; }

private:
    QueueView view() const;
    ServeRequest popNext();
    BatchPolicy& m_policy;
    SchedulerSettings m_settings;
    std::vector<std::deque<ServeRequest>> m_queues; // one per class with priority order, else one
    std::vector<bool> m_busy;
    std::size_t m_count = 0;
    std::int64_t m_dropped = 0;
    std::int64_t m_batches = 0;
    bool m_ended = false;
    double m_wakeMs = kNever;
};

// What happened to one request.
struct RequestRecord {
    ServeRequest request;
    bool dropped = false;
    double dispatchMs = 0, completeMs = 0; // valid unless dropped
    int batchSize = 0;                     // requests in its batch
    std::int64_t batch = -1;
    int instance = -1;
    int correct = 0;                       // samples predicted right (real execution only)
    double queueMs() const { return dispatchMs - request.arrivalMs; }
    double latencyMs() const { return completeMs - request.arrivalMs; }
};

struct BatchRecord {
    std::int64_t index = 0;
    int instance = 0;
    int size = 0;                 // requests
    int samples = 0;
    double dispatchMs = 0, completeMs = 0;
    std::size_t queueAfter = 0;
};

// A whole stream served: requests in completion order (dropped ones where they were refused), batches in
// dispatch order. Times in ms from the stream's start.
struct ServeLog {
    std::vector<RequestRecord> requests;
    std::vector<BatchRecord> batches;
    double endMs = 0;
    bool cancelled = false;
};

// Called as the stream is served (live charts): each finished or dropped request, each dispatched batch.
struct ServeObserver {
    std::function<void(const RequestRecord&)> request;
    std::function<void(const BatchRecord&)> batch;
};

// Logs a request the queue refused (dropped at time tMs) and tells the observer.
void recordDrop(ServeLog& log, const ServeObserver& observer, const ServeRequest& request, double tMs);

// The workload: open-loop arrivals, or (closed loop) `clients` clients each sending its next request
// thinkMs after the answer to its last, until `requests` were sent or durationS passed.
struct Workload {
    std::vector<Arrival> arrivals;
    bool closedLoop = false;
    int clients = 1;
    double thinkMs = 0;
    std::int64_t requests = 0;
    double durationS = 0;
    int samplesPerRequest = 1;
};
Workload makeWorkload(const StreamSettings& s);

// How long a batch takes on an instance, in ms (the virtual clock's executor).
class BatchExecutor {
public:
    virtual ~BatchExecutor() = default;
    virtual double executeMs(const BatchDispatch& batch) = 0;
};

// Serves `work` on a virtual clock: no time passes but what the executor says. Deterministic for a
// deterministic executor. `cancel` (optional) is checked every few thousand events.
ServeLog runVirtual(const Workload& work, const PolicySettings& policy, const SchedulerSettings& sched,
                    BatchExecutor& executor, const ServeObserver& observer = {},
                    const std::function<bool()>& cancelled = {});

} // namespace lathe::serve

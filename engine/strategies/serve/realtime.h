// The real-time driver: clients on their own threads (one pacing the open loop's arrivals, or one per
// closed-loop client), one worker thread per model instance executing batches for real, and the calling
// thread running the ServeScheduler between them. Arrival, dispatch and completion are stamped on the
// monotonic clock (steadyClockMs) as they happen.
#pragma once

#include "engine/strategies/serve/scheduler.h"

#include <atomic>
#include <functional>
#include <vector>

namespace lathe::serve {

// Executes a batch for real on model instance `instance` (the worker's, 0 .. instances - 1); returns the
// correct predictions per request (in the batch's order).
using RealExecute = std::function<std::vector<int>(int instance, const std::vector<ServeRequest>&)>;

// Serves `work`; the observer is called on the calling thread. When `cancel` is set, no more requests are
// offered, the batches in flight finish, and the log (cancelled = true) holds every request served so far.
ServeLog runRealtime(const Workload& work, const PolicySettings& policy, const SchedulerSettings& sched,
                     const RealExecute& execute, const ServeObserver& observer = {},
                     const std::atomic<bool>* cancel = nullptr);

} // namespace lathe::serve

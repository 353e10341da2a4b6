// The real-time serving driver (realtime.h).
#include "engine/strategies/serve/realtime.h"

#include "engine/core/clock.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

namespace lathe::serve {

namespace {

using Clock = std::chrono::steady_clock;

struct Completion {
    std::int64_t batch = 0;
    double doneMs = 0;
    std::vector<int> correct;
    std::exception_ptr error;
};

// Everything the threads hand the scheduler thread, under one mutex.
struct Inbox {
    std::mutex mutex;
    std::condition_variable wake;
    std::vector<ServeRequest> arrivals;
    std::vector<Completion> completions;
    int producers = 0;         // client threads still offering requests
    std::vector<char> answered; // closed loop: per client, its last request was answered (or dropped)
    std::condition_variable answeredCv;
};

struct Worker {
    std::mutex mutex;
    std::condition_variable cv;
    std::optional<BatchDispatch> batch;
    bool stop = false;
    std::thread thread;
};

} // namespace

ServeLog runRealtime(const Workload& work, const PolicySettings& policySettings, const SchedulerSettings& sched,
                     const RealExecute& execute, const ServeObserver& observer, const std::atomic<bool>* cancel) {
    auto policy = makePolicy(policySettings);
    ServeScheduler scheduler(*policy, sched);
    ServeLog log;
    Inbox inbox;
    std::atomic<bool> stopOffering{false};
    const double t0 = steadyClockMs();
    const auto start = Clock::now();
    auto now = [t0] { return steadyClockMs() - t0; };

    // Workers: one per instance.
    std::vector<std::unique_ptr<Worker>> workers;
    for (int i = 0; i < sched.instances; ++i) workers.push_back(std::make_unique<Worker>());
    for (std::size_t i = 0; i < workers.size(); ++i) {
        Worker* w = workers[i].get();
        const int instance = static_cast<int>(i);
        w->thread = std::thread([w, instance, &inbox, &execute, now] {
            for (;;) {
                BatchDispatch b;
                {
                    std::unique_lock lock(w->mutex);
                    w->cv.wait(lock, [w] { return w->stop || w->batch.has_value(); });
                    if (!w->batch) return;
                    b = std::move(*w->batch);
                    w->batch.reset();
                }
                Completion c;
                c.batch = b.index;
                try {
                    c.correct = execute(instance, b.requests);
                } catch (...) {
                    c.error = std::current_exception();
                }
                c.doneMs = now();
                bool first = false;
                {
                    std::lock_guard lock(inbox.mutex);
                    first = inbox.arrivals.empty() && inbox.completions.empty();
                    inbox.completions.push_back(std::move(c));
                }
                if (first) inbox.wake.notify_one();
            }
        });
    }

    // Clients.
    std::vector<std::thread> clients;
    std::atomic<std::int64_t> issued{0};
    auto offer = [&](ServeRequest r) {
        r.arrivalMs = now();
        bool first = false;
        {
            std::lock_guard lock(inbox.mutex);
            first = inbox.arrivals.empty() && inbox.completions.empty();
            inbox.arrivals.push_back(r);
        }
        // Only the first event since the scheduler thread last drained the inbox wakes it: it takes the
        // others with that one (one wake-up per burst instead of one per request).
        if (first) inbox.wake.notify_one();
    };
    auto producerDone = [&] {
        {
            std::lock_guard lock(inbox.mutex);
            --inbox.producers;
        }
        inbox.wake.notify_one();
    };
    if (work.closedLoop) {
        inbox.producers = work.clients;
        inbox.answered.assign(static_cast<std::size_t>(work.clients), 1);
        for (int c = 0; c < work.clients; ++c)
            clients.emplace_back([&, c] {
                for (;;) {
                    if (stopOffering.load()) break;
                    if (work.durationS > 0 && now() >= work.durationS * 1000.0) break;
                    const std::int64_t id = issued.fetch_add(1);
                    if (work.durationS <= 0 && id >= work.requests) break;
                    {
                        std::lock_guard lock(inbox.mutex);
                        inbox.answered[static_cast<std::size_t>(c)] = 0;
                    }
                    ServeRequest r;
                    r.id = id;
                    r.samples = work.samplesPerRequest;
                    r.client = c;
                    offer(r);
                    {
                        // Timed waits: the stop flag is set without the mutex.
                        std::unique_lock lock(inbox.mutex);
                        while (inbox.answered[static_cast<std::size_t>(c)] == 0 && !stopOffering.load())
                            inbox.answeredCv.wait_for(lock, std::chrono::milliseconds(20));
                    }
                    if (work.thinkMs > 0)
                        std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(work.thinkMs));
                }
                producerDone();
            });
    } else {
        inbox.producers = 1;
        clients.emplace_back([&] {
            for (std::size_t i = 0; i < work.arrivals.size() && !stopOffering.load(); ++i) {
                const Arrival& a = work.arrivals[i];
                const auto due = start + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double, std::milli>(a.tMs));
                // In slices, so that a cancel is seen during a long gap of a trace.
                while (!stopOffering.load() && Clock::now() < due)
                    std::this_thread::sleep_until(std::min(due, Clock::now() + std::chrono::milliseconds(20)));
                if (stopOffering.load()) break;
                ServeRequest r;
                r.id = static_cast<std::int64_t>(i);
                r.samples = a.samples;
                r.priority = a.priority;
                offer(r);
            }
            producerDone();
        });
    }

    std::map<std::int64_t, BatchDispatch> inFlight;
    std::exception_ptr failure;
    auto answer = [&](const ServeRequest& r) {
        if (r.client < 0) return;
        {
            std::lock_guard lock(inbox.mutex);
            inbox.answered[static_cast<std::size_t>(r.client)] = 1;
        }
        inbox.answeredCv.notify_all();
    };
    for (;;) {
        std::vector<ServeRequest> arrivals;
        std::vector<Completion> completions;
        bool offeringOver = false;
        {
            std::unique_lock lock(inbox.mutex);
            auto ready = [&] { return !inbox.arrivals.empty() || !inbox.completions.empty() || inbox.producers == 0; };
            const double wakeMs = scheduler.wakeMs();
            // Wake at least every 20 ms to look at the cancel flag.
            const double waitMs = std::min(wakeMs == kNever ? 20.0 : wakeMs - now(), 20.0);
            if (!ready() && waitMs > 0)
                inbox.wake.wait_for(lock, std::chrono::duration<double, std::milli>(waitMs), ready);
            arrivals.swap(inbox.arrivals);
            completions.swap(inbox.completions);
            offeringOver = inbox.producers == 0;
        }
        if (cancel && cancel->load() && !stopOffering.load()) {
            stopOffering = true;
            log.cancelled = true;
            inbox.answeredCv.notify_all();
        }
        for (Completion& c : completions) {
            auto it = inFlight.find(c.batch);
            BatchDispatch b = std::move(it->second);
            inFlight.erase(it);
            scheduler.complete(b.instance);
            if (c.error && !failure) {
                failure = c.error;
                stopOffering = true;
                inbox.answeredCv.notify_all();
            }
            BatchRecord br;
            br.index = b.index;
            br.instance = b.instance;
            br.size = static_cast<int>(b.requests.size());
            br.samples = b.samples();
            br.dispatchMs = b.dispatchMs;
            br.completeMs = c.doneMs;
            br.queueAfter = b.queueAfter;
            log.batches.push_back(br);
            if (observer.batch) observer.batch(br);
            for (std::size_t k = 0; k < b.requests.size(); ++k) {
                RequestRecord rec;
                rec.request = b.requests[k];
                rec.dispatchMs = b.dispatchMs;
                rec.completeMs = c.doneMs;
                rec.batchSize = br.size;
                rec.batch = b.index;
                rec.instance = b.instance;
                rec.correct = k < c.correct.size() ? c.correct[k] : 0;
                log.requests.push_back(rec);
                if (observer.request) observer.request(rec);
                answer(rec.request);
            }
        }
        const double t = now();
        for (const ServeRequest& r : arrivals) {
            if (stopOffering.load()) { // cancelled: never offered
                answer(r);
                continue;
            }
            if (const auto lost = scheduler.arrive(r, r.arrivalMs)) {
                recordDrop(log, observer, *lost, t);
                answer(*lost);
            }
        }
        if (offeringOver) scheduler.endStream();
        if (!stopOffering.load() || !inFlight.empty() || scheduler.queued() > 0) {
            if (stopOffering.load()) scheduler.endStream(); // cancelled: the queue is served as it stands
            for (BatchDispatch& d : scheduler.poll(now())) {
                Worker& w = *workers[static_cast<std::size_t>(d.instance)];
                inFlight.emplace(d.index, d);
                {
                    std::lock_guard lock(w.mutex);
                    w.batch = std::move(d);
                }
                w.cv.notify_one();
            }
        }
        if (offeringOver && inFlight.empty() && scheduler.queued() == 0) break;
    }
    log.endMs = now();
    for (auto& w : workers) {
        {
            std::lock_guard lock(w->mutex);
            w->stop = true;
        }
        w->cv.notify_one();
        w->thread.join();
    }
    for (auto& c : clients) c.join();
    if (failure) std::rethrow_exception(failure);
    return log;
}

} // namespace lathe::serve

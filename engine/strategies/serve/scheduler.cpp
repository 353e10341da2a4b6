// Batching policies, the bounded queues and the discrete-event driver (scheduler.h).
#include "engine/strategies/serve/scheduler.h"

#include "engine/core/errors.h"

#include <algorithm>
#include <cmath>
#include <queue>

namespace lathe::serve {

namespace {

class NoBatching final : public BatchPolicy {
public:
    Decision decide(const QueueView& q, double) override { return {q.count > 0 ? 1u : 0u, kNever}; }
};

// Waits for exactly B requests; the stream's tail (fewer than B left at its end) goes as one smaller batch.
class StaticBatching final : public BatchPolicy {
public:
    explicit StaticBatching(int b) : m_b(static_cast<std::size_t>(b)) {}
    Decision decide(const QueueView& q, double) override {
        if (q.count >= m_b) return {m_b, kNever};
        if (q.streamEnded && q.count > 0) return {q.count, kNever};
        return {0, kNever};
    }

private:
    std::size_t m_b;
};

// Triton's rule: a full batch (max batch, or the largest preferred size) goes at once; otherwise the queue
// waits until its oldest request has waited the delay, then the largest preferred size that fits goes (all
// queued, up to max batch, when none fits).
class DynamicBatching : public BatchPolicy {
public:
    explicit DynamicBatching(const PolicySettings& s) : m_max(static_cast<std::size_t>(s.maxBatch)), m_delayMs(s.maxDelayMs) {
        for (auto p : s.preferred)
            if (p >= 1 && static_cast<std::size_t>(p) <= m_max) m_preferred.push_back(static_cast<std::size_t>(p));
        std::sort(m_preferred.begin(), m_preferred.end());
    }
    Decision decide(const QueueView& q, double nowMs) override {
        if (q.count == 0) return {};
        if (q.count >= m_max) return {m_max, kNever};
        if (!m_preferred.empty() && q.count >= m_preferred.back()) return {m_preferred.back(), kNever};
        const double due = q.oldestMs + delayMs();
        if (nowMs >= due || q.streamEnded) {
            std::size_t take = std::min(q.count, m_max);
            for (auto it = m_preferred.rbegin(); it != m_preferred.rend(); ++it)
                if (*it <= q.count) {
                    take = *it;
                    break;
                }
            return {take, kNever};
        }
        return {0, due};
    }

protected:
    virtual double delayMs() const { return m_delayMs; }
    std::size_t m_max;
    double m_delayMs;
    std::vector<std::size_t> m_preferred;
};

// Dynamic batching whose delay follows the observed arrival rate (an exponentially weighted mean of the
// gaps over about the last 32 arrivals): the time the next max_batch - 1 requests are expected to take to
// arrive, capped at max_queue_delay_ms, and no wait at all while fewer than one more request is expected
// within the cap (waiting would add latency without making a larger batch).
class AdaptiveBatching final : public DynamicBatching {
public:
    using DynamicBatching::DynamicBatching;
    void observeArrival(double nowMs) override {
        if (m_lastMs >= 0) {
            const double gap = nowMs - m_lastMs;
            m_meanGapMs = m_meanGapMs < 0 ? gap : m_meanGapMs + (gap - m_meanGapMs) / 32.0;
        }
        m_lastMs = nowMs;
    }

protected:
    double delayMs() const override {
        if (m_meanGapMs <= 0) return m_meanGapMs < 0 ? 0.0 : m_delayMs; // no estimate yet / simultaneous arrivals
        if (m_delayMs / m_meanGapMs < 1.0) return 0.0;
        return std::min(m_delayMs, static_cast<double>(m_max - 1) * m_meanGapMs);
    }

private:
    double m_lastMs = -1;
    double m_meanGapMs = -1;
};

// Dynamic batching over one queue per class, batches filled from the highest class (0) down.
class PriorityBatching final : public DynamicBatching {
public:
    using DynamicBatching::DynamicBatching;
    bool priorityOrder() const override { return true; }
};

} // namespace

void recordDrop(ServeLog& log, const ServeObserver& observer, const ServeRequest& request, double tMs) {
    RequestRecord rec;
    rec.request = request;
    rec.dropped = true;
    rec.completeMs = tMs;
    log.requests.push_back(rec);
    if (observer.request) observer.request(rec);
}

const std::vector<std::pair<std::string, PolicyKind>>& policyNames() {
    static const std::vector<std::pair<std::string, PolicyKind>> names{{"none", PolicyKind::None},
                                                                       {"static", PolicyKind::Static},
                                                                       {"dynamic", PolicyKind::Dynamic},
                                                                       {"adaptive", PolicyKind::Adaptive},
                                                                       {"priority", PolicyKind::Priority}};
    return names;
}

std::string policyName(PolicyKind kind) {
    for (const auto& [name, k] : policyNames())
        if (k == kind) return name;
    return "?";
}

std::unique_ptr<BatchPolicy> makePolicy(const PolicySettings& s) {
    if (s.maxBatch < 1) throw ConfigError("max_batch must be at least 1");
    switch (s.kind) {
    case PolicyKind::None: return std::make_unique<NoBatching>();
    case PolicyKind::Static: return std::make_unique<StaticBatching>(s.maxBatch);
    case PolicyKind::Dynamic: return std::make_unique<DynamicBatching>(s);
    case PolicyKind::Adaptive: return std::make_unique<AdaptiveBatching>(s);
    case PolicyKind::Priority: return std::make_unique<PriorityBatching>(s);
    }
    throw ConfigError("unknown batching policy");
}

ServeScheduler::ServeScheduler(BatchPolicy& policy, SchedulerSettings settings)
    : m_policy(policy), m_settings(settings) {
    if (m_settings.instances < 1) throw ConfigError("instances must be at least 1");
    if (m_settings.queueCap < 1) throw ConfigError("queue_cap must be at least 1");
    m_queues.resize(policy.priorityOrder() ? static_cast<std::size_t>(std::max(1, settings.classes)) : 1);
    m_busy.assign(static_cast<std::size_t>(m_settings.instances), false);
}

std::optional<ServeRequest> ServeScheduler::arrive(const ServeRequest& r, double nowMs) {
    m_policy.observeArrival(nowMs);
    const std::size_t q = m_queues.size() == 1 ? 0 : static_cast<std::size_t>(std::clamp(r.priority, 0, int(m_queues.size()) - 1));
    std::optional<ServeRequest> dropped;
    if (m_count >= m_settings.queueCap) {
        ++m_dropped;
        std::size_t victim = m_queues.size();
        for (std::size_t lower = m_queues.size(); lower-- > q + 1;)
            if (!m_queues[lower].empty()) {
                victim = lower;
                break;
            }
        if (victim == m_queues.size()) return r;
        dropped = m_queues[victim].back();
        m_queues[victim].pop_back();
        --m_count;
    }
    m_queues[q].push_back(r);
    ++m_count;
    return dropped;
}

void ServeScheduler::complete(int instance) { m_busy.at(static_cast<std::size_t>(instance)) = false; }

int ServeScheduler::freeInstances() const {
    return static_cast<int>(std::count(m_busy.begin(), m_busy.end(), false));
}

QueueView ServeScheduler::view() const {
    QueueView v;
    v.count = m_count;
    v.streamEnded = m_ended;
    for (const auto& q : m_queues)
        if (!q.empty()) v.oldestMs = std::min(v.oldestMs, q.front().arrivalMs);
    return v;
}

ServeRequest ServeScheduler::popNext() {
    for (auto& q : m_queues)
        if (!q.empty()) {
            ServeRequest r = q.front();
            q.pop_front();
            --m_count;
            return r;
        }
    throw ConfigError("serve scheduler: popped an empty queue");
}

std::vector<BatchDispatch> ServeScheduler::poll(double nowMs) {
    std::vector<BatchDispatch> out;
    m_wakeMs = kNever;
    while (m_count > 0) {
        const auto freeIt = std::find(m_busy.begin(), m_busy.end(), false);
        if (freeIt == m_busy.end()) break;
        const Decision d = m_policy.decide(view(), nowMs);
        if (d.take == 0) {
            m_wakeMs = d.wakeMs;
            break;
        }
        BatchDispatch b;
        b.index = m_batches++;
        b.instance = static_cast<int>(freeIt - m_busy.begin());
        b.dispatchMs = nowMs;
        const std::size_t take = std::min(d.take, m_count);
        for (std::size_t i = 0; i < take; ++i) b.requests.push_back(popNext());
        b.queueAfter = m_count;
        *freeIt = true;
        out.push_back(std::move(b));
    }
    return out;
}

Workload makeWorkload(const StreamSettings& s) {
    Workload w;
    w.closedLoop = s.kind == ArrivalKind::Closed;
    w.clients = s.clients;
    w.thinkMs = s.thinkMs;
    w.requests = s.requests;
    w.durationS = s.durationS;
    w.samplesPerRequest = s.samplesPerRequest;
    if (!w.closedLoop) w.arrivals = openLoopArrivals(s);
    return w;
}

ServeLog runVirtual(const Workload& work, const PolicySettings& policySettings, const SchedulerSettings& sched,
                    BatchExecutor& executor, const ServeObserver& observer, const std::function<bool()>& cancelled) {
    auto policy = makePolicy(policySettings);
    ServeScheduler scheduler(*policy, sched);
    ServeLog log;

    // Pending arrivals (time, request), earliest first; the open loop's all at once, the closed loop's
    // one per client as answers come back.
    using Pending = std::pair<double, ServeRequest>;
    auto later = [](const Pending& a, const Pending& b) {
        return a.first != b.first ? a.first > b.first : a.second.id > b.second.id;
    };
    std::priority_queue<Pending, std::vector<Pending>, decltype(later)> arrivals(later);
    std::int64_t issued = 0;
    auto issue = [&](double at, int client) {
        if (work.durationS > 0 ? at >= work.durationS * 1000.0 : issued >= work.requests) return;
        ServeRequest r;
        r.id = issued++;
        r.arrivalMs = at;
        r.samples = work.samplesPerRequest;
        r.client = client;
        arrivals.push({at, r});
    };
    if (work.closedLoop) {
        for (int c = 0; c < work.clients; ++c) issue(0.0, c);
    } else {
        for (const Arrival& a : work.arrivals) {
            ServeRequest r;
            r.id = issued++;
            r.arrivalMs = a.tMs;
            r.samples = a.samples;
            r.priority = a.priority;
            arrivals.push({a.tMs, r});
        }
    }
    // In flight: completion time, batch record index, and its requests.
    struct Flight {
        double doneMs;
        std::size_t batch;
        std::vector<ServeRequest> requests;
    };
    auto sooner = [](const Flight& a, const Flight& b) {
        return a.doneMs != b.doneMs ? a.doneMs > b.doneMs : a.batch > b.batch;
    };
    std::priority_queue<Flight, std::vector<Flight>, decltype(sooner)> flights(sooner);
    // No request will arrive any more: the open loop's last has, or every closed-loop client has sent its
    // last (or all of them wait in the queue with nothing in flight, which only a flush can answer).
    auto streamOver = [&] {
        if (!arrivals.empty()) return false;
        if (!work.closedLoop) return true;
        return flights.empty() || (work.durationS <= 0 && issued >= work.requests);
    };

    double now = 0;
    std::int64_t events = 0;
    for (;;) {
        if (cancelled && (++events % 4096) == 0 && cancelled()) {
            log.cancelled = true;
            break;
        }
        const double tArrive = arrivals.empty() ? kNever : arrivals.top().first;
        const double tDone = flights.empty() ? kNever : flights.top().doneMs;
        const double tWake = scheduler.wakeMs();
        const double t = std::min({tArrive, tDone, tWake});
        if (t == kNever) break;
        now = std::max(now, t);
        // Completions first: an instance freed at t can take a request arriving at t.
        while (!flights.empty() && flights.top().doneMs <= now) {
            Flight f = flights.top();
            flights.pop();
            scheduler.complete(log.batches[f.batch].instance);
            const BatchRecord& b = log.batches[f.batch];
            for (const ServeRequest& r : f.requests) {
                RequestRecord rec;
                rec.request = r;
                rec.dispatchMs = b.dispatchMs;
                rec.completeMs = f.doneMs;
                rec.batchSize = b.size;
                rec.batch = b.index;
                rec.instance = b.instance;
                log.requests.push_back(rec);
                if (observer.request) observer.request(rec);
                if (work.closedLoop) issue(f.doneMs + work.thinkMs, r.client);
            }
        }
        while (!arrivals.empty() && arrivals.top().first <= now) {
            const ServeRequest r = arrivals.top().second;
            arrivals.pop();
            if (const auto lost = scheduler.arrive(r, now)) {
                recordDrop(log, observer, *lost, now);
                if (work.closedLoop) issue(now + work.thinkMs, lost->client);
            }
        }
        if (streamOver()) scheduler.endStream();
        for (BatchDispatch& d : scheduler.poll(now)) {
            const double ms = executor.executeMs(d);
            BatchRecord b;
            b.index = d.index;
            b.instance = d.instance;
            b.size = static_cast<int>(d.requests.size());
            b.samples = d.samples();
            b.dispatchMs = now;
            b.completeMs = now + ms;
            b.queueAfter = d.queueAfter;
            log.batches.push_back(b);
            if (observer.batch) observer.batch(b);
            flights.push({now + ms, log.batches.size() - 1, std::move(d.requests)});
        }
        // An idle scheduler at the end of the stream (static's tail released above) has nothing left.
        if (arrivals.empty() && flights.empty() && scheduler.queued() > 0 && scheduler.wakeMs() == kNever &&
            streamOver())
            throw ConfigError("serve scheduler: requests left queued at the end of the stream");
    }
    log.endMs = now;
    return log;
}

} // namespace lathe::serve

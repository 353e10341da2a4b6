// The `serve` family. `serve.batching`: one batching policy under one request stream, executed for real on
// the run's backend (or, with mode "simulate", replayed on a virtual clock through a latency(batch) model
// fitted from timed executions; such runs are marked simulated). `serve.capacity`: an offered-load sweep of
// one or more policies, each policy's knee (the highest rate meeting the SLO) stored and charted.
#include "engine/core/clock.h"
#include "engine/strategies/serve/executor.h"
#include "engine/strategies/serve/realtime.h"
#include "engine/strategies/serve/serve_generate.h"
#include "engine/strategies/serve/serve_stats.h"
#include "engine/strategies/serve/stream_fields.h"
#include "engine/strategies/strategy.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <sstream>

namespace lathe::serve {
namespace {

enum class ServeMode { Real, Simulate };

// The fields both strategies share: the stream, the policy's settings, the SLO and the mode.
struct ServeParams {
    ServeMode mode = ServeMode::Real;
    ArrivalKind arrival = ArrivalKind::Poisson;
    double ratePerS = 200;
    int clients = 4;
    double thinkMs = 0;
    double cv = 2;
    double onMs = 50, offMs = 50;
    std::int64_t requests = 2000;
    double durationS = 0;
    int samplesPerRequest = 1;
    int priorityClasses = 1;
    double highFraction = 0.5;
    std::string trace;
    std::int64_t warmupRequests = 50;
    PolicyKind policy = PolicyKind::Dynamic;
    int maxBatch = 32;
    double maxDelayMs = 2;
    std::vector<std::int64_t> preferredSizes;
    int instances = 1;
    std::int64_t queueCap = 10000;
    double sloMs = 10;
    std::vector<std::int64_t> classSloMs;
    int fitRepeats = 40;
};

struct CapacityParams {
    ServeParams serve;
    std::string policies = "none,dynamic,adaptive";
    std::vector<std::int64_t> rates{100, 200, 400, 800};
    double sloTarget = 0.99;
};

void addServeFields(SchemaBuilder<ServeParams>& b, bool withPolicy) {
    using P = ServeParams;
    b.choice("mode", &P::mode, {{"real", ServeMode::Real}, {"simulate", ServeMode::Simulate}}, ServeMode::Real,
             "execute every batch on the backend, or replay the stream on a latency model fitted from timed batches");
    b.choice("arrival", &P::arrival,
             {{"closed", ArrivalKind::Closed}, {"poisson", ArrivalKind::Poisson}, {"gamma", ArrivalKind::Gamma},
              {"onoff", ArrivalKind::OnOff}, {"trace", ArrivalKind::Trace}},
             ArrivalKind::Poisson,
             "closed loop of N clients; open-loop Poisson; Gamma gaps with a coefficient of variation; on/off bursts; "
             "a CSV trace");
    b.number("rate_per_s", &P::ratePerS, 200,
             {.min = 0, .minExclusive = true, .unit = "requests/s", .help = "mean offered rate of the open loop"});
    b.integer("clients", &P::clients, 4, {.min = 1, .max = 4096, .help = "closed loop: concurrent clients"});
    b.number("think_ms", &P::thinkMs, 0, {.min = 0, .unit = "ms", .help = "closed loop: pause before a client's next request"});
    b.number("cv", &P::cv, 2, {.min = 0, .minExclusive = true, .help = "gamma: coefficient of variation of the gaps"});
    b.number("on_ms", &P::onMs, 50, {.min = 0, .minExclusive = true, .unit = "ms", .help = "onoff: length of a burst"});
    b.number("off_ms", &P::offMs, 50, {.min = 0, .unit = "ms", .help = "onoff: silence between bursts"});
    b.integer("requests", &P::requests, 2000, {.min = 1, .help = "requests offered (unless duration_s is set)"});
    b.number("duration_s", &P::durationS, 0,
             {.min = 0, .unit = "s", .help = "when above 0: offer requests for this long instead of a count"});
    b.integer("samples_per_request", &P::samplesPerRequest, 1,
              {.min = 1, .max = 4096, .help = "samples of the evaluated split each request carries"});
    b.integer("priority_classes", &P::priorityClasses, 1, {.min = 1, .max = 8, .help = "priority classes (0 = highest)"});
    b.number("high_fraction", &P::highFraction, 0.5,
             {.min = 0, .max = 1, .help = "share of class 0 in a synthetic stream with several classes"});
    b.text("trace", &P::trace, "", "trace: CSV file of arrival_ms,samples,priority rows (relative to the experiment)");
    b.integer("warmup_requests", &P::warmupRequests, 50,
              {.min = 0, .help = "first requests served but not measured (the very first is reported alone)"});
    if (withPolicy) {
        std::vector<std::pair<std::string, PolicyKind>> names = policyNames();
        b.choice("policy", &P::policy, names, PolicyKind::Dynamic,
                 "none; static (wait for max_batch); dynamic; adaptive (delay from the arrival rate); priority queues");
    }
    b.integer("max_batch", &P::maxBatch, 32, {.min = 1, .max = 4096, .help = "largest batch (static: the batch it waits for)"});
    b.number("max_queue_delay_ms", &P::maxDelayMs, 2,
             {.min = 0, .unit = "ms", .help = "longest wait of the oldest queued request before a partial batch goes"});
    b.integers("preferred_sizes", &P::preferredSizes, {},
               {.min = 1, .help = "dynamic, priority: batch sizes released as soon as they are reached"});
    b.integer("instances", &P::instances, 1, {.min = 1, .max = 64, .help = "model instances executing batches at once"});
    b.integer("queue_cap", &P::queueCap, 10000, {.min = 1, .help = "queued requests beyond this are dropped and counted"});
    b.number("slo_ms", &P::sloMs, 10,
             {.min = 0, .minExclusive = true, .unit = "ms", .help = "end-to-end latency objective per request"});
    b.integers("class_slo_ms", &P::classSloMs, {},
               {.min = 1, .help = "per priority class from 0, in whole ms (classes beyond the list use slo_ms)"});
    b.integer("fit_repeats", &P::fitRepeats, 40, {.min = 3, .max = 100000, .help = "simulate: timed batches per fitted size"});
}

StreamSettings streamOf(const ServeParams& p, const StepContext& ctx, double rate) {
    StreamSettings s = openStreamOf(p, ctx, rate);
    s.clients = p.clients;
    s.thinkMs = p.thinkMs;
    s.samplesPerRequest = p.samplesPerRequest;
    s.priorityClasses = p.priorityClasses;
    s.highFraction = p.highFraction;
    return s;
}

PolicySettings policyOf(const ServeParams& p, PolicyKind kind) {
    return {kind, p.maxBatch, p.maxDelayMs, p.preferredSizes};
}

SchedulerSettings schedulerOf(const ServeParams& p) {
    return {p.instances, static_cast<std::size_t>(p.queueCap), p.priorityClasses};
}

SloSettings sloOf(const ServeParams& p) {
    SloSettings s{p.sloMs, {}};
    for (auto v : p.classSloMs) s.classSloMs.push_back(static_cast<double>(v));
    return s;
}

// Streams a served request's samples to the run's sink, every `stride`-th of each series so that a long
// stream does not flood the store; called on the step's own thread.
class LiveSeries {
public:
    LiveSeries(const StepContext& ctx, double streamStartMs, std::int64_t expected)
        : m_ctx(ctx), m_offsetMs(streamStartMs - ctx.runStartMs),
          m_stride(std::max<std::int64_t>(1, expected / 4000)) {}
    ServeObserver observer() {
        ServeObserver o;
        o.request = [this](const RequestRecord& r) {
            if (r.dropped) return;
            const std::int64_t k = m_done++;
            if (k % m_stride != 0) return;
            const double t = m_offsetMs + r.completeMs;
            m_ctx.sink().push(makeSample(m_ctx.runId, "serve/latency_ms", k, t, r.latencyMs()));
            m_ctx.sink().push(makeSample(m_ctx.runId, "serve/queue_ms", k, t, r.queueMs()));
        };
        o.batch = [this](const BatchRecord& b) {
            const std::int64_t k = m_batches++;
            if (k % m_stride != 0) return;
            const double t = m_offsetMs + b.dispatchMs;
            m_ctx.sink().push(makeSample(m_ctx.runId, "serve/batch_size", k, t, b.size));
            m_ctx.sink().push(makeSample(m_ctx.runId, "serve/queue_depth", k, t, static_cast<double>(b.queueAfter)));
        };
        return o;
    }

private:
    const StepContext& m_ctx;
    double m_offsetMs;
    std::int64_t m_stride;
    std::int64_t m_done = 0, m_batches = 0;
};

std::int64_t expectedRequests(const ServeParams& p, const Workload& w, double rate) {
    if (!w.closedLoop) return static_cast<std::int64_t>(w.arrivals.size());
    return p.durationS > 0 ? static_cast<std::int64_t>(p.durationS * rate) : p.requests;
}

std::int64_t largestBatchSamples(const ServeParams& p, const Workload& w) {
    int most = p.samplesPerRequest;
    for (const Arrival& a : w.arrivals) most = std::max(most, a.samples);
    return static_cast<std::int64_t>(p.maxBatch) * most;
}

// Serves one stream with one policy, really or on the fitted model; `model` is fitted on first use.
class StreamServer {
public:
    StreamServer(const StepContext& ctx, const ServeParams& p, const std::string& owner)
        : m_ctx(ctx), m_params(p), m_owner(owner), m_executor(ctx.model(), ctx.backend(), ctx.evalData(), p.instances) {}

    ServeLog serve(const Workload& work, PolicyKind kind, const ServeObserver& observer) {
        if (m_params.mode == ServeMode::Real) {
            if (m_params.instances > 1 && !m_notedInstances) {
                if (!m_executor.concurrent())
                    m_ctx.notes()["serve"] += m_owner + ": " + m_ctx.backend().name() +
                                              " executes the instances' batches one at a time (one stream). ";
                else if (m_executor.instanceBackends() > 0)
                    m_ctx.notes()["serve"] += m_owner + ": each of the " + std::to_string(m_params.instances) +
                                              " instances executes on a " + m_ctx.backend().name() +
                                              " backend of its own (its own stream), sharing the weights. ";
                m_notedInstances = true;
            }
            return runRealtime(work, policyOf(m_params, kind), schedulerOf(m_params),
                               [this](int instance, const std::vector<ServeRequest>& r) {
                                   return m_executor.run(instance, r);
                               },
                               observer,
                               m_ctx.cancel);
        }
        if (m_model.empty()) fit(largestBatchSamples(m_params, work));
        ModelledExecutor exec(m_model, m_ctx.seed + 17);
        const std::atomic<bool>* cancel = m_ctx.cancel;
        return runVirtual(work, policyOf(m_params, kind), schedulerOf(m_params), exec, observer,
                          [cancel] { return cancel && cancel->load(); });
    }

private:
    void fit(std::int64_t maxSamples) {
        m_ctx.info(m_owner + ": timing batches of 1.." + std::to_string(maxSamples) + " samples for the latency model");
        m_model = fitLatencyModel(m_executor, maxSamples, 3, m_params.fitRepeats, m_ctx.cancel);
        std::ostringstream what;
        what << m_owner << ": latencies from a latency(batch) model fitted to " << m_params.fitRepeats
             << " timed batches at each of " << m_model.sizes().size() << " sizes (median at 1: "
             << fixed(m_model.medianMs(1), 3) << " ms, at " << maxSamples << ": "
             << fixed(m_model.medianMs(static_cast<double>(maxSamples)), 3) << " ms)";
        if (m_params.instances > 1) what << "; instances assumed not to slow each other";
        m_ctx.markSimulated(what.str());
    }

    const StepContext& m_ctx;
    const ServeParams& m_params;
    std::string m_owner;
    ModelExecutor m_executor;
    LatencyModel m_model;
    bool m_notedInstances = false;
};

class ServeBatching final : public Strategy {
public:
    explicit ServeBatching(ServeParams p) : m_params(std::move(p)) {}
    void apply(StepContext& ctx) override {
        const StreamSettings stream = streamOf(m_params, ctx, m_params.ratePerS);
        const Workload work = makeWorkload(stream);
        StreamServer server(ctx, m_params, "serve.batching");
        LiveSeries live(ctx, steadyClockMs(), expectedRequests(m_params, work, m_params.ratePerS));
        if (ctx.progress) ctx.progress(0.0, "serving " + policyName(m_params.policy));
        const ServeLog log = server.serve(work, m_params.policy, live.observer());
        auto summary = summarizeServeLog(log, m_params.warmupRequests, sloOf(m_params), m_params.priorityClasses,
                                         m_params.mode == ServeMode::Real);
        for (const auto& [k, v] : summary) ctx.summary()[k] = v;
        for (const auto& [size, count] : batchSizeHistogram(log)) {
            ctx.sink().push(makeSample(ctx.runId, "serve/batch_hist", size, 0, static_cast<double>(count)));
            ctx.summary()["serve_batches@b" + std::to_string(size)] = static_cast<double>(count);
        }
        std::ostringstream line;
        line << "serve.batching " << policyName(m_params.policy) << ": " << fixed(summary["served"], 0) << " served, p99 "
             << fixed(summary["serve_p99_ms"], 3) << " ms, " << fixed(summary["serve_throughput_per_s"], 1)
             << " requests/s, SLO attainment " << fixed(summary["slo_attainment"], 4) << ", dropped "
             << fixed(summary["dropped"], 0);
        if (log.cancelled) {
            ctx.notes()["serve"] += "cancelled after " + fixed(summary["served"], 0) + " measured requests were served. ";
            throw CancelledError();
        }
        ctx.info(line.str());
    }

private:
    ServeParams m_params;
};

std::vector<std::pair<std::string, PolicyKind>> parsePolicyList(const std::string& text, std::string& error) {
    std::vector<std::pair<std::string, PolicyKind>> out;
    std::stringstream in(text);
    std::string item;
    std::vector<std::string> known;
    for (const auto& [n, k] : policyNames()) known.push_back(n);
    while (std::getline(in, item, ',')) {
        item.erase(0, item.find_first_not_of(' '));
        item.erase(item.find_last_not_of(' ') + 1);
        bool found = false;
        for (const auto& [n, k] : policyNames())
            if (n == item) {
                found = true;
                for (const auto& seen : out)
                    if (seen.first == n) {
                        error = "policy \"" + n + "\" is listed twice";
                        return {};
                    }
                out.emplace_back(n, k);
            }
        if (!found) {
            error = unknownNameMessage("policy", item, known);
            return {};
        }
    }
    if (out.empty()) error = "expected a comma-separated list of policies, e.g. \"none,dynamic\"";
    return out;
}

class ServeCapacity final : public Strategy {
public:
    explicit ServeCapacity(CapacityParams p) : m_params(std::move(p)) {}
    void apply(StepContext& ctx) override {
        std::string error;
        const auto policies = parsePolicyList(m_params.policies, error);
        if (!error.empty()) throw ConfigError("serve.capacity: policies: " + error);
        std::vector<std::int64_t> rates = m_params.rates;
        std::sort(rates.begin(), rates.end());
        const ServeParams& sp = m_params.serve;
        StreamServer server(ctx, sp, "serve.capacity");
        const SloSettings slo = sloOf(sp);
        const double points = static_cast<double>(policies.size() * rates.size());
        double done = 0;
        double bestKnee = 0;
        std::string bestPolicy;
        for (std::int64_t rate : rates)
            ctx.sink().push(makeSample(ctx.runId, "slo_ms", rate, steadyClockMs() - ctx.runStartMs, sp.sloMs));
        for (const auto& [name, kind] : policies) {
            double knee = 0, kneeP99 = 0;
            for (std::int64_t rate : rates) {
                if (ctx.progress) ctx.progress(done / points, name + " at " + std::to_string(rate) + " requests/s");
                // The same stream (seed) for every policy at a rate.
                const Workload work = makeWorkload(streamOf(sp, ctx, static_cast<double>(rate)));
                const ServeLog log = server.serve(work, kind, {});
                if (log.cancelled) {
                    ctx.notes()["serve"] += "cancelled during " + name + " at " + std::to_string(rate) + " requests/s. ";
                    throw CancelledError();
                }
                const auto s = summarizeServeLog(log, sp.warmupRequests, slo, sp.priorityClasses,
                                                 sp.mode == ServeMode::Real);
                const std::string tag = "@" + name + "@r" + std::to_string(rate);
                for (const char* key : {"serve_p50_ms", "serve_p99_ms", "serve_throughput_per_s", "goodput_per_s",
                                        "slo_attainment", "dropped", "serve_batch_mean"})
                    if (s.count(key)) ctx.summary()[key + tag] = s.at(key);
                const double p99 = s.count("serve_p99_ms") ? s.at("serve_p99_ms") : 0.0;
                const double t = steadyClockMs() - ctx.runStartMs;
                ctx.sink().push(makeSample(ctx.runId, name + "/serve_p99_ms", rate, t, p99));
                ctx.sink().push(makeSample(ctx.runId, name + "/goodput_per_s", rate, t, s.at("goodput_per_s")));
                if (s.at("slo_attainment") >= m_params.sloTarget && static_cast<double>(rate) > knee) {
                    knee = static_cast<double>(rate);
                    kneeP99 = p99;
                }
                done += 1;
            }
            ctx.summary()["knee_rate_per_s@" + name] = knee;
            if (knee > 0)
                ctx.sink().push(makeSample(ctx.runId, name + "/knee_ms", static_cast<std::int64_t>(knee),
                                           steadyClockMs() - ctx.runStartMs, kneeP99));
            ctx.info("serve.capacity " + name + ": knee " + fixed(knee, 0) + " requests/s (SLO " +
                     fixed(sp.sloMs, 2) + " ms met by " + fixed(100 * m_params.sloTarget, 1) + "% of requests)");
            if (knee > bestKnee || bestPolicy.empty()) {
                bestKnee = knee;
                bestPolicy = name;
            }
        }
        ctx.summary()["knee_rate_per_s"] = bestKnee;
        ctx.notes()["serve"] += "capacity: the highest knee is " + bestPolicy + "'s, " + fixed(bestKnee, 0) +
                                " requests/s (a knee of 0: no rate swept met the SLO). ";
    }

private:
    CapacityParams m_params;
};

// Checks validation can make before the run: a trace file's rows, the policy list.
void checkStream(const ServeParams& p, ModelCheck& check) {
    checkTraceField(p.arrival, p.trace, p.priorityClasses, check);
    if (p.classSloMs.size() > static_cast<std::size_t>(p.priorityClasses))
        check.issue("class_slo_ms", "expected at most " + std::to_string(p.priorityClasses) +
                                        " values (one per priority class), got " + std::to_string(p.classSloMs.size()));
}

} // namespace
} // namespace lathe::serve

LATHE_STRATEGY_FAMILY(serve) {
    using namespace lathe;
    using namespace lathe::serve;
    {
        SchemaBuilder<ServeParams> b("serve.batching", "serve",
                                     "serve a request stream with one batching policy; latency, throughput, goodput");
        addServeFields(b, true);
        b.checkModel([](const ServeParams& p, ModelCheck& check) {
            checkStream(p, check);
            if (p.policy == PolicyKind::Static && p.arrival == ArrivalKind::Closed && p.clients < p.maxBatch)
                check.issue("clients", "static batching waits for " + std::to_string(p.maxBatch) +
                                           " requests, which " + std::to_string(p.clients) + " closed-loop clients never send");
        });
        registry.add(b, [](const ServeParams& p) { return std::make_unique<ServeBatching>(p); });
    }
    {
        SchemaBuilder<CapacityParams> b("serve.capacity", "serve",
                                        "offered-load sweep of batching policies: each policy's knee under the SLO");
        SchemaBuilder<ServeParams> common("serve.capacity", "serve", "");
        addServeFields(common, false);
        b.include(common, &CapacityParams::serve);
        b.text("policies", &CapacityParams::policies, "none,dynamic,adaptive",
               "comma-separated policies compared (none, static, dynamic, adaptive, priority)");
        b.integers("rates", &CapacityParams::rates, {100, 200, 400, 800},
                   {.min = 1, .unit = "requests/s", .help = "offered rates swept (open-loop arrivals)"});
        b.number("slo_target", &CapacityParams::sloTarget, 0.99,
                 {.min = 0, .max = 1, .minExclusive = true,
                  .help = "share of requests that must meet slo_ms for a rate to count as met"});
        b.checkModel([](const CapacityParams& p, ModelCheck& check) {
            checkStream(p.serve, check);
            std::string error;
            parsePolicyList(p.policies, error);
            if (!error.empty()) check.issue("policies", error);
            if (p.rates.empty()) check.issue("rates", "expected at least one rate");
            if (p.serve.arrival == ArrivalKind::Closed || p.serve.arrival == ArrivalKind::Trace)
                check.issue("arrival", "a capacity sweep offers open-loop rates: expected poisson, gamma or onoff");
        });
        registry.add(b, [](const CapacityParams& p) { return std::make_unique<ServeCapacity>(p); });
    }
    registerServeGenerate(registry);
}

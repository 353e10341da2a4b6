// The Runner: one stored run per plan. Data is loaded once per experiment; a trained baseline is
// cached as safetensors keyed by what determines its weights; steps run in order; the final
// measurement writes the shared summary keys. Failures and cancels are stored, never dropped.
#include "engine/experiment/runner.h"

#include "engine/backends/registry.h"
#include "engine/core/errors.h"
#include "engine/io/model_data.h"
#include "engine/io/model_io.h"
#include "engine/io/pretrained.h"
#include "engine/measure/environment.h"
#include "engine/measure/model_measure.h"
#include "engine/measure/roofline.h"
#include "engine/measure/sha256.h"
#include "engine/strategies/train/training.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>

namespace lathe {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Samples go to the store (batched) and, when given, to the live sink (the GUI's ring).
class TeeSink final : public MetricSink {
public:
    TeeSink(MetricSink& first, MetricSink* second) : m_first(first), m_second(second) {}
    void push(const MetricSample& s) override {
        m_first.push(s);
        if (m_second) m_second->push(s);
    }
    void flush() override {
        m_first.flush();
        if (m_second) m_second->flush();
    }

private:
    MetricSink& m_first;
    MetricSink* m_second;
};

std::string defaultCacheDir() {
    if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return std::string(xdg) + "/lathe/baselines";
    if (const char* home = std::getenv("HOME"); home && *home) return std::string(home) + "/.cache/lathe/baselines";
    return "/tmp/lathe-cache/baselines";
}

std::string strategyChain(const ExperimentSpec& spec) {
    std::string chain;
    auto add = [&](const std::string& s) { chain += (chain.empty() ? "" : " > ") + s; };
    if (spec.baseline.train) add("train");
    else if (!spec.baseline.modelPath.empty() || !spec.model.path.empty()) add("baseline");
    for (const auto& s : spec.steps)
        if (s.enabled) add(s.strategy);
    return chain.empty() ? "measure" : chain;
}

std::vector<std::string> datasetFiles(const DatasetSplits& d) {
    std::vector<std::string> files = d.train.sourceFiles;
    files.insert(files.end(), d.test.sourceFiles.begin(), d.test.sourceFiles.end());
    return files;
}

class PlanExecution {
public:
    PlanExecution(const RunPlan& plan, Backend& backend, const DatasetSplits& data, MetricSink& sink,
                  std::int64_t runId, const RunnerEvents& events, const std::atomic<bool>& cancel,
                  const std::string& cacheDir, std::function<void(double, const std::string&)> progress,
                  std::map<std::string, std::string>& notes, std::map<std::string, double>& summary)
        : m_notes(notes), m_summary(summary), m_plan(plan), m_spec(plan.spec), m_backend(backend), m_data(data), m_sink(sink), m_runId(runId),
          m_events(events), m_cancel(cancel), m_cacheDir(cacheDir), m_progress(std::move(progress)) {}

    // Runs baseline, steps and measurement; returns the summary and the per-layer stats.
    std::map<std::string, double> execute(std::vector<LayerStat>& layerStats) {
        m_layerStats = &layerStats;
        m_runStartMs = steadyClockMs();
        const Dataset& split = m_spec.dataset.split == "train" ? m_data.train : m_data.test;
        m_eval = split.head(m_spec.dataset.limit);
        int enabledSteps = 0;
        for (const auto& s : m_spec.steps) enabledSteps += s.enabled ? 1 : 0;
        m_phases = 2 + enabledSteps;
        // Every step is created and asked about the backend before the baseline costs anything.
        std::vector<std::unique_ptr<Strategy>> strategies(m_spec.steps.size());
        for (std::size_t i = 0; i < m_spec.steps.size(); ++i) {
            if (!m_spec.steps[i].enabled) continue;
            strategies[i] = StrategyRegistry::instance().create(m_spec.steps[i].strategy, m_spec.steps[i].params);
            strategies[i]->checkBackend(m_backend);
        }

        prepareBaseline();
        checkCancel();
        const double baselineBytes = static_cast<double>(m_model->parameterBytes());
        m_summary["baseline_model_bytes"] = baselineBytes;
        if (m_spec.measure.accuracy && !m_eval.labelled) {
            // No labels: the baseline's outputs are what every later measurement is compared with.
            m_reference = modelOutputs(*m_model, m_backend, m_eval, 64, &m_cancel);
            m_hasReference = true;
            log(LogLevel::Info, "reference outputs of the baseline on " + std::to_string(m_reference.rows) +
                                    " samples of " + m_eval.name + " (no labels: fidelity instead of accuracy)");
        } else if (m_spec.measure.accuracy) {
            const EvalResult base = evaluate(*m_model, m_backend, m_eval, 256, &m_cancel);
            m_summary["baseline_accuracy"] = base.accuracy;
            log(LogLevel::Info, "baseline accuracy " + std::to_string(base.accuracy) + " on " +
                                    std::to_string(base.count) + " samples of " + m_eval.name);
        }

        int phase = 1;
        for (std::size_t i = 0; i < m_spec.steps.size(); ++i) {
            const StepSpec& step = m_spec.steps[i];
            if (!step.enabled) {
                log(LogLevel::Info, "step " + std::to_string(i) + " (" + step.strategy + ") is disabled");
                continue;
            }
            checkCancel();
            log(LogLevel::Info, "step " + std::to_string(i) + ": " + step.strategy);
            StepContext ctx = context(phase, step.strategy);
            ctx.stepIndex = static_cast<int>(i);
            strategies[i]->apply(ctx);
            ++phase;
        }
        checkCancel();

        MeasureRequest req;
        static_cast<MeasureSettings&>(req) = m_spec.measure;
        req.seed = m_spec.seed;
        const MeasureOutcome out = measureModel(
            MeasureTarget{*m_model, m_backend, m_eval, m_sink, m_runId, m_runStartMs, &m_cancel,
                          [this, phase](double f, const std::string& what) { report(phase, f, "measure: " + what); },
                          reference()},
            req);
        for (const auto& [k, v] : out.summary) m_summary[k] = v;
        if (out.noisy)
            log(LogLevel::Warning, noiseWarning(out, req));
        if (req.accuracy && m_summary.count("baseline_accuracy"))
            m_summary["accuracy_delta"] = m_summary["accuracy"] - m_summary["baseline_accuracy"];
        if (m_summary["model_bytes"] > 0) m_summary["compression_ratio"] = baselineBytes / m_summary["model_bytes"];

        // Per-class recall and the confusion matrix (row: true class, "predicted/<j>": count).
        if (req.accuracy) {
            const EvalResult& e = out.eval;
            for (int c = 0; c < e.numClasses; ++c) {
                const std::string layer = "class/" + std::to_string(c);
                if (static_cast<std::size_t>(c) < e.perClassAccuracy.size())
                    layerStats.push_back({layer, "recall", e.perClassAccuracy[static_cast<std::size_t>(c)]});
                for (int p = 0; p < e.numClasses; ++p) {
                    const std::size_t at = static_cast<std::size_t>(c) * static_cast<std::size_t>(e.numClasses) +
                                           static_cast<std::size_t>(p);
                    if (at < e.confusion.size())
                        layerStats.push_back({layer, "predicted/" + std::to_string(p),
                                              static_cast<double>(e.confusion[at])});
                }
            }
        }
        for (const auto& np : m_model->namedParameters()) {
            layerStats.push_back({np.name, "params", static_cast<double>(np.param->value.numel())});
            layerStats.push_back({np.name, "bytes", static_cast<double>(np.param->value.bytes())});
        }
        // Buffers are stored too: batch norms' running statistics, a quantized layer's codes and scales.
        for (const auto& nb : m_model->namedBuffers())
            layerStats.push_back({nb.name, "bytes", static_cast<double>(nb.buffer->value.bytes())});
        return m_summary;
    }

private:
    std::map<std::string, std::string>& m_notes; // outlives the execution: stored even when a step fails
    std::map<std::string, double>& m_summary;    // outlives it too: a cancelled run keeps what was measured

    void log(LogLevel level, const std::string& msg) const {
        if (m_events.log) m_events.log(level, msg);
    }
    void checkCancel() const {
        if (m_cancel.load(std::memory_order_relaxed)) throw CancelledError();
    }
    void report(int phase, double f, const std::string& what) const {
        if (m_progress) m_progress((phase + std::clamp(f, 0.0, 1.0)) / m_phases, what);
    }

    const OutputSet* reference() const { return m_hasReference ? &m_reference : nullptr; }

    StepContext context(int phase, const std::string& what) {
        StepContext ctx;
        ctx.modelSlot = &m_model;
        ctx.backendPtr = &m_backend;
        ctx.dataPtr = &m_data;
        ctx.sinkPtr = &m_sink;
        ctx.runId = m_runId;
        ctx.seed = m_spec.seed;
        ctx.cancel = &m_cancel;
        ctx.log = m_events.log;
        ctx.runStartMs = m_runStartMs;
        ctx.summaryPtr = &m_summary;
        ctx.notesPtr = &m_notes;
        ctx.progress = [this, phase, what](double f, const std::string& w) {
            report(phase, f, w.empty() || w == what ? what : what + ": " + w);
        };
        ctx.loadModel = [this](const ModelRef& ref) {
            ModelRef resolved = ref;
            resolved.path = resolveAgainstExperiment(m_spec, ref.path);
            resolved.architecturePath = resolveAgainstExperiment(m_spec, ref.architecturePath);
            return loadModel(resolved, m_spec.seed, m_backend);
        };
        ctx.resolvePath = [this](const std::string& path) { return resolveAgainstExperiment(m_spec, path); };
        ctx.layerStat = [this](const std::string& layer, const std::string& key, double value) {
            m_layerStats->push_back({layer, key, value});
        };
        ctx.evaluation = &m_eval;
        ctx.outputReference = reference();
        ctx.trainStep = &m_trainStep;
        ctx.trainEpoch = &m_trainEpoch;
        ctx.training = &m_training;
        ctx.trainHooks = &m_trainHooks;
        return ctx;
    }

    void prepareBaseline() {
        const BaselineSpec& b = m_spec.baseline;
        std::string initHash;
        if (!b.modelPath.empty()) {
            m_model = loadModel(b.modelPath);
            m_model->to(m_backend);
            if (!m_spec.model.zoo.empty() && m_model->name() != m_spec.model.zoo)
                log(LogLevel::Warning, "baseline model " + b.modelPath + " is \"" + m_model->name() +
                                           "\", the experiment names \"" + m_spec.model.zoo + "\"");
            log(LogLevel::Info, "baseline loaded from " + b.modelPath);
        } else {
            m_model = loadModel(m_spec.model, m_spec.seed, m_backend);
            if (!m_spec.model.path.empty()) {
                initHash = sha256File(m_spec.model.path);
                log(LogLevel::Info, "model loaded from " + m_spec.model.path);
            }
        }
        if (!b.train) {
            if (b.modelPath.empty() && m_spec.model.path.empty() && !findPretrained(m_spec.model.zoo))
                log(LogLevel::Warning, "no baseline.train or baseline.model: measuring untrained weights");
            return;
        }

        // The cache key holds everything that determines the trained weights.
        json identity{{"format", 1},
                      {"architecture", m_model->architecture()},
                      {"init", initHash},
                      {"dataset", {{"name", m_spec.dataset.name}, {"files", json::array()}}},
                      {"train", b.trainJson},
                      {"seed", m_spec.seed},
                      {"device_kind", m_backend.device().kind == DeviceKind::Cpu ? "cpu" : "cuda"}};
        for (const auto& f : datasetFiles(m_data)) identity["dataset"]["files"].push_back(sha256File(f));
        const std::string key = sha256Hex(identity.dump());
        const fs::path file = fs::path(m_cacheDir) / (key + ".safetensors");
        std::error_code ec;
        if (fs::is_regular_file(file, ec)) {
            m_model = loadModel(file.string());
            m_model->to(m_backend);
            m_summary["baseline_cached"] = 1;
            log(LogLevel::Info, "baseline from cache (" + file.string() + ")");
            report(0, 1.0, "baseline from cache");
            return;
        }
        log(LogLevel::Info, "training the baseline (" + b.trainJson.dump() + ")");
        StepContext ctx = context(0, "baseline");
        runTrainingPhase(ctx, *b.train, "baseline");
        m_summary["baseline_cached"] = 0;
        fs::create_directories(m_cacheDir, ec);
        if (ec) {
            log(LogLevel::Warning, "cannot create the baseline cache " + m_cacheDir + ": " + ec.message());
            return;
        }
        try {
            saveModel(*m_model, file.string());
            log(LogLevel::Info, "baseline cached as " + file.string());
        } catch (const std::exception& e) {
            log(LogLevel::Warning, std::string("baseline not cached: ") + e.what());
        }
    }

    const RunPlan& m_plan;
    const ExperimentSpec& m_spec;
    Backend& m_backend;
    const DatasetSplits& m_data;
    MetricSink& m_sink;
    std::int64_t m_runId;
    const RunnerEvents& m_events;
    const std::atomic<bool>& m_cancel;
    std::string m_cacheDir;
    std::function<void(double, const std::string&)> m_progress;

    Dataset m_eval;
    OutputSet m_reference; // the baseline's outputs on m_eval when it has no labels
    bool m_hasReference = false;
    std::unique_ptr<Model> m_model;
    std::vector<LayerStat>* m_layerStats = nullptr;
    std::int64_t m_trainStep = 0, m_trainEpoch = 0;
    TrainingState m_training; // kept across the run's steps
    std::vector<RunTrainHook> m_trainHooks; // added by steps, run by every later training phase
    double m_runStartMs = 0;
    int m_phases = 2;
};

} // namespace

Runner::Runner(RunStore& store, RunnerOptions options) : m_store(store), m_options(std::move(options)) {
    if (m_options.cacheDir.empty()) m_options.cacheDir = defaultCacheDir();
}

std::vector<RunOutcome> Runner::run(const ExperimentSpec& spec, const nlohmann::json& doc, const RunnerEvents& events,
                                    const std::atomic<bool>& cancel) {
    std::vector<RunPlan> plans = expandSweep(spec, doc); // throws ConfigError before anything is stored
    if (!spec.search.is_null())
        throw ConfigError(spec.sourceName + ": /search: an experiment with a search runs through SearchRunner");
    if (m_options.onlyPlan >= 0) {
        if (m_options.onlyPlan >= static_cast<int>(plans.size()))
            throw ConfigError("plan " + std::to_string(m_options.onlyPlan) + " asked for, but the sweep has " +
                              std::to_string(plans.size()) + " plan(s) (0.." + std::to_string(plans.size() - 1) + ")");
        plans = {plans[static_cast<std::size_t>(m_options.onlyPlan)]};
    }
    const std::int64_t experimentId = m_options.experimentId
                                          ? m_options.experimentId
                                          : m_store.addExperiment(spec.name, doc.dump(), m_options.experimentUuid);
    std::map<std::string, std::shared_ptr<DatasetSplits>> datasets; // loaded once per experiment
    const double startMs = steadyClockMs();
    std::vector<RunOutcome> outcomes;
    auto log = [&](LogLevel level, const std::string& msg) {
        if (events.log) events.log(level, msg);
    };

    for (const RunPlan& plan : plans) {
        if (cancel.load()) break;
        const ExperimentSpec& ps = plan.spec;
        const std::string deviceName = m_options.deviceOverride.empty() ? ps.device : m_options.deviceOverride;

        // Choose the backend and load the data before creating the run so that its environment
        // record is complete; a failure here is still stored as a failed run.
        std::shared_ptr<Backend> backend;
        std::shared_ptr<DatasetSplits> data;
        std::exception_ptr prepFailure;
        try {
            backend = backendFor(deviceName);
            // A text dataset is tokenized by the model's tokenizer: one copy per dataset and tokenizer.
            auto& slot = datasets[ps.dataset.name + "\n" + modelTokenizerPath(ps.model)];
            if (!slot) {
                log(LogLevel::Info, "loading dataset " + ps.dataset.name);
                slot = std::make_shared<DatasetSplits>(loadDatasetFor(ps.dataset.name, ps.model));
                for (const auto& w : slot->train.warnings) log(LogLevel::Warning, w);
            }
            data = slot;
        } catch (...) {
            prepFailure = std::current_exception();
        }
        json env = captureEnvironment(backend.get(), ps.seed, data ? datasetFiles(*data) : std::vector<std::string>{});
        env["plan"] = {{"index", plan.index}, {"total", plan.total}, {"label", plan.label}};

        NewRun nr;
        nr.experimentId = experimentId;
        nr.name = ps.name + (plan.label.empty() ? "" : " [" + shortPlanLabel(plan.label) + "]");
        nr.model = !ps.model.zoo.empty() ? ps.model.zoo : ps.model.path;
        nr.dataset = ps.dataset.name + "/" + ps.dataset.split +
                     (ps.dataset.limit > 0 ? " (first " + std::to_string(ps.dataset.limit) + ")" : "");
        nr.device = backend ? backend->name() : deviceName;
        nr.strategyChain = strategyChain(ps);
        nr.tags = ps.tags;
        nr.configJson = plan.resolved.dump();
        nr.environmentJson = env.dump();
        nr.parentRunId = m_options.parentRunId;

        RunOutcome outcome;
        outcome.runId = m_store.createRun(nr);
        m_store.startRun(outcome.runId);
        if (events.runStarted) events.runStarted(outcome.runId, plan);
        log(LogLevel::Info, "run " + std::to_string(outcome.runId) + " (" + std::to_string(plan.index + 1) + "/" +
                                std::to_string(plan.total) + "): " + nr.name + " on " + nr.device);

        std::vector<LayerStat> layerStats;
        std::map<std::string, std::string> notes;
        std::map<std::string, double> partialSummary;
        {
            StoreSampleWriter writer(m_store);
            TeeSink sink(writer, events.liveSink);
            try {
                if (prepFailure) std::rethrow_exception(prepFailure);
                auto progress = [&](double within, const std::string& what) {
                    if (!events.progress) return;
                    const double fraction = (plan.index + within) / static_cast<double>(plan.total);
                    const double elapsedS = (steadyClockMs() - startMs) / 1000.0;
                    const double eta = fraction > 0.01 ? elapsedS / fraction * (1.0 - fraction) : -1.0;
                    events.progress(fraction, what, eta);
                };
                PlanExecution exec(plan, *backend, *data, sink, outcome.runId, events, cancel, m_options.cacheDir,
                                   progress, notes, partialSummary);
                outcome.summary = exec.execute(layerStats);
                outcome.status = run_status::kDone;
            } catch (const CancelledError&) {
                outcome.status = run_status::kCancelled;
                outcome.error = "cancelled";
            } catch (const std::exception& e) {
                outcome.status = run_status::kFailed;
                outcome.error = e.what();
            }
            try {
                sink.flush();
            } catch (const std::exception& e) {
                log(LogLevel::Warning, std::string("samples not stored: ") + e.what());
            }
        }
        if (outcome.status == run_status::kDone && backend) {
            // The device's roofs, where `lathe-cli bench peaks` measured them: each timed batch size's share of
            // the attainable FLOP/s.
            RoofPeaks roofs;
            for (const DevicePeak& p : m_store.devicePeaks(backend->info().name)) {
                if (p.key == "gemm_f32_gflops") roofs.gflopsPerS = p.value;
                if (p.key == "copy_gbps") roofs.gbPerS = p.value;
            }
            if (addRooflineFractions(outcome.summary, roofs) > 0) {
                char text[256];
                std::snprintf(text, sizeof text,
                              "roofline_fraction against the roofs lathe-cli bench peaks measured on %s: f32 GEMM "
                              "%.1f GFLOP/s, copy %.1f GB/s",
                              backend->info().name.c_str(), roofs.gflopsPerS, roofs.gbPerS);
                notes["roofline"] = text;
            }
        }
        m_store.setNotes(outcome.runId, notes);
        if (outcome.status == run_status::kDone) {
            m_store.setSummary(outcome.runId, outcome.summary);
            if (!layerStats.empty()) m_store.addLayerStats(outcome.runId, layerStats);
        } else if (outcome.status == run_status::kCancelled && !partialSummary.empty()) {
            // What the steps measured before the cancel (e.g. the requests a serving step answered so far).
            outcome.summary = partialSummary;
            m_store.setSummary(outcome.runId, outcome.summary);
        } else if (outcome.status == run_status::kFailed) {
            log(LogLevel::Error, "run " + std::to_string(outcome.runId) + " failed: " + outcome.error);
        }
        m_store.finishRun(outcome.runId, outcome.status, outcome.error);
        if (events.runFinished) events.runFinished(outcome);
        outcomes.push_back(outcome);
        if (outcome.status == run_status::kCancelled) break;
    }
    return outcomes;
}

} // namespace lathe

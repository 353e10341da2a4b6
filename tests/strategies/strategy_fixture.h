// A StepContext over a zoo model, the CPU backend and the synthetic band images, with what a step reports
// (series, summary, notes, layer stats, training hooks) collected for the strategy tests.
#pragma once

#include "engine/backends/registry.h"
#include "engine/io/model_io.h"
#include "engine/nn/zoo.h"
#include "engine/strategies/strategy.h"
#include "tests/nn/band_dataset.h"

#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace lathe::test {

// Keeps every sample pushed.
class CollectingSink final : public MetricSink {
public:
    void push(const MetricSample& s) override { samples.push_back(s); }
    // (step, value) of one series, in push order
    std::vector<std::pair<std::int64_t, double>> series(const std::string& name) const {
        std::vector<std::pair<std::int64_t, double>> out;
        for (const auto& s : samples)
            if (s.seriesName() == name) out.emplace_back(s.step, s.value);
        return out;
    }
    std::vector<MetricSample> samples;
};

// A StepContext over a model and the CPU backend, with summary, notes and layer stats collected here.
struct ContextFixture {
    std::unique_ptr<Model> model;
    DatasetSplits data;
    CollectingSink sink;
    std::map<std::string, double> summary;
    std::map<std::string, std::string> notes;
    std::vector<std::tuple<std::string, std::string, double>> stats;
    std::vector<RunTrainHook> hooks;
    std::int64_t trainStep = 0, trainEpoch = 0;
    TrainingState training;
    StepContext ctx;

    explicit ContextFixture(const std::string& zoo) {
        model = Model::fromArchitecture(zooArchitecture(zoo));
        model->initialize(*cpuBackend(), 11);
        model->to(*cpuBackend());
        ctx.modelSlot = &model;
        ctx.backendPtr = cpuBackend().get();
        data.train = bands(300, 1);
        data.test = bands(60, 2);
        ctx.dataPtr = &data;
        ctx.trainHooks = &hooks;
        ctx.sinkPtr = &sink;
        ctx.summaryPtr = &summary;
        ctx.notesPtr = &notes;
        ctx.layerStat = [this](const std::string& l, const std::string& k, double v) { stats.emplace_back(l, k, v); };
        ctx.trainStep = &trainStep;
        ctx.trainEpoch = &trainEpoch;
        ctx.training = &training;
        ctx.loadModel = [](const ModelRef& ref) { return lathe::loadModel(ref, 42, *cpuBackend()); };
    }
};

// An experiment over the Fashion-MNIST MLP with one step, for validation tests.
inline nlohmann::json experimentWith(const nlohmann::json& step, const std::string& name = "strategy-test") {
    return {{"name", name},
            {"model", {{"zoo", "mlp-784-256-128-10"}}},
            {"dataset", {{"name", "fashion-mnist"}}},
            {"steps", nlohmann::json::array({step})}};
}

} // namespace lathe::test

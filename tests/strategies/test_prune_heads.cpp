// prune.heads and its seams: ModelEditor::pruneAttentionHeads gives the original model's outputs with the pruned
// heads' gates at 0 and the expected parameter count, saves and loads; the gradient score against a finite
// difference of the loss in the head gate; the entropy score against softmax entropies computed here (causal, and
// bidirectional with padding); the selection (global keeps one head per layer, per layer); the strategy on
// gpt-char-tiny (then a finetune and KV-cached generation on the pruned model); bad input refused naming the field.
#include "engine/core/errors.h"
#include "engine/experiment/spec.h"
#include "engine/io/model_io.h"
#include "engine/measure/latency.h"
#include "engine/nn/generate.h"
#include "engine/nn/model_edit.h"
#include "engine/nn/trainer.h"
#include "engine/strategies/prune/head_importance.h"
#include "engine/strategies/prune/pruning.h"
#include "tests/strategies/head_models.h"
#include "tests/strategies/strategy_fixture.h"
#include "tests/support/test_support.h"

#include <QtTest>

#include <cmath>
#include <filesystem>
#include <numeric>

using namespace lathe;
using namespace lathe::prune;
using json = nlohmann::json;

namespace {

// Removing heads drops whole terms from the output projection's sums, so the pruned model's logits differ from the
// gated original's only by float reassociation in the GEMMs (sums of <= 96 terms through two blocks): well under
// 1e-5 of the largest logit.
constexpr double kPrunedTol = 1e-5;

std::unique_ptr<Model> makeModel(const json& arch, std::uint64_t seed = 3) {
    auto m = Model::fromArchitecture(arch);
    m->initialize(*cpuBackend(), seed);
    m->to(*cpuBackend());
    return m;
}

std::vector<float> logitsOf(Model& m, const Dataset& data, std::int64_t n = 4) {
    std::vector<std::int64_t> idx(static_cast<std::size_t>(n));
    std::iota(idx.begin(), idx.end(), 0);
    return cpuBackend()->downloadF32(m.forward(uploadInputs(*cpuBackend(), m, data, idx), ForwardContext{}));
}

// Weights of a trained-looking scale: fresh attention projections make every head nearly uniform, which would
// hide a wrong head in the comparisons below.
void scaleUp(Model& m, float factor) {
    for (const auto& np : m.namedParameters()) {
        if (np.param->value.rank() != 2 || np.name.find("layers.0.") == 0) continue;
        cpuBackend()->scale(np.param->value, factor);
    }
}

const std::vector<std::vector<std::int64_t>> kRemoved = {{1, 3}, {0}}; // per site of the blocked model

} // namespace

class TestPruneHeads : public QObject {
    Q_OBJECT

private slots:
    void sitesOfTheBlockedModel() {
        auto m = makeModel(test::headTestGpt(true, true));
        const auto sites = attentionSites(*m);
        QCOMPARE(sites.size(), std::size_t(2));
        QCOMPARE(QString::fromStdString(sites[0].path), QStringLiteral("layers.2.layers.0.layers.2"));
        QCOMPARE(QString::fromStdString(sites[1].path), QStringLiteral("layers.3.layers.0.layers.2"));
        QCOMPARE(sites[0].heads, std::int64_t(4));
        QCOMPARE(sites[0].headDim, std::int64_t(8));
        QVERIFY(sites[0].causal);
    }

    // The heart of it: the model with heads removed computes what the original computes with those heads' outputs
    // multiplied by 0, and is smaller by exactly their rows and columns.
    void prunedEqualsZeroedHeads() {
        auto m = makeModel(test::headTestGpt(true, true));
        scaleUp(*m, 3.0f);
        const Dataset data = test::headTestTokens(4, 16, 9);
        const auto sites = attentionSites(*m);
        std::vector<float> gated;
        {
            HeadGates gates(*m, sites);
            for (std::size_t i = 0; i < sites.size(); ++i) {
                std::vector<float> xi(4, 1.0f);
                for (std::int64_t h : kRemoved[i]) xi[static_cast<std::size_t>(h)] = 0.0f;
                cpuBackend()->copyFromHost(gates.gate(i).value, xi.data());
            }
            gated = logitsOf(*m, data);
        }
        const std::vector<float> original = logitsOf(*m, data);
        QVERIFY(test::relativeDiff(original, gated) > 1e-3); // the zeroed heads mattered
        const std::int64_t before = m->parameterCount();

        ModelEditor editor(*m);
        editor.pruneAttentionHeads(sites[0].path, {0, 2});
        editor.pruneAttentionHeads(sites[1].path, {1, 2, 3});
        const std::vector<float> pruned = logitsOf(*m, data);
        QVERIFY2(test::relativeDiff(gated, pruned) < kPrunedTol,
                 qPrintable(QString::number(test::relativeDiff(gated, pruned))));

        // Each head: 3 Dh rows of the QKV weight (D inputs) and bias, and Dh columns of the output projection.
        const std::int64_t d = 32, dh = 8, perHead = 3 * dh * d + 3 * dh + d * dh;
        QCOMPARE(m->parameterCount(), before - 3 * perHead);
        QCOMPARE(editor.layer(sites[0].path).config()["heads"].get<int>(), 2);
        QCOMPARE(editor.layer(sites[1].path).config()["heads"].get<int>(), 3);
        QCOMPARE(editor.layer("layers.2.layers.0.layers.1").config()["out"].get<int>(), 3 * 2 * 8);
        QCOMPARE(editor.layer("layers.2.layers.0.layers.3").config()["in"].get<int>(), 2 * 8);

        // Saved and loaded with its new shapes (heads differ per layer), the same logits.
        const std::string path = test::tempDir() + "/heads.safetensors";
        saveModel(*m, path);
        auto copy = loadModel(path);
        copy->to(*cpuBackend());
        QCOMPARE(copy->parameterCount(), m->parameterCount());
        QCOMPARE(logitsOf(*copy, data), pruned);
        QCOMPARE(ModelEditor(*copy).layer(sites[1].path).config()["heads"].get<int>(), 3);
    }

    void editorRefusesWhatItCannotPrune() {
        auto m = makeModel(test::headTestGpt(true, true));
        ModelEditor editor(*m);
        const std::string site = "layers.2.layers.0.layers.2";
        const std::int64_t before = m->parameterCount();
        QVERIFY(test::errorOf<ConfigError>([&] { editor.pruneAttentionHeads(site, {}); }).find("keeps at least one head") !=
                std::string::npos);
        QVERIFY(test::errorOf<ConfigError>([&] { editor.pruneAttentionHeads(site, {2, 1}); }).find("ascending") !=
                std::string::npos);
        QVERIFY(test::errorOf<ConfigError>([&] { editor.pruneAttentionHeads(site, {4}); }).find("[0, 4)") != std::string::npos);
        QVERIFY(test::errorOf<ConfigError>([&] { editor.pruneAttentionHeads("layers.2.layers.0.layers.1", {0}); })
                    .find("expected an attention layer, found linear") != std::string::npos);
        QCOMPARE(m->parameterCount(), before);
    }

    // Michel et al.'s score is dL/dxi of a gate on each head's output: the gates' gradient from backward equals
    // a central difference of the loss in each gate, and summing the batches' gradients weighted by their rows gives
    // the whole set's gradient.
    void gradientMatchesFiniteDifference() {
        auto m = makeModel(test::headTestGpt(true, true), 5);
        scaleUp(*m, 2.0f);
        const Dataset data = test::headTestTokens(6, 16, 21);
        const auto sites = attentionSites(*m);
        const HeadGradients whole = headGateGradients(*m, *cpuBackend(), sites, {data, 6});
        const HeadGradients batched = headGateGradients(*m, *cpuBackend(), sites, {data, 4}); // batches of 4 and 2
        double largest = 0;
        for (const auto& layer : whole.grad)
            for (double g : layer) largest = std::max(largest, std::fabs(g));
        QVERIFY(largest > 1e-4);

        // Central differences with eps 1e-2: the truncation error is eps^2 / 6 times the third derivative, and
        // float losses (about 5.5, summed in double over 96 tokens) add at most ~1e-6 / (2 eps) = 5e-5.
        const double eps = 1e-2;
        HeadGates gates(*m, sites);
        for (std::size_t i = 0; i < sites.size(); ++i)
            for (std::size_t h = 0; h < 4; ++h) {
                auto lossWith = [&](float value) {
                    std::vector<float> xi(4, 1.0f);
                    xi[h] = value;
                    cpuBackend()->copyFromHost(gates.gate(i).value, xi.data());
                    return calibrationLoss(*m, *cpuBackend(), {data, 6});
                };
                const double fd = (lossWith(1.0f + float(eps)) - lossWith(1.0f - float(eps))) / (2 * eps);
                lossWith(1.0f);
                const double g = whole.grad[i][h];
                QVERIFY2(std::fabs(g - fd) < 2e-3 * largest + 5e-5,
                         qPrintable(QString("site %1 head %2: backward %3, finite difference %4").arg(i).arg(h).arg(g).arg(fd)));
                QVERIFY(std::fabs(batched.grad[i][h] - g) < 1e-5 * largest + 1e-7);
                QCOMPARE(whole.importance[i][h], std::fabs(g)); // one batch: the importance is |dL/dxi|
            }
        QVERIFY(std::fabs(whole.loss - calibrationLoss(*m, *cpuBackend(), {data, 6})) < 1e-5);
    }

    // The entropy from the attention op (lse - scale q . E[k]) against the entropy of the softmax of the scores
    // computed here in double from the attention's input, over the valid queries and keys.
    void entropyMatchesSoftmax_data() {
        QTest::addColumn<bool>("causal");
        QTest::addColumn<bool>("pad");
        QTest::newRow("causal") << true << false;
        QTest::newRow("bidirectional, padded") << false << true;
    }
    void entropyMatchesSoftmax() {
        QFETCH(bool, causal);
        QFETCH(bool, pad);
        const std::int64_t t = 16, d = 32, heads = 4, dh = 8;
        auto m = makeModel(test::headTestGpt(false, causal, t, pad ? 0 : -1), 8);
        scaleUp(*m, 4.0f);
        const Dataset data = test::headTestTokens(5, t, 33, pad);
        const auto sites = attentionSites(*m);
        QCOMPARE(sites.size(), std::size_t(1));
        const auto entropy = headEntropy(*m, *cpuBackend(), sites, {data, 2});

        // The attention's input: the first three layers (embeddings, QKV linear) applied to the ids.
        std::vector<std::int64_t> idx(5);
        std::iota(idx.begin(), idx.end(), 0);
        Tensor h = uploadInputs(*cpuBackend(), *m, data, idx);
        for (int i = 0; i < 3; ++i) h = m->layers()[static_cast<std::size_t>(i)]->forward(*cpuBackend(), h, ForwardContext{});
        const std::vector<float> qkv = cpuBackend()->downloadF32(h); // (5, T, 3D)
        std::vector<double> sum(heads, 0.0), count(heads, 0.0);
        double spread = 0;
        for (std::int64_t n = 0; n < 5; ++n) {
            std::int64_t len = t;
            while (len > 0 && data.pixels[static_cast<std::size_t>(n * t + len - 1)] == 0) --len;
            for (std::int64_t hd = 0; hd < heads; ++hd)
                for (std::int64_t q = 0; q < len; ++q) {
                    const std::int64_t keys = causal ? q + 1 : len;
                    std::vector<double> s(static_cast<std::size_t>(keys));
                    for (std::int64_t k = 0; k < keys; ++k) {
                        double dot = 0;
                        for (std::int64_t e = 0; e < dh; ++e)
                            dot += double(qkv[static_cast<std::size_t>((n * t + q) * 3 * d + hd * dh + e)]) *
                                   double(qkv[static_cast<std::size_t>((n * t + k) * 3 * d + d + hd * dh + e)]);
                        s[static_cast<std::size_t>(k)] = dot / std::sqrt(double(dh));
                    }
                    const double top = *std::max_element(s.begin(), s.end());
                    double z = 0;
                    for (double v : s) z += std::exp(v - top);
                    double ent = 0;
                    for (double v : s) {
                        const double p = std::exp(v - top) / z;
                        if (p > 0) ent -= p * std::log(p);
                    }
                    sum[static_cast<std::size_t>(hd)] += ent;
                    count[static_cast<std::size_t>(hd)] += 1;
                }
        }
        for (std::int64_t hd = 0; hd < heads; ++hd) {
            const double ref = sum[static_cast<std::size_t>(hd)] / count[static_cast<std::size_t>(hd)];
            // lse and q . E[k] are f32 values of a few units: their difference is good to ~1e-5 per query.
            QVERIFY2(std::fabs(entropy[0][static_cast<std::size_t>(hd)] - ref) < 1e-4,
                     qPrintable(QString("head %1: %2 vs %3").arg(hd).arg(entropy[0][static_cast<std::size_t>(hd)]).arg(ref)));
            spread = std::max(spread, std::fabs(ref - sum[0] / count[0]));
        }
        QVERIFY(spread > 1e-3); // the heads differ, so a mixed-up head would show
        QCOMPARE(ModelEditor(*m).list().size(), std::size_t(7)); // the probe is gone again
    }

    void selection() {
        const std::vector<std::vector<double>> imp = {{0.1, 0.2, 0.3}, {0.9, 0.05, 0.8}, {0.01, 0.02}};
        // Global 4: 0.01 (layer 2, head 0), then 0.02 is layer 2's last head and stays, 0.05, 0.1, 0.2.
        auto r = headsToRemove(imp, PruneScope::Global, 4, {});
        QCOMPARE(r[0], (std::vector<std::int64_t>{0, 1}));
        QCOMPARE(r[1], (std::vector<std::int64_t>{1}));
        QCOMPARE(r[2], (std::vector<std::int64_t>{0}));
        r = headsToRemove(imp, PruneScope::Layer, 0, {1, 2, 1});
        QCOMPARE(r[0], (std::vector<std::int64_t>{0}));
        QCOMPARE(r[1], (std::vector<std::int64_t>{1, 2}));
        QCOMPARE(r[2], (std::vector<std::int64_t>{0}));
        // Ties go by position: the earlier head first.
        r = headsToRemove({{0.5, 0.5, 0.5}}, PruneScope::Global, 1, {});
        QCOMPARE(r[0], (std::vector<std::int64_t>{0}));
        QVERIFY(test::errorOf<ConfigError>([&] { headsToRemove(imp, PruneScope::Global, 6, {}); }).find("one left in each") !=
                std::string::npos);
        QVERIFY(test::errorOf<ConfigError>([&] { headsToRemove(imp, PruneScope::Layer, 0, {0, 0, 2}); }).find("all its heads") !=
                std::string::npos);
    }

    // The strategy on gpt-char-tiny (5 layers of 4 heads of 32): a quarter of the 20 heads go, the parameter count
    // drops by exactly their rows and columns, every layer keeps a head, the step reports and notes what it did; the
    // pruned model then fine-tunes through the one trainer and generates the same tokens with and without the
    // KV cache (layers with different head counts).
    void strategyOnGptCharTiny_data() {
        QTest::addColumn<QString>("score");
        QTest::addColumn<QString>("scope");
        QTest::newRow("gradient, global") << "gradient" << "global";
        QTest::newRow("entropy, layer") << "entropy" << "layer";
    }
    void strategyOnGptCharTiny() {
        QFETCH(QString, score);
        QFETCH(QString, scope);
        test::ContextFixture f("gpt-char-tiny");
        f.data.train = test::headTestTokens(8, 128, 1);
        f.data.test = test::headTestTokens(8, 128, 2);
        const std::int64_t before = f.model->parameterCount();
        ParamValues v = test::quickMeasuringDefaults("prune.heads");
        v.set("fraction", 0.25);
        v.set("score", score.toStdString());
        v.set("scope", scope.toStdString());
        v.set("calibration_samples", std::int64_t(8));
        v.set("calibration_batch", std::int64_t(4));
        StrategyRegistry::instance().create("prune.heads", v)->apply(f.ctx);

        QCOMPARE(f.summary.at("original.heads"), 20.0);
        QCOMPARE(f.summary.at("heads"), 15.0);
        QCOMPARE(f.summary.at("heads_pruned_fraction"), 0.25);
        const std::int64_t perHead = 3 * 32 * 128 + 3 * 32 + 128 * 32;
        QCOMPARE(f.model->parameterCount(), before - 5 * perHead);
        QCOMPARE(f.summary.at("params"), double(before - 5 * perHead));
        QVERIFY(f.summary.at("flops") < f.summary.at("original.flops"));
        QVERIFY(f.summary.count("speedup_realized") == 1);
        QVERIFY(f.notes.at("heads_kept").find("(removed ") != std::string::npos);
        double kept = 0;
        for (const AttentionSite& s : attentionSites(*f.model)) {
            QVERIFY(s.heads >= 1);
            if (scope == "layer") QCOMPARE(s.heads, std::int64_t(3));
            kept += double(s.heads);
            QCOMPARE(f.stat(s.path, "heads_after"), double(s.heads));
            QVERIFY(!std::isnan(f.stat(s.path, "head_score@h3")));
        }
        QCOMPARE(kept, 15.0);
        QCOMPARE(f.summary.count("calibration_loss"), std::size_t(score == "gradient" ? 1 : 0));

        // A finetune after it trains the smaller layers (fresh optimizer state of the new shapes).
        TrainParams tp;
        tp.epochs = 1;
        tp.batchSize = 4;
        tp.maxSteps = 2;
        tp.lr = 1e-3f;
        const TrainResult tr = train(*f.model, *cpuBackend(), f.data.train, tp);
        QCOMPARE(tr.steps, std::int64_t(2));
        QVERIFY(std::isfinite(tr.finalTrainLoss));

        GenerateOptions go;
        go.maxNewTokens = 12;
        const auto cached = generate(*f.model, bytesToTokens("The "), go);
        go.useKvCache = false;
        const auto uncached = generate(*f.model, bytesToTokens("The "), go);
        QCOMPARE(cached.tokens, uncached.tokens);
    }

    void validationRefusesBadInput_data() {
        QTest::addColumn<QString>("zoo");
        QTest::addColumn<QString>("params");
        QTest::addColumn<QString>("pointer");
        QTest::addColumn<QString>("message");
        QTest::newRow("fraction 1") << "gpt-char-tiny" << R"({"fraction": 1})" << "/steps/0/params/fraction"
                                    << "expected a number in [0, 1), got 1";
        QTest::newRow("fraction negative") << "gpt-char-tiny" << R"({"fraction": -0.1})"
                                           << "/steps/0/params/fraction" << "";
        QTest::newRow("global fraction empties layers")
            << "gpt-char-tiny" << R"({"fraction": 0.9})" << "/steps/0/params/fraction"
            << "prune.heads: fraction 0.9 removes 18 of the 20 heads, but each of the 5 attention layers keeps at "
               "least one, so at most 15 can go";
        QTest::newRow("layer count takes every head")
            << "gpt-char-tiny" << R"({"count": 4, "scope": "layer"})" << "/steps/0/params/count"
            << "prune.heads: count 4 removes 4 heads of layers.2.layers.0.layers.2, which has 4; an attention layer "
               "keeps at least one head";
        QTest::newRow("no attention")
            << "mlp-784-256-128-10" << "{}" << "/steps/0/params"
            << "prune.heads: the model mlp-784-256-128-10 has no attention layer between a fused QKV linear and an "
               "output linear, so it has no head to remove";
        QTest::newRow("unknown score") << "gpt-char-tiny" << R"({"score": "taylor"})" << "/steps/0/params/score" << "";
    }
    void validationRefusesBadInput() {
        QFETCH(QString, zoo);
        QFETCH(QString, params);
        QFETCH(QString, pointer);
        QFETCH(QString, message);
        const bool text = zoo.startsWith("gpt");
        json doc = test::experimentOnZoo(zoo.toStdString(), "prune.heads", json::parse(params.toStdString()));
        if (text) doc["dataset"] = {{"name", "fortunes"}};
        test::expectSingleIssue(doc, pointer, message);
    }

    // A saved model without an architecture known to validation: the run reaches the step and fails saying why.
    void runRefusesAModelWithoutAttention() {
        LATHE_REQUIRE_FASHION_MNIST();
        auto mlp = test::customModel(json::array({{{"type", "flatten"}}, {{"type", "linear"}, {"in", 784}, {"out", 10}}}));
        const std::string dir = test::tempDir() + "/no-attention";
        std::filesystem::create_directories(dir);
        saveModel(*mlp, dir + "/mlp.safetensors");
        const auto [outcome, error] = test::runStepOnSavedModel(dir, dir + "/mlp.safetensors", "prune.heads");
        QCOMPARE(QString::fromStdString(outcome.status), QStringLiteral("failed"));
        QVERIFY2(error.find("prune.heads: the model") != std::string::npos && error.find("no attention layer") != std::string::npos,
                 error.c_str());
    }
};

LATHE_TEST_GUILESS_MAIN(TestPruneHeads)
#include "test_prune_heads.moc"

// Transformer layers and blocks (issue 14) against central finite differences on the CPU backend: the attention
// core with padding lengths, pre- and post-LayerNorm blocks, position and token-type embeddings, mean pooling with
// L2 normalisation; a token model with a tied head (one parameter, gradients from both uses); sequence masks;
// model JSON round trips.
#include "engine/backends/registry.h"
#include "engine/core/errors.h"
#include "engine/nn/layer.h"
#include "engine/nn/model.h"
#include "engine/nn/transformer.h"
#include "tests/nn/gradcheck_util.h"
#include "tests/support/test_support.h"

#include <QtTest>

using namespace lathe;
using namespace lathe::test;

namespace {

nlohmann::json blockJson(LayerNormPlacement norm, bool causal) {
    TransformerBlockSpec s;
    s.dim = 8;
    s.heads = 2;
    s.mlp = 12;
    s.causal = causal;
    s.norm = norm;
    return transformerBlock(s);
}

} // namespace

class TestTransformerLayers : public QObject {
    Q_OBJECT

private slots:
    void layerBackward_data() {
        QTest::addColumn<QString>("config");
        QTest::addColumn<QString>("inputShape");
        QTest::addColumn<bool>("withLengths");
        auto row = [](const char* name, const std::string& cfg, const char* shape, bool lengths) {
            QTest::newRow(name) << QString::fromStdString(cfg) << QString(shape) << lengths;
        };
        row("attention", R"({"type":"attention","heads":2})", "[2,4,12]", false);
        row("attention-causal", R"({"type":"attention","heads":3,"causal":true})", "[2,5,18]", false);
        row("attention-lengths", R"({"type":"attention","heads":2})", "[2,4,12]", true);
        row("mha", nlohmann::json{{"type", "sequential"}, {"layers", multiHeadAttentionLayers(8, 2, true)}}.dump(),
            "[2,3,8]", false);
        row("block-pre-ln-causal", blockJson(LayerNormPlacement::Pre, true).dump(), "[2,4,8]", false);
        row("block-post-ln-lengths", blockJson(LayerNormPlacement::Post, false).dump(), "[2,4,8]", true);
        row("position-embedding", R"({"type":"position_embedding","num":6,"dim":5})", "[2,4,5]", false);
        row("token-type-embedding", R"({"type":"token_type_embedding","num":2,"dim":5})", "[2,3,5]", false);
        row("mean-pool-lengths", R"({"type":"mean_pool"})", "[2,4,5]", true);
        row("pool-normalize", R"({"type":"sequential","layers":[{"type":"mean_pool"},{"type":"l2_normalize"}]})",
            "[2,4,5]", true);
    }

    // Objective sum(layer(x) * r); eps 1e-2 and tolerance 2e-3 as test_gradcheck.cpp argues (smooth layers,
    // inputs in [-1, 1]).
    void layerBackward() {
        QFETCH(QString, config);
        QFETCH(QString, inputShape);
        QFETCH(bool, withLengths);
        Backend& be = *cpuBackend();
        auto layer = makeLayer(nlohmann::json::parse(config.toStdString()));
        Rng rng(5);
        layer->initialize(be, rng);
        std::uint64_t seed = 200;
        for (Parameter* p : layer->parameters()) {
            p->value = be.upload(randomVector(static_cast<std::size_t>(p->value.numel()), seed++, -0.6f, 0.6f),
                                 p->value.shape());
            p->grad = be.zeros(p->value.shape());
        }
        const Shape xs = nlohmann::json::parse(inputShape.toStdString()).get<Shape>();
        Tensor x = be.upload(randomVector(static_cast<std::size_t>(numel(xs)), 31), xs);
        ForwardContext ctx;
        ctx.training = true;
        if (withLengths) ctx.sequence = SequenceBatch::fromLengths(be, xs[1], {static_cast<std::int32_t>(xs[1]), 2});
        Tensor y = layer->forward(be, x, ctx);
        QCOMPARE(y.shape(), layer->outputShape(xs));
        const auto r = randomVector(static_cast<std::size_t>(y.numel()), 41);
        Tensor dx = layer->backward(be, be.upload(r, y.shape()));
        QCOMPARE(dx.shape(), xs);
        const auto analyticDx = be.downloadF32(dx);
        auto objective = [&]() { return dotDouble(be.downloadF32(layer->forward(be, x, ctx)), r); };
        const double errX = normalizedError(analyticDx, numericGradient(be, x, 1e-2, objective));
        QVERIFY2(errX < 2e-3, qPrintable(QString("input gradient: %1").arg(errX)));
        std::vector<NamedParameter> named;
        layer->namedParameters("", named);
        for (const auto& np : named) {
            const double err = normalizedError(be.downloadF32(np.param->grad),
                                               numericGradient(be, np.param->value, 1e-2, objective));
            QVERIFY2(err < 2e-3, qPrintable(QString("%1: %2").arg(QString::fromStdString(np.name)).arg(err)));
        }
        if (withLengths && config.contains("attention") && !config.contains("sequential")) {
            // Padded keys take no part: changing sequence 1's positions >= 2 leaves its valid rows' outputs alone.
            auto xv = be.downloadF32(x);
            const auto before = be.downloadF32(layer->forward(be, x, ctx));
            const std::int64_t t = xs[1], w = xs[2];
            for (std::int64_t i = 2; i < t; ++i)
                for (std::int64_t e = 0; e < w; ++e) xv[static_cast<std::size_t>((t + i) * w + e)] += 3.0f;
            Tensor x2 = be.upload(xv, xs);
            const auto after = be.downloadF32(layer->forward(be, x2, ctx));
            const std::int64_t ow = y.dim(2);
            for (std::int64_t i = 0; i < 2; ++i)
                for (std::int64_t e = 0; e < ow; ++e) {
                    const auto k = static_cast<std::size_t>((t + i) * ow + e);
                    QVERIFY(std::abs(before[k] - after[k]) < 1e-6f);
                }
        }
    }

    // A tiny token model: ids -> embedding + positions -> pre-LN causal block -> layernorm -> tied head (T, V).
    void tokenModelWithTiedHead() {
        Backend& be = *cpuBackend();
        const int v = 11, d = 8, t = 5;
        nlohmann::json arch = {
            {"name", "tiny-lm"},
            {"input", {{"shape", {t}}, {"dtype", "i32"}}},
            {"classes", v},
            {"output", {t, v}},
            {"layers",
             {{{"type", "embedding"}, {"num", v}, {"dim", d}},
              {{"type", "position_embedding"}, {"num", 7}, {"dim", d}},
              blockJson(LayerNormPlacement::Pre, true),
              {{"type", "layernorm"}, {"dim", d}},
              {{"type", "tied_linear"}, {"in", d}, {"out", v}, {"weight", "layers.0.weight"}}}}};
        auto model = Model::fromArchitecture(arch);
        QCOMPARE(model->inputDType(), DType::I32);
        QCOMPARE(model->outputShape(), (Shape{t, v}));
        QCOMPARE(model->outputRowsPerSample(), std::int64_t{t});
        model->initialize(be, 3);
        // The tied weight is one parameter: listed once, counted once.
        int tableCount = 0;
        for (const auto& np : model->namedParameters()) tableCount += np.param->value.shape() == Shape{v, d};
        QCOMPARE(tableCount, 1);
        // The architecture round-trips (input dtype, output shape, the tied head's reference).
        auto again = Model::fromArchitecture(model->architecture());
        QCOMPARE(again->architecture(), model->architecture());

        Tensor ids = be.uploadI32({1, 4, 4, 0, 10, 3, 2, 9, 9, 1}, {2, t});
        ForwardContext ctx;
        ctx.training = true;
        const auto r = randomVector(2 * t * v, 8);
        model->zeroGrad();
        Tensor logits = model->forward(ids, ctx);
        QCOMPARE(logits.shape(), (Shape{2, t, v}));
        model->backward(be.upload(r, logits.shape()));
        auto objective = [&]() { return dotDouble(be.downloadF32(model->forward(ids, ctx)), r); };
        for (const auto& np : model->namedParameters()) {
            const double err = normalizedError(be.downloadF32(np.param->grad),
                                               numericGradient(be, np.param->value, 1e-2, objective));
            QVERIFY2(err < 2e-3, qPrintable(QString("%1: %2").arg(QString::fromStdString(np.name)).arg(err)));
        }
        // Causality: the logits at position 1 do not depend on the token at position 3.
        ForwardContext eval;
        const auto a = be.downloadF32(model->forward(ids, eval));
        Tensor ids2 = be.uploadI32({1, 4, 4, 7, 10, 3, 2, 9, 9, 1}, {2, t});
        const auto b = be.downloadF32(model->forward(ids2, eval));
        for (int i = 0; i < 3 * v; ++i) QCOMPARE(a[static_cast<std::size_t>(i)], b[static_cast<std::size_t>(i)]);
        QVERIFY(a[static_cast<std::size_t>(3 * v)] != b[static_cast<std::size_t>(3 * v)]);
    }

    void tiedHeadNamingAMissingParameterIsRefused() {
        nlohmann::json arch = {{"input", {{"shape", {3}}, {"dtype", "i32"}}},
                               {"classes", 5},
                               {"output", {3, 5}},
                               {"layers",
                                {{{"type", "embedding"}, {"num", 5}, {"dim", 4}},
                                 {{"type", "tied_linear"}, {"in", 4}, {"out", 5}, {"weight", "layers.7.weight"}}}}};
        const std::string e = errorOf<ConfigError>([&] { Model::fromArchitecture(arch); });
        QVERIFY2(e.find("layers.7.weight") != std::string::npos, e.c_str());
        arch["input"]["dtype"] = "u16";
        QVERIFY(errorOf<ConfigError>([&] { Model::fromArchitecture(arch); }).find("/input/dtype") != std::string::npos);
    }

    void masksBecomeLengths() {
        Backend& be = *cpuBackend();
        auto s = SequenceBatch::fromMask(be, 2, 4, {1, 1, 1, 0, 1, 1, 1, 1});
        QCOMPARE(s->lengths, (std::vector<std::int32_t>{3, 4}));
        QCOMPARE(be.downloadF32(s->lengthsOnDevice), (std::vector<float>{3, 4}));
        const std::string e =
            errorOf<ConfigError>([&] { SequenceBatch::fromMask(be, 2, 3, {1, 0, 1, 1, 1, 1}, "batch.json"); });
        QVERIFY2(e.find("batch.json") != std::string::npos && e.find("row 0") != std::string::npos, e.c_str());
        QVERIFY(errorOf<ConfigError>([&] { SequenceBatch::fromLengths(be, 4, {5}); }).find("outside") != std::string::npos);
    }
};

QTEST_GUILESS_MAIN(TestTransformerLayers)
#include "test_transformer_layers.moc"

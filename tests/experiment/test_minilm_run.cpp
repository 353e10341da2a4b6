// all-MiniLM-L6-v2 through the Runner (issue 14): experiments/minilm-int8.json as shipped (the fortunes
// sentences, no labels, quantize.int8 on every Linear) stores the fidelity metrics, model bytes and latency as an
// ordinary run. Skipped without the model or the fortunes package.
#include "engine/experiment/runner.h"
#include "engine/io/pretrained.h"
#include "tests/support/test_support.h"

#include <filesystem>
#include <fstream>

using namespace lathe;
using json = nlohmann::json;

class TestMinilmRun : public QObject {
    Q_OBJECT

private slots:
    void int8RunStoresFidelity() {
        if (!pretrainedInstalled(*findPretrained("minilm-l6-v2")))
            QSKIP("minilm-l6-v2 is not installed (lathe-cli models fetch minilm)");
        if (!std::filesystem::is_directory("/usr/share/games/fortunes"))
            QSKIP("no /usr/share/games/fortunes (Debian package fortunes)");
        const std::string file = test::sourcePath("experiments/minilm-int8.json");
        std::ifstream in(file);
        const json doc = json::parse(in);
        const ExperimentSpec spec = parseExperiment(doc, file);
        const std::string dir = test::tempDir();
        RunStore store(dir + "/runs.sqlite");
        Runner runner(store, RunnerOptions{"", dir + "/baselines"});
        std::atomic<bool> cancel{false};
        const auto outcomes = runner.run(spec, doc, RunnerEvents{}, cancel);
        QCOMPARE(outcomes.size(), std::size_t(1));
        QVERIFY2(outcomes[0].status == run_status::kDone, outcomes[0].error.c_str());
        const auto rec = store.run(outcomes[0].runId);
        QVERIFY(rec);
        QCOMPARE(rec->strategyChain, std::string("quantize.int8"));
        const auto& s = rec->summary;
        for (const char* key : {"embedding_cosine_mean", "embedding_cosine_min", "retrieval_recall_at_10", "model_bytes",
                                "baseline_model_bytes", "latency_p50_ms@b1", "latency_p50_ms@b8", "throughput_per_s@b8",
                                "float.embedding_cosine_mean", "quantized.embedding_cosine_mean",
                                "quantized.retrieval_recall_at_10"})
            QVERIFY2(s.count(key), key);
        QVERIFY(!s.count("accuracy")); // no labels: no accuracy
        // The float model measured inside the step is the reference itself.
        QVERIFY(std::abs(s.at("float.embedding_cosine_mean") - 1.0) < 1e-6);
        QCOMPARE(s.at("float.retrieval_recall_at_10"), 1.0);
        // int8 moves the embeddings a little, not a lot, and stores the weights in about a third of the bytes
        // (the embedding tables stay f32).
        QVERIFY2(s.at("embedding_cosine_mean") > 0.9 && s.at("embedding_cosine_mean") < 1.0,
                 qPrintable(QString::number(s.at("embedding_cosine_mean"))));
        QVERIFY(s.at("embedding_cosine_min") <= s.at("embedding_cosine_mean"));
        QVERIFY(s.at("retrieval_recall_at_10") > 0.5 && s.at("retrieval_recall_at_10") <= 1.0);
        QVERIFY(s.at("model_bytes") < 0.8 * s.at("baseline_model_bytes"));
        qInfo("minilm int8: cosine mean %.5f min %.5f, recall@10 %.4f, %.0f -> %.0f bytes", s.at("embedding_cosine_mean"),
              s.at("embedding_cosine_min"), s.at("retrieval_recall_at_10"), s.at("baseline_model_bytes"), s.at("model_bytes"));
    }
};

LATHE_TEST_GUILESS_MAIN(TestMinilmRun)
#include "test_minilm_run.moc"

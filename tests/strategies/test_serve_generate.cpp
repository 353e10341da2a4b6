// serve.generate (issue 15): the iteration scheduler against hand-computed schedules on tiny traces (virtual
// clock, an executor of fixed cost: continuous vs static, fixed and sentence chunks, preemption and recompute,
// contiguous reservation), the real decoder served in a batch giving each request the tokens greedy generation
// gives it alone (paged, chunked, preempted, static), prefix caching with identical tokens and its hit rate,
// INT8 KV perplexity, the generation trace columns, validation of bad input at the field, and a strategy run.
#include "engine/data/text_corpus.h"
#include "engine/experiment/spec.h"
#include "engine/nn/generate.h"
#include "engine/nn/transformer.h"
#include "engine/strategies/serve/arrivals.h"
#include "engine/strategies/serve/generate_executor.h"
#include "engine/strategies/serve/generate_scheduler.h"
#include "tests/strategies/strategy_fixture.h"
#include "tests/support/test_support.h"

#include <QtTest>

#include <fstream>

using namespace lathe;
using namespace lathe::serve;
using json = nlohmann::json;

namespace {

// Every iteration takes 1 ms on the virtual clock; the chosen token is 'a' + the request id. Records what
// every decode row was fed, so that the test can check the rows follow their sequences.
class FixedCostExecutor final : public GenExecutor {
public:
    double run(const std::vector<SeqWork>& prefill, const std::vector<SeqWork>& decode,
               std::vector<std::int32_t>& next) override {
        next.clear();
        for (const SeqWork& w : prefill)
            if (w.emits) next.push_back('a' + static_cast<std::int32_t>(w.id));
        for (const SeqWork& w : decode) {
            if (w.from + 1 != static_cast<std::int64_t>(w.tokens->size()) || w.count != 1) badRows++;
            next.push_back('a' + static_cast<std::int32_t>(w.id));
        }
        return 1.0;
    }
    int badRows = 0;
};

GenRequest req(std::int64_t id, double at, std::int64_t prompt, std::int64_t out, const std::string& text = "") {
    GenRequest r;
    r.id = id;
    r.arrivalMs = at;
    r.prompt = text.empty() ? std::vector<std::int32_t>(static_cast<std::size_t>(prompt), 'p') : bytesToTokens(text);
    r.outputTokens = out;
    return r;
}

// An iteration as text: "P0:4,1:2 D0,2" (prefill (id:tokens), decode ids).
std::string describe(const GenIteration& it) {
    std::string s = "P";
    for (std::size_t i = 0; i < it.prefill.size(); ++i)
        s += (i ? "," : "") + std::to_string(it.prefill[i].first) + ":" + std::to_string(it.prefill[i].second);
    s += " D";
    for (std::size_t i = 0; i < it.decode.size(); ++i) s += (i ? "," : "") + std::to_string(it.decode[i]);
    return s;
}

QStringList schedule(const GenLog& log) {
    QStringList out;
    for (const auto& it : log.iterations) out << QString::fromStdString(describe(it));
    return out;
}

GenSchedulerSettings settings(GenPolicy policy, int maxRunning, std::int64_t blocks = 64, std::int64_t bs = 4,
                              std::int64_t context = 32) {
    GenSchedulerSettings s;
    s.policy = policy;
    s.maxRunning = maxRunning;
    s.blocks = blocks;
    s.blockSize = bs;
    s.context = context;
    return s;
}

// A small causal byte model (context 24) with fresh weights, on the CPU.
std::unique_ptr<Model> smallGpt() {
    TransformerBlockSpec b;
    b.dim = 32;
    b.heads = 4;
    b.mlp = 64;
    b.causal = true;
    const json layers = json::array(
        {{{"type", "embedding"}, {"num", 256}, {"dim", 32}}, {{"type", "position_embedding"}, {"num", 24}, {"dim", 32}},
         transformerBlock(b), transformerBlock(b), {{"type", "layernorm"}, {"dim", 32}},
         {{"type", "tied_linear"}, {"in", 32}, {"out", 256}, {"weight", "layers.0.weight"}}});
    auto m = Model::fromArchitecture({{"name", "gpt-test"}, {"input", {{"shape", {24}}, {"dtype", "i32"}}},
                                      {"classes", 256}, {"output", {24, 256}}, {"layers", layers}});
    m->initialize(*cpuBackend(), 5);
    m->to(*cpuBackend());
    return m;
}

const char* kTexts[] = {"The cat sat. It purred", "A dog ran home. Then", "Why? Because.", "Some text here",
                        "Go. Stop. Go again", "One more line", "x", "Short. Long tail of it"};

// Requests over kTexts (cut to `cut` bytes when above 0, after `shared`), arriving gapMs apart, with outputs
// of up to maxOut tokens that fit the context of 24.
std::vector<GenRequest> textRequests(double gapMs, std::int64_t maxOut, const std::string& shared = "",
                                     std::size_t cut = 0) {
    std::vector<GenRequest> out;
    for (std::int64_t i = 0; i < 8; ++i) {
        std::string own = kTexts[i];
        if (cut > 0) own = own.substr(0, cut);
        const std::string text = shared + own;
        const std::int64_t room = 24 - static_cast<std::int64_t>(text.size());
        out.push_back(req(i, gapMs * static_cast<double>(i), 0, std::min<std::int64_t>(maxOut - i % 3, room), text));
    }
    return out;
}

// Each request's greedy tokens when generated alone with the contiguous KV cache.
std::vector<std::vector<std::int32_t>> aloneOutputs(Model& m, const std::vector<GenRequest>& rs) {
    std::vector<std::vector<std::int32_t>> out;
    for (const auto& r : rs) {
        GenerateOptions o;
        o.maxNewTokens = r.outputTokens;
        out.push_back(generate(m, r.prompt, o).tokens);
    }
    return out;
}

GenLog serveModel(Model& m, const std::vector<GenRequest>& rs, GenSchedulerSettings s, DType dtype = DType::F32) {
    PagedKvStore store(*cpuBackend(), s.blocks, s.blockSize, dtype);
    ModelGenExecutor exec(m, store);
    VirtualGenClock clock;
    return runGeneration(rs, s, exec, clock);
}

json generateExperiment(const json& params) {
    return {{"name", "t"},
            {"model", {{"zoo", "gpt-char-tiny"}}},
            {"dataset", {{"name", "fortunes"}}},
            {"steps", {{{"strategy", "serve.generate"}, {"params", params}}}}};
}

} // namespace

class TestServeGenerate : public QObject {
    Q_OBJECT

private slots:
    // Continuous: B leaves after its one token and C joins at the next step; static: C waits for the batch
    // (A, B) to end, B staying in as padding until A's third token.
    void continuousAndStaticSchedules() {
        const std::vector<GenRequest> rs = {req(0, 0, 4, 3), req(1, 0, 2, 1), req(2, 0, 3, 2)};
        FixedCostExecutor exec;
        {
            VirtualGenClock clock;
            const GenLog log = runGeneration(rs, settings(GenPolicy::Continuous, 2), exec, clock);
            QCOMPARE(schedule(log), (QStringList{"P0:4,1:2 D", "P2:3 D0", "P D0,2"}));
            QCOMPARE(log.requests[0].firstTokenMs, 1.0);
            QCOMPARE(log.requests[1].finishMs, 1.0);
            QCOMPARE(log.requests[2].firstTokenMs, 2.0);
            QCOMPARE(log.requests[2].finishMs, 3.0);
            QCOMPARE(log.requests[0].tokenMs, (std::vector<double>{1, 2, 3}));
            QCOMPARE(log.maxConcurrent, 2);
            QCOMPARE(log.requests[2].output, (std::vector<std::int32_t>{'c', 'c'}));
        }
        {
            VirtualGenClock clock;
            const GenLog log = runGeneration(rs, settings(GenPolicy::Static, 2), exec, clock);
            QCOMPARE(schedule(log), (QStringList{"P0:4,1:2 D", "P D0,1", "P D0,1", "P2:3 D", "P D2"}));
            QCOMPARE(log.requests[1].output.size(), std::size_t(1)); // padding steps answer nothing
            QCOMPARE(log.requests[2].firstTokenMs, 4.0);
            QCOMPARE(log.requests[2].finishMs, 5.0);
        }
        QCOMPARE(exec.badRows, 0);
    }

    // Static waits for a full batch until the stream ends; continuous starts at the first arrival.
    void staticWaitsForItsBatch() {
        const std::vector<GenRequest> rs = {req(0, 0, 2, 2), req(1, 5, 2, 2)};
        FixedCostExecutor exec;
        VirtualGenClock c1, c2;
        const GenLog st = runGeneration(rs, settings(GenPolicy::Static, 2), exec, c1);
        QCOMPARE(st.requests[0].firstTokenMs, 6.0); // admitted at 5 with request 1
        const GenLog co = runGeneration(rs, settings(GenPolicy::Continuous, 2), exec, c2);
        QCOMPARE(co.requests[0].firstTokenMs, 1.0);
        QCOMPARE(co.requests[1].firstTokenMs, 6.0);
    }

    // Fixed chunks of 3 prefill tokens per iteration across sequences; sentence chunks cut after the '.'.
    void chunkedPrefillSchedules() {
        FixedCostExecutor exec;
        {
            GenSchedulerSettings s = settings(GenPolicy::Continuous, 2);
            s.chunk = ChunkMode::Fixed;
            s.chunkTokens = 3;
            VirtualGenClock clock;
            const GenLog log = runGeneration({req(0, 0, 5, 2), req(1, 0, 2, 1)}, s, exec, clock);
            QCOMPARE(schedule(log), (QStringList{"P0:3 D", "P0:2,1:1 D", "P1:1 D0"}));
        }
        for (const auto& [mode, want] : {std::pair{ChunkMode::Sentence, QStringList{"P0:3 D", "P0:5 D", "P D0"}},
                                         std::pair{ChunkMode::Fixed, QStringList{"P0:6 D", "P0:2 D", "P D0"}}}) {
            GenSchedulerSettings s = settings(GenPolicy::Continuous, 1);
            s.chunk = mode;
            s.chunkTokens = 6;
            VirtualGenClock clock;
            const GenLog log = runGeneration({req(0, 0, 0, 2, "ab. cdef")}, s, exec, clock);
            QCOMPARE(schedule(log), want);
        }
    }

    // 5 blocks of 2 tokens, context 8: A and B take 2 blocks each; when both need a third, B (the newest) is
    // preempted and recomputed (prompt and its 2 tokens) once A has finished. Contiguous reservation of the whole
    // context (4 blocks) admits one sequence at a time in the same pool.
    void preemptionRecomputesTheNewest() {
        const std::vector<GenRequest> rs = {req(0, 0, 3, 5), req(1, 0, 3, 5)};
        FixedCostExecutor exec;
        VirtualGenClock clock;
        const GenLog log = runGeneration(rs, settings(GenPolicy::Continuous, 2, 5, 2, 8), exec, clock);
        QCOMPARE(schedule(log), (QStringList{"P0:3,1:3 D", "P D0,1", "P D0", "P D0", "P D0", "P1:5 D", "P D1", "P D1"}));
        QCOMPARE(log.requests[1].preemptions, 1);
        QCOMPARE(log.preemptions, std::int64_t(1));
        QCOMPARE(log.requests[1].output.size(), std::size_t(5));
        QCOMPARE(log.requests[1].finishMs, 8.0);
        QCOMPARE(log.peakBlocks, std::int64_t(4)); // counted after each iteration (B gave its 2 back in the third)
        QCOMPARE(log.maxConcurrent, 2);

        GenSchedulerSettings contiguous = settings(GenPolicy::Continuous, 2, 5, 2, 8);
        contiguous.paged = false;
        VirtualGenClock c2;
        const GenLog one = runGeneration(rs, contiguous, exec, c2);
        QCOMPARE(one.maxConcurrent, 1);
        QCOMPARE(one.preemptions, std::int64_t(0));
        QCOMPARE(one.requests[1].firstTokenMs, 6.0); // after A's 5 iterations
        QCOMPARE(exec.badRows, 0);
    }

    // Overload: a queue cap drops and counts; bad requests are refused before anything runs.
    void overloadAndBadRequests() {
        FixedCostExecutor exec;
        GenSchedulerSettings s = settings(GenPolicy::Continuous, 1);
        s.queueCap = 2;
        std::vector<GenRequest> rs;
        for (int i = 0; i < 6; ++i) rs.push_back(req(i, 0, 2, 3));
        VirtualGenClock clock;
        const GenLog log = runGeneration(rs, s, exec, clock);
        int dropped = 0;
        for (const auto& r : log.requests) dropped += r.dropped ? 1 : 0;
        QCOMPARE(dropped, 4);
        VirtualGenClock c2;
        QVERIFY_THROWS_EXCEPTION(ConfigError, runGeneration({req(0, 0, 30, 3)}, settings(GenPolicy::Continuous, 1), exec, c2));
        QVERIFY_THROWS_EXCEPTION(ConfigError, runGeneration({req(0, 0, 3, 0)}, settings(GenPolicy::Continuous, 1), exec, c2));
        QVERIFY_THROWS_EXCEPTION(ConfigError, runGeneration({req(0, 0, 3, 2)}, settings(GenPolicy::Continuous, 1, 7, 4, 32), exec, c2));
    }

    // The real decoder in a running batch gives every request the tokens it gets alone, whatever the batching:
    // continuous, static, chunked (fixed, sentence), preempted and recomputed in a pool too small for all.
    void batchedDecoderMatchesGenerationAlone() {
        auto m = smallGpt();
        const auto rs = textRequests(0.0, 6);
        const auto longOutputs = textRequests(0.0, 14, "", 4); // 4-token prompts growing to 18 tokens
        const auto want = aloneOutputs(*m, rs), wantLong = aloneOutputs(*m, longOutputs);
        struct Case {
            const char* name;
            GenSchedulerSettings s;
            bool growing = false;
        };
        std::vector<Case> cases;
        cases.push_back({"continuous", settings(GenPolicy::Continuous, 4, 64, 4, 24)});
        cases.push_back({"static", settings(GenPolicy::Static, 3, 64, 4, 24)});
        Case fixed{"fixed chunks", settings(GenPolicy::Continuous, 4, 64, 4, 24)};
        fixed.s.chunk = ChunkMode::Fixed;
        fixed.s.chunkTokens = 5;
        cases.push_back(fixed);
        Case sentence = fixed;
        sentence.name = "sentence chunks";
        sentence.s.chunk = ChunkMode::Sentence;
        cases.push_back(sentence);
        // 13 blocks of 2: eight 4-token prompts are admitted (3 blocks each) until the pool is full, then grow.
        cases.push_back({"preempting", settings(GenPolicy::Continuous, 8, 13, 2, 24), true});
        Case contiguous{"contiguous", settings(GenPolicy::Continuous, 4, 18, 4, 24)};
        contiguous.s.paged = false;
        cases.push_back(contiguous);
        for (const Case& c : cases) {
            const auto& requests = c.growing ? longOutputs : rs;
            const auto& expected = c.growing ? wantLong : want;
            const GenLog log = serveModel(*m, requests, c.s);
            for (std::size_t i = 0; i < requests.size(); ++i)
                QVERIFY2(log.requests[i].output == expected[i], qPrintable(QString("%1: request %2").arg(c.name).arg(i)));
            if (c.growing) QVERIFY(log.preemptions > 0);
            if (QString(c.name) == "contiguous") QCOMPARE(log.maxConcurrent, 3);
            if (QString(c.name) == "continuous") QCOMPARE(log.maxConcurrent, 4);
        }
    }

    // Requests sharing a system prompt: with the prefix cache, later requests reuse its blocks (hit rate
    // reported) and answer with identical tokens.
    void prefixCacheGivesIdenticalTokens() {
        auto m = smallGpt();
        const auto rs = textRequests(1000.0, 3, "Be kind now.", 6); // 12 shared tokens: 3 whole blocks of 4
        GenSchedulerSettings s = settings(GenPolicy::Continuous, 4, 64, 4, 24);
        const GenLog plain = serveModel(*m, rs, s);
        s.prefixCache = true;
        const GenLog cached = serveModel(*m, rs, s);
        std::int64_t hit = 0, lookup = 0;
        for (std::size_t i = 0; i < rs.size(); ++i) {
            QVERIFY2(cached.requests[i].output == plain.requests[i].output, qPrintable(QString::number(i)));
            hit += cached.requests[i].prefixHitTokens;
            lookup += cached.requests[i].prefixLookupTokens;
        }
        QCOMPARE(cached.requests[0].prefixHitTokens, std::int64_t(0));
        QCOMPARE(cached.requests[3].prefixHitTokens, std::int64_t(12));
        QVERIFY(hit > 0 && hit < lookup);
    }

    // INT8 (Q8_0) and FP8 (E4M3) blocks: the pool takes 34 / 128 and 32 / 128 of the F32 bytes, and the
    // teacher-forced loss read through the blocks stays within 1% (INT8) and 5% (FP8, 4 significant bits and no
    // scale) of F32 blocks' perplexity on this model.
    void quantizedBlocksAndTheirPerplexity() {
        auto m = smallGpt();
        TextCorpus c;
        c.name = "t";
        c.sourceFiles = {"t"};
        for (int i = 0; i < 40; ++i) c.records.push_back({"the cat sat on the mat. A dog ran. " + std::to_string(i), 0});
        const Dataset windows = byteWindows(c, 24);
        std::vector<std::int64_t> idx(8);
        for (int i = 0; i < 8; ++i) idx[static_cast<std::size_t>(i)] = i;
        std::vector<std::int32_t> ids(8 * 24), labels(8 * 24);
        makeTokenBatch(windows, idx, ids.data(), labels.data());
        double loss[3];
        std::uint64_t bytes[3];
        const DType kinds[3] = {DType::F32, DType::Q8_0, DType::F8E4M3};
        for (int k = 0; k < 3; ++k) {
            PagedKvStore store(*cpuBackend(), 6, 4, kinds[k]);
            ModelGenExecutor exec(*m, store);
            loss[k] = exec.windowLossNats(ids, labels, 8, 24,
                                          [](const std::vector<std::int32_t>& w, std::int64_t from) {
                                              return static_cast<std::int64_t>(w.size()) - from;
                                          });
            bytes[k] = store.bytes();
        }
        qInfo("perplexity through f32 / int8 / fp8 blocks: %.6f / %.6f / %.6f", std::exp(loss[0]), std::exp(loss[1]),
              std::exp(loss[2]));
        QVERIFY(std::isfinite(loss[0]) && loss[0] > 0);
        QVERIFY2(std::fabs(std::exp(loss[1]) / std::exp(loss[0]) - 1.0) < 0.01,
                 qPrintable(QString("%1 vs %2").arg(loss[1]).arg(loss[0])));
        QVERIFY2(std::fabs(std::exp(loss[2]) / std::exp(loss[0]) - 1.0) < 0.05,
                 qPrintable(QString("%1 vs %2").arg(loss[2]).arg(loss[0])));
        QVERIFY(loss[1] != loss[0] && loss[2] != loss[0]); // the blocks really are quantized
        QCOMPARE(bytes[1] * 128, bytes[0] * 34);
        QCOMPARE(bytes[2] * 128, bytes[0] * 32);
    }

    // The generation trace columns: read, and refused with file:line when a length is missing or zero.
    void generationTraceColumns() {
        const auto a = parseTrace("arrival_ms,samples,priority,prompt_tokens,output_tokens\n0,1,0,12,5\n3.5,1,0,4,1\n", "t.csv", 1);
        QCOMPARE(a.size(), std::size_t(2));
        QCOMPARE(a[0].promptTokens, std::int64_t(12));
        QCOMPARE(a[1].outputTokens, std::int64_t(1));
        try {
            parseTrace("arrival_ms,samples,priority,prompt_tokens,output_tokens\n0,1,0,12,0\n", "t.csv", 1);
            QFAIL("accepted an output of 0 tokens");
        } catch (const ConfigError& e) {
            QCOMPARE(QString(e.what()), QString("t.csv:2: output_tokens: expected an integer >= 1, got \"0\""));
        }
        QVERIFY_THROWS_EXCEPTION(ConfigError, parseTrace("0,1,0,12,5\n1,1,0\n", "t.csv", 1));
    }

    // Bad input refused at validation at the field's pointer, with what was expected.
    void badInputRefusedAtValidation() {
        const QString at = "/steps/0/params/";
        test::expectSingleIssue(generateExperiment({{"kv_block_size", 48}}), at + "kv_block_size",
                          "expected a block size that divides the model's context of 128 tokens, got 48");
        test::expectSingleIssue(generateExperiment({{"prompt_tokens_max", 130}}), at + "prompt_tokens_max",
                          "a prompt of 130 tokens (shared_prefix_tokens included) leaves no room in the context of 128");
        test::expectSingleIssue(generateExperiment({{"prompt_tokens_max", 100}, {"output_tokens_max", 40}}),
                          at + "output_tokens_max", "prompt (up to 100) and output (up to 40) tokens pass the context of 128");
        test::expectSingleIssue(generateExperiment({{"output_tokens_min", 0}}), at + "output_tokens_min", "");
        // gpt-char-tiny: 5 layers of 384-value fused QKV rows, 16 tokens in F32 = 122880 bytes a block.
        test::expectSingleIssue(generateExperiment({{"kv_budget_mib", 0.5}}), at + "kv_budget_mib",
                          "a budget of 0.500 MiB holds 4 blocks of 16 tokens; one sequence of the context needs 8 (0.938 MiB)");
        test::expectSingleIssue(generateExperiment({{"kv_prefix_cache", true}, {"kv_paged", false}}), at + "kv_prefix_cache", "");
        const std::string dir = test::tempDir();
        std::ofstream(dir + "/long.csv") << "arrival_ms,samples,priority,prompt_tokens,output_tokens\n0,1,0,120,20\n";
        test::expectSingleIssue(generateExperiment({{"arrival", "trace"}, {"trace", dir + "/long.csv"}}), at + "trace",
                          QString::fromStdString(dir + "/long.csv: request 0: a prompt of 120 tokens and 20 output tokens "
                                                       "pass the context of 128"));
        QVERIFY(validateExperiment(generateExperiment({{"policy", "static"}, {"kv_dtype", "int8"}})).empty());
    }

    // The strategy on a step context: summary keys, live series, perplexity through INT8 blocks.
    void strategyRunReportsTheServingFigures() {
        test::ContextFixture fx("gpt-char-tiny");
        fx.model = smallGpt();
        TextCorpus c;
        c.name = "t";
        c.sourceFiles = {"t"};
        for (int i = 0; i < 30; ++i) c.records.push_back({"It is. So it goes on and on. " + std::to_string(i), 0});
        fx.data.test = byteWindows(c, 24);
        ParamValues v = defaultValues(*StrategyRegistry::instance().find("serve.generate"));
        v.set("requests", std::int64_t(12));
        v.set("rate_per_s", 500.0);
        v.set("prompt_tokens_min", std::int64_t(2));
        v.set("prompt_tokens_max", std::int64_t(8));
        v.set("output_tokens_min", std::int64_t(1));
        v.set("output_tokens_max", std::int64_t(12));
        v.set("kv_block_size", std::int64_t(4));
        v.set("max_batch", std::int64_t(4));
        v.set("kv_dtype", std::string("int8"));
        v.set("eval_windows", std::int64_t(4));
        v.set("shared_prefix_tokens", std::int64_t(4));
        v.set("kv_prefix_cache", true);
        StrategyRegistry::instance().create("serve.generate", v)->apply(fx.ctx);
        const auto& s = fx.summary;
        QCOMPARE(s.at("served"), 12.0);
        for (const char* k : {"ttft_ms_p50", "ttft_ms_p99", "tpot_ms_p50", "tpot_ms_p99", "itl_ms_p50", "itl_ms_p99",
                              "tokens_per_s", "goodput_per_s", "kv_bytes_peak", "kv_fragmentation",
                              "max_concurrent_seqs", "prefix_hit_rate", "kv_perplexity", "kv_perplexity_delta"})
            QVERIFY2(s.count(k), k);
        QVERIFY(s.at("ttft_ms_p50") <= s.at("ttft_ms_p99"));
        QVERIFY(s.at("tokens_per_s") > 0);
        QVERIFY(s.at("max_concurrent_seqs") >= 1 && s.at("max_concurrent_seqs") <= 4);
        QVERIFY(s.at("kv_bytes_peak") > 0 && s.at("kv_bytes_peak") <= s.at("kv_bytes_budget"));
        QVERIFY(std::fabs(s.at("kv_perplexity_delta")) < 0.05);
        int running = 0, blocks = 0, queue = 0;
        for (const auto& smp : fx.sink.samples) {
            running += smp.seriesName() == "generate/running_batch";
            blocks += smp.seriesName() == "generate/kv_blocks_used";
            queue += smp.seriesName() == "generate/queue_depth";
        }
        QVERIFY(running > 0 && running == blocks && blocks == queue);
    }

    // Cancelled mid-stream: CancelledError after the summary of the requests answered so far and a note.
    void cancelKeepsWhatWasAnswered() {
        test::ContextFixture fx("gpt-char-tiny");
        fx.model = smallGpt();
        TextCorpus c;
        c.name = "t";
        c.sourceFiles = {"t"};
        for (int i = 0; i < 30; ++i) c.records.push_back({"It is. So it goes on. " + std::to_string(i), 0});
        fx.data.test = byteWindows(c, 24);
        std::atomic<bool> cancel{false};
        struct CancellingSink final : MetricSink {
            std::atomic<bool>* cancel = nullptr;
            int iterations = 0;
            void push(const MetricSample& s) override {
                if (s.seriesName() == "generate/running_batch" && ++iterations == 20) cancel->store(true);
            }
        } sink;
        sink.cancel = &cancel;
        fx.ctx.sinkPtr = &sink;
        fx.ctx.cancel = &cancel;
        ParamValues v = defaultValues(*StrategyRegistry::instance().find("serve.generate"));
        v.set("requests", std::int64_t(200));
        v.set("rate_per_s", 100000.0);
        v.set("prompt_tokens_max", std::int64_t(8));
        v.set("output_tokens_max", std::int64_t(12));
        v.set("kv_block_size", std::int64_t(4));
        v.set("max_batch", std::int64_t(2));
        QVERIFY_THROWS_EXCEPTION(CancelledError, StrategyRegistry::instance().create("serve.generate", v)->apply(fx.ctx));
        QCOMPARE(sink.iterations, 20);
        QVERIFY(fx.summary.at("served") < 200);
        QVERIFY(fx.notes.at("serve.generate").find("cancelled after") != std::string::npos);
    }
};

LATHE_TEST_GUILESS_MAIN(TestServeGenerate)
#include "test_serve_generate.moc"

// lathe-cli embed and `lathe-cli bench encoder`: sentence embeddings of a BERT-family encoder (the zoo's
// minilm-l6-v2, or a Hugging Face checkpoint folder) and their speed in sentences per second.
#include "app/cli/bench_support.h"

#include "engine/core/errors.h"
#include "engine/data/wordpiece.h"
#include "engine/io/bert_model.h"
#include "engine/io/pretrained.h"
#include "engine/measure/latency.h"
#include "engine/measure/stats.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

namespace lathe::cli {
namespace {

// The encoder and its tokenizer: a pretrained zoo name, or a folder / model.safetensors of a BERT checkpoint.
struct Encoder {
    std::unique_ptr<Model> model;
    WordPieceTokenizer tokenizer;
};

Encoder loadEncoder(const std::string& ref) {
    std::string file;
    std::unique_ptr<Model> model;
    if (const PretrainedInfo* p = findPretrained(ref)) {
        file = requirePretrained(*p) + "/model.safetensors";
        model = loadPretrained(*p);
    } else {
        file = std::filesystem::is_directory(ref) ? ref + "/model.safetensors" : ref;
        model = loadBertModel(file, bertModelName(file));
    }
    const std::string tok = (std::filesystem::path(file).parent_path() / "tokenizer.json").string();
    return {std::move(model), WordPieceTokenizer::fromFile(tok)};
}

// Token ids of `texts` padded to the model's sequence length (N, T) on `be`.
Tensor encodeOn(Backend& be, const Encoder& e, const std::vector<std::string>& texts) {
    const std::int64_t t = e.model->inputShape().at(0);
    EncodedBatch b = e.tokenizer.encodeBatch(texts);
    if (b.seqLen != t)
        throw ConfigError("the tokenizer pads to " + std::to_string(b.seqLen) + " tokens, the model takes " + std::to_string(t));
    return be.uploadI32(b.ids, {b.rows, t});
}

std::vector<std::string> readLines(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw DataError(path + ": cannot open the sentences file");
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) out.push_back(line);
    if (out.empty()) throw DataError(path + ": no sentences (one per line expected)");
    return out;
}

int runEmbed(const std::vector<std::string>& argv) {
    Args args(argv, {"--model"}, {"--json"});
    const auto& texts = args.positional();
    if (texts.empty()) throw ConfigError("usage: lathe-cli embed [--model NAME|DIR] [--json] TEXT...");
    Encoder e = loadEncoder(args.value("--model", "minilm-l6-v2"));
    Backend& be = *e.model->backend();
    const std::vector<float> emb = be.downloadF32(e.model->forward(encodeOn(be, e, texts), ForwardContext{}));
    const auto d = static_cast<std::size_t>(emb.size() / texts.size());
    auto cosine = [&](std::size_t a, std::size_t b) {
        double s = 0;
        for (std::size_t k = 0; k < d; ++k) s += double(emb[a * d + k]) * emb[b * d + k];
        return s;
    };
    if (args.flag("--json")) {
        nlohmann::json out = {{"model", e.model->name()}, {"dim", d}, {"embeddings", nlohmann::json::array()},
                              {"cosine", nlohmann::json::array()}};
        for (std::size_t i = 0; i < texts.size(); ++i) {
            out["embeddings"].push_back(std::vector<float>(emb.begin() + i * d, emb.begin() + (i + 1) * d));
            nlohmann::json row = nlohmann::json::array();
            for (std::size_t j = 0; j < texts.size(); ++j) row.push_back(cosine(i, j));
            out["cosine"].push_back(row);
        }
        std::cout << out.dump(2) << "\n";
        return kExitOk;
    }
    std::printf("%s: %zu-dimensional sentence embeddings; cosine similarities:\n", e.model->name().c_str(), d);
    for (std::size_t i = 0; i < texts.size(); ++i)
        for (std::size_t j = i + 1; j < texts.size(); ++j)
            std::printf("%8.4f  \"%s\" ~ \"%s\"\n", cosine(i, j), texts[i].c_str(), texts[j].c_str());
    return kExitOk;
}

int runBenchEncoder(const std::vector<std::string>& argv) {
    Args args(argv, {"--device", "--warmup", "--repeats", "--rotate", "--threads", "--batch-sizes", "--model", "--sentences"},
              {"--json"});
    BenchOptions o = parseCommon(args);
    const std::string ref = args.value("--model", "minilm-l6-v2");
    const auto batchSizes = parseBatchSizes(args.value("--batch-sizes", "1,64"));
    std::vector<std::string> sentences = args.value("--sentences")
                                             ? readLines(*args.value("--sentences"))
                                             : std::vector<std::string>{"A man is playing a guitar.",
                                                                        "Someone plays an instrument.",
                                                                        "The stock market fell sharply today."};
    nlohmann::json results = nlohmann::json::array();
    Encoder e = loadEncoder(ref);
    if (!o.json) {
        std::printf("encoder %s forward (sentences padded to %lld tokens), warm-up %d, %d repeats over %d batches "
                    "of %zu sentences\n", e.model->name().c_str(), static_cast<long long>(e.model->inputShape().at(0)),
                    o.warmup, o.repeats, o.rotate, sentences.size());
        std::printf("%-8s %6s %12s %12s %14s\n", "backend", "batch", "median ms", "p95 ms", "sentences/s");
    }
    for (auto& bePtr : o.backends) {
        Backend& be = *bePtr;
        e.model->to(be);
        for (int batch : batchSizes) {
            std::vector<Tensor> inputs;
            for (int r = 0; r < o.rotate; ++r) {
                std::vector<std::string> chunk;
                for (int i = 0; i < batch; ++i)
                    chunk.push_back(sentences[static_cast<std::size_t>(r * batch + i) % sentences.size()]);
                inputs.push_back(encodeOn(be, e, chunk));
            }
            const LatencySummary t = summarize(measureLatency(be, *e.model, inputs, o.warmup, o.repeats));
            const double perS = batch / (t.p50 * 1e-3);
            if (!o.json)
                std::printf("%-8s %6d %12.3f %12.3f %14.1f\n", be.name().c_str(), batch, t.p50, t.p95, perS);
            nlohmann::json r = backendJson(be);
            r.update({{"model", e.model->name()}, {"batch_size", batch}, {"latency_p50_ms", t.p50},
                      {"latency_p95_ms", t.p95}, {"latency_cv", t.cv}, {"noisy", t.noisy},
                      {"sentences_per_s", perS}, {"model_bytes", e.model->parameterBytes()}});
            results.push_back(r);
        }
    }
    if (o.json) std::cout << benchDocument("encoder", o, std::move(results)).dump(2) << "\n";
    return kExitOk;
}

const Registrar kEmbed({"embed", "embed [--model NAME|DIR] [--json] TEXT...",
                        "sentence embeddings of a BERT-family encoder and their cosine similarities", runEmbed});
const BenchRegistrar kBench({"encoder",
                             "bench encoder [--model NAME|DIR] [--sentences FILE] [--batch-sizes 1,64] [--device D] "
                             "[--threads N] [--warmup N] [--repeats N] [--rotate N] [--json]",
                             "sentences/s of a BERT-family sentence encoder (minilm-l6-v2)", runBenchEncoder});

} // namespace
} // namespace lathe::cli

// Datasets tokenized by the experiment's model (model_data.h).
#include "engine/io/model_data.h"

#include "engine/core/errors.h"
#include "engine/data/sentences.h"
#include "engine/data/text_corpus.h"
#include "engine/io/bert_model.h"
#include "engine/io/pretrained.h"

#include <filesystem>

namespace lathe {

std::string modelTokenizerPath(const ModelRef& model) {
    if (!model.zoo.empty()) {
        const PretrainedInfo* p = findPretrained(model.zoo);
        return p && p->name == model.zoo ? requirePretrained(*p) + "/tokenizer.json" : std::string();
    }
    if (model.architecturePath == kBertArchitecture)
        return (std::filesystem::path(model.path).parent_path() / "tokenizer.json").string();
    return {};
}

SentenceSplits fortunesSentences() {
    // The fortunes split as the language models' corpus is (10% of the fortunes, by hash, to validation), so
    // a fortune's sentences stay on one side.
    const TextCorpusSplit split = splitTextCorpus(loadTextCorpus("fortunes"), kFortunesTestFraction);
    auto texts = [](const TextCorpus& c) {
        std::vector<std::string> out;
        for (const auto& r : c.records) out.push_back(r.text);
        return out;
    };
    SentenceSplits s = sentenceSplits(texts(split.train), texts(split.validation));
    s.sourceFiles = split.train.sourceFiles;
    return s;
}

DatasetSplits loadDatasetFor(const std::string& name, const ModelRef& model) {
    if (name != kFortunesSentences) return loadDataset(name);
    const std::string tokenizer = modelTokenizerPath(model);
    if (tokenizer.empty())
        throw ConfigError(std::string("dataset ") + kFortunesSentences + " is tokenized by the model's own tokenizer: " +
                          "the model must be a pretrained encoder (zoo minilm-l6-v2) or a BERT checkpoint " +
                          "({\"path\": ..., \"architecture\": \"bert\"}) with tokenizer.json beside it");
    const WordPieceTokenizer tok = WordPieceTokenizer::fromFile(tokenizer);
    const SentenceSplits s = fortunesSentences();
    DatasetSplits out;
    out.train = tokenizedSentences(std::string(kFortunesSentences) + "/train", s.train, tok);
    out.test = tokenizedSentences(std::string(kFortunesSentences) + "/test", s.test, tok);
    out.train.sourceFiles.insert(out.train.sourceFiles.end(), s.sourceFiles.begin(), s.sourceFiles.end());
    return out;
}

} // namespace lathe

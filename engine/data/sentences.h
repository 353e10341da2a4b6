// A sentence dataset for text encoders: sentences cut from a corpus's documents (the Debian fortunes package's
// fortunes, text_corpus.h), deduplicated, split with their documents (a fortune's sentences stay together), and
// tokenized by the encoder's tokenizer into a token dataset without labels (dataset.h). Its quality metrics
// compare a model's outputs with reference outputs (engine/measure/fidelity.h).
#pragma once

#include "engine/data/dataset.h"
#include "engine/data/wordpiece.h"

#include <string>
#include <string_view>
#include <vector>

namespace lathe {

// The dataset name experiments use: fortunes sentences, tokenized by the experiment model's tokenizer.
constexpr const char* kFortunesSentences = "fortunes-sentences";

struct SentenceSplitOptions {
    int minWords = 4;
    int maxWords = 40;
};

// Sentences of one document: lines joined (an attribution line starting with "--" dropped), whitespace
// collapsed, cut after '.', '!' or '?' (and closing quotes or brackets) where the next word starts with a capital
// letter, a digit or a quote; sentences of minWords..maxWords words that hold a letter.
std::vector<std::string> splitSentences(std::string_view document, const SentenceSplitOptions& o = {});

// The sentences of the test documents, then those of the train documents that the test side does not hold,
// each once, in document order.
struct SentenceSplits {
    std::vector<std::string> train, test;
    std::vector<std::string> sourceFiles; // the corpus's files, when known
};
SentenceSplits sentenceSplits(const std::vector<std::string>& trainDocuments,
                              const std::vector<std::string>& testDocuments, const SentenceSplitOptions& o = {});

// A token dataset of the sentences: sampleShape {T} (the tokenizer's padding length, else its longest
// encoding), labelled false, the sentences themselves in `texts` order.
Dataset tokenizedSentences(const std::string& name, const std::vector<std::string>& sentences,
                           const WordPieceTokenizer& tokenizer);

} // namespace lathe

// Datasets that depend on the experiment's model: a text dataset is tokenized by the model's own tokenizer
// (fortunes-sentences by a BERT-family encoder's tokenizer.json). Everything else is loadDataset's.
#pragma once

#include "engine/data/dataset.h"
#include "engine/io/model_io.h"

#include <string>

namespace lathe {

// The tokenizer.json of a model: a pretrained zoo model's, or the one beside a "bert" checkpoint; "" for
// models without one.
std::string modelTokenizerPath(const ModelRef& model);

// loadDataset(name), or for fortunes-sentences (sentences.h) the sentences tokenized by the model's tokenizer;
// ConfigError when the model has none.
DatasetSplits loadDatasetFor(const std::string& name, const ModelRef& model);

// The share of fortunes whose sentences form the test split of fortunes-sentences.
constexpr double kFortunesTestFraction = 0.1;
// The sentences of fortunes-sentences as text, train and test.
struct SentenceSplits;
SentenceSplits fortunesSentences();

} // namespace lathe

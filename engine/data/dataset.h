// Labelled image datasets held as raw bytes, with the preprocessing a model declares and
// seeded mini-batch iteration. Fashion-MNIST ships in the Debian package dataset-fashion-mnist.
#pragma once

#include "engine/core/shape.h"

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace lathe {

// x' = (x * scale - mean) / std, applied to raw uint8 pixels.
struct InputPreprocess {
    float scale = 1.0f / 255.0f;
    float mean = 0.0f;
    float std = 1.0f;
};

struct Dataset {
    std::string name;                  // "fashion-mnist/train"
    Shape sampleShape;                 // per sample, e.g. {1, 28, 28}
    int numClasses = 0;
    std::vector<std::string> classNames;
    std::vector<std::uint8_t> pixels;  // size() * numel(sampleShape)
    std::vector<std::int32_t> labels;  // size() * labelsPerSample
    std::vector<std::string> sourceFiles;
    // Token data (a byte-level language model's windows): each sample's "pixels" are token ids, and it has one
    // label per position (the next token), so labels holds size() * labelsPerSample entries.
    std::int64_t labelsPerSample = 1;
    // Token datasets (text, issue 14): each sample is sampleShape = {T} token ids, held in `tokens`
    // (size() * T, I32) instead of pixels. A dataset without labels (`labelled` false) keeps one 0 per sample
    // in `labels`, so that it still has a size; its quality is measured against a reference model's outputs
    // (engine/measure/fidelity.h), never as accuracy.
    std::vector<std::int32_t> tokens;
    bool labelled = true;
    bool isTokens() const { return !tokens.empty(); }
    std::vector<std::string> warnings; // what loading repaired (invalid UTF-8 replaced in a text file, naming it)

    std::int64_t size() const { return static_cast<std::int64_t>(labels.size()) / std::max<std::int64_t>(1, labelsPerSample); }
    std::int64_t sampleSize() const { return numel(sampleShape); }
    Dataset head(std::int64_t n) const; // the first n samples (all if n <= 0 or n >= size())
};

struct DatasetSplits {
    Dataset train;
    Dataset test;
};

// Default folder of the fashion-mnist dataset (the Debian package's).
extern const char* const kFashionMnistDir;
// Where "fashion-mnist" is read from: $LATHE_FASHION_MNIST_DIR when set (a copy elsewhere, or an empty
// folder to check what works without the data), else kFashionMnistDir.
std::string fashionMnistDir();
// The sample shape and class count of a named dataset (datasetNames()), known without reading it; false
// for a folder or an unknown name.
bool knownDatasetShape(const std::string& name, Shape& sampleShape, int& classes);
std::vector<std::string> datasetNames(); // {"fashion-mnist", "fortunes"}
// "fortunes" (the Debian package's text as byte windows for a language model, text_corpus.h), "text:PATH" (a text
// file or folder the same way), "fashion-mnist", or a folder holding train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz],
// t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]. Throws DataError naming the missing file
// (and the Debian package for the default) or ConfigError listing the known names.
DatasetSplits loadDataset(const std::string& nameOrDir);

// Fills x (n * sampleSize floats) and y (n labels) for the given sample indices.
void makeBatch(const Dataset& data, std::span<const std::int64_t> indices, const InputPreprocess& pre, float* x,
               std::int32_t* y);

// Token models: x (n * sampleSize) I32 ids, y (n * labelsPerSample) their labels (or null). The ids are the
// dataset's `tokens` when it has them (a tokenized text dataset), else its bytes as they are (byte-level data).
void makeTokenBatch(const Dataset& data, std::span<const std::int64_t> indices, std::int32_t* x, std::int32_t* y);

// Seeded epoch order: a permutation of [0, size) per epoch (or identity when !shuffle).
class BatchIterator {
public:
    BatchIterator(std::int64_t size, int batchSize, bool shuffle, std::uint64_t seed, bool dropLast = false);
    void startEpoch(int epoch);                         // reshuffles with (seed, epoch)
    bool next(std::span<const std::int64_t>& indices);  // false at the end of the epoch
    std::int64_t batchesPerEpoch() const;

private:
    std::int64_t m_size;
    int m_batchSize;
    bool m_shuffle;
    std::uint64_t m_seed;
    bool m_dropLast;
    std::vector<std::int64_t> m_order;
    std::int64_t m_pos = 0;
};

} // namespace lathe

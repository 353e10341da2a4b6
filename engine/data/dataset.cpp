// Loading the IDX image datasets (Fashion-MNIST and folders laid out like it), batch assembly with
// the model's preprocessing, and the seeded epoch order.
#include "engine/data/dataset.h"
#include "engine/data/text_corpus.h"

#include "engine/core/errors.h"
#include "engine/data/sentences.h"
#include "engine/core/rng.h"
#include "engine/data/idx.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>

namespace lathe {

const char* const kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

std::string fashionMnistDir() {
    const char* dir = std::getenv("LATHE_FASHION_MNIST_DIR");
    return dir && *dir ? std::string(dir) : std::string(kFashionMnistDir);
}

namespace {

namespace fs = std::filesystem;

constexpr const char* kFashionMnistPackage = "dataset-fashion-mnist";
constexpr int kDefaultClasses = 10;
// Zalando's label order (github.com/zalandoresearch/fashion-mnist).
const std::array<const char*, 10> kFashionMnistClasses = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

struct Source {
    std::string dir;
    std::string label;    // "fashion-mnist" or the folder name
    bool isDefault = false;
};

// "<dir>/<stem>.gz" or "<dir>/<stem>"; DataError naming what is missing.
std::string findFile(const Source& src, const std::string& stem) {
    const fs::path gz = fs::path(src.dir) / (stem + ".gz");
    const fs::path plain = fs::path(src.dir) / stem;
    std::error_code ec;
    if (fs::is_regular_file(gz, ec)) return gz.string();
    if (fs::is_regular_file(plain, ec)) return plain.string();
    std::string msg = gz.string() + ": missing (neither " + gz.filename().string() + " nor " +
                      plain.filename().string() + " is in " + src.dir + ")";
    if (src.isDefault)
        msg += "; install the Debian package " + std::string(kFashionMnistPackage) + " (apt install " +
               kFashionMnistPackage + ")";
    throw DataError(msg);
}

// Optional classes.txt in a dataset folder: one class name per line.
std::vector<std::string> readClassNames(const Source& src) {
    if (src.isDefault) return {kFashionMnistClasses.begin(), kFashionMnistClasses.end()};
    const fs::path file = fs::path(src.dir) / "classes.txt";
    std::vector<std::string> names;
    std::ifstream in(file);
    if (in) {
        std::string line;
        while (std::getline(in, line)) {
            while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
            if (!line.empty()) names.push_back(line);
        }
        if (names.empty()) throw DataError(file.string() + ": no class names in it");
        return names;
    }
    for (int i = 0; i < kDefaultClasses; ++i) names.push_back(std::to_string(i));
    return names;
}

Dataset loadSplit(const Source& src, const std::string& prefix, const std::string& split,
                  const std::vector<std::string>& classNames) {
    const std::string imagesPath = findFile(src, prefix + "-images-idx3-ubyte");
    const std::string labelsPath = findFile(src, prefix + "-labels-idx1-ubyte");

    IdxArray images = readIdx(imagesPath);
    if (images.typeCode != 0x08 || images.dims.size() != 3)
        throw DataError(imagesPath + ": expected unsigned-byte images with 3 dimensions (count, rows, columns)");
    IdxArray labels = readIdx(labelsPath);
    if (labels.typeCode != 0x08 || labels.dims.size() != 1)
        throw DataError(labelsPath + ": expected unsigned-byte labels with 1 dimension (count)");
    if (images.dims[0] != labels.dims[0])
        throw DataError(imagesPath + ": holds " + std::to_string(images.dims[0]) + " images but " + labelsPath +
                        " holds " + std::to_string(labels.dims[0]) + " labels");

    Dataset d;
    d.name = src.label + "/" + split;
    d.sampleShape = {1, images.dims[1], images.dims[2]};
    d.numClasses = static_cast<int>(classNames.size());
    d.classNames = classNames;
    d.pixels = std::move(images.bytes);
    d.labels.resize(labels.bytes.size());
    for (std::size_t i = 0; i < labels.bytes.size(); ++i) {
        const int label = labels.bytes[i];
        if (label >= d.numClasses)
            throw DataError(labelsPath + ": label " + std::to_string(label) + " of sample " + std::to_string(i) +
                            " is not below the number of classes (" + std::to_string(d.numClasses) + ")");
        d.labels[i] = label;
    }
    d.sourceFiles = {imagesPath, labelsPath};
    return d;
}

} // namespace

Dataset Dataset::head(std::int64_t n) const {
    if (n <= 0 || n >= size()) return *this;
    Dataset out;
    out.name = name;
    out.sampleShape = sampleShape;
    out.numClasses = numClasses;
    out.classNames = classNames;
    out.sourceFiles = sourceFiles;
    out.labelsPerSample = labelsPerSample;
    out.labels.assign(labels.begin(), labels.begin() + n * labelsPerSample);
    out.pixels.assign(pixels.begin(), pixels.begin() + (pixels.empty() ? 0 : n * sampleSize()));
    out.tokens.assign(tokens.begin(), tokens.begin() + (tokens.empty() ? 0 : n * sampleSize()));
    out.labelled = labelled;
    return out;
}

std::vector<std::string> datasetNames() { return {"fashion-mnist", "fortunes", kFortunesSentences}; }

bool knownDatasetShape(const std::string& name, Shape& sampleShape, int& classes) {
    if (name == "fortunes" || name.rfind("text:", 0) == 0) {
        sampleShape = {kTextContext};
        classes = 256;
        return true;
    }
    if (name != "fashion-mnist") return false;
    sampleShape = {1, 28, 28};
    classes = 10;
    return true;
}

DatasetSplits loadDataset(const std::string& nameOrDir) {
    if (nameOrDir == "fortunes") return loadTextDataset("fortunes", kTextContext);
    if (nameOrDir.rfind("text:", 0) == 0) return loadTextDataset(nameOrDir.substr(5), kTextContext);
    Source src;
    std::error_code ec;
    if (nameOrDir == "fashion-mnist") {
        src = {fashionMnistDir(), "fashion-mnist", true};
    } else if (nameOrDir == kFortunesSentences) {
        throw ConfigError(std::string("dataset ") + kFortunesSentences + " is tokenized by the experiment model's " +
                          "tokenizer: it is loaded with its model (engine/io/model_data.h)");
    } else if (fs::is_directory(nameOrDir, ec)) {
        src.dir = nameOrDir;
        src.label = fs::path(nameOrDir).lexically_normal().filename().string();
        if (src.label.empty()) src.label = fs::path(nameOrDir).lexically_normal().parent_path().filename().string();
        if (src.label.empty()) src.label = nameOrDir;
    } else if (nameOrDir.find('/') != std::string::npos) {
        // Looks like a path: say which file would have been read.
        throw DataError((fs::path(nameOrDir) / "train-images-idx3-ubyte.gz").string() +
                        ": missing (the folder " + nameOrDir + " does not exist); the default fashion-mnist " +
                        "dataset comes from the Debian package " + kFashionMnistPackage);
    } else {
        std::string known;
        for (const auto& n : datasetNames()) known += (known.empty() ? "" : ", ") + n;
        throw ConfigError("unknown dataset \"" + nameOrDir + "\" (known: " + known +
                          "; or a folder holding train/t10k images and labels IDX files)");
    }
    const auto classNames = readClassNames(src);
    DatasetSplits out;
    out.train = loadSplit(src, "train", "train", classNames);
    out.test = loadSplit(src, "t10k", "test", classNames);
    if (out.train.sampleShape != out.test.sampleShape)
        throw DataError(out.test.sourceFiles[0] + ": image size " + shapeToString(out.test.sampleShape) +
                        " differs from the training images' " + shapeToString(out.train.sampleShape));
    return out;
}

namespace {
std::int64_t checkedSample(const Dataset& data, std::int64_t i) {
    if (i < 0 || i >= data.size())
        throw DataError(data.name + ": sample index " + std::to_string(i) + " out of range (size " +
                        std::to_string(data.size()) + ")");
    return i;
}
} // namespace

void makeBatch(const Dataset& data, std::span<const std::int64_t> indices, const InputPreprocess& pre, float* x,
               std::int32_t* y) {
    // One table lookup per pixel: the same arithmetic as (p * scale - mean) / std, done 256 times.
    std::array<float, 256> lut;
    for (int p = 0; p < 256; ++p) lut[p] = (static_cast<float>(p) * pre.scale - pre.mean) / pre.std;
    if (data.isTokens()) throw DataError(data.name + ": a token dataset has no pixels to preprocess");
    const std::int64_t ss = data.sampleSize();
    for (std::size_t b = 0; b < indices.size(); ++b) {
        const std::int64_t i = checkedSample(data, indices[b]);
        const std::uint8_t* src = data.pixels.data() + i * ss;
        float* dst = x + static_cast<std::int64_t>(b) * ss;
        for (std::int64_t k = 0; k < ss; ++k) dst[k] = lut[src[k]];
        if (y) y[b] = data.labels[static_cast<std::size_t>(i)];
    }
}

void makeTokenBatch(const Dataset& data, std::span<const std::int64_t> indices, std::int32_t* x, std::int32_t* y) {
    const std::int64_t ss = data.sampleSize(), lps = data.labelsPerSample;
    for (std::size_t b = 0; b < indices.size(); ++b) {
        const std::int64_t i = checkedSample(data, indices[b]);
        std::int32_t* dst = x + static_cast<std::int64_t>(b) * ss;
        if (data.isTokens()) {
            std::copy_n(data.tokens.data() + i * ss, ss, dst);
        } else {
            const std::uint8_t* src = data.pixels.data() + i * ss;
            for (std::int64_t k = 0; k < ss; ++k) dst[k] = src[k];
        }
        if (y)
            std::copy_n(data.labels.begin() + i * lps, lps, y + static_cast<std::int64_t>(b) * lps);
    }
}

BatchIterator::BatchIterator(std::int64_t size, int batchSize, bool shuffle, std::uint64_t seed, bool dropLast)
    : m_size(size), m_batchSize(batchSize), m_shuffle(shuffle), m_seed(seed), m_dropLast(dropLast) {
    if (batchSize <= 0) throw ConfigError("batch size must be positive, got " + std::to_string(batchSize));
    if (size < 0) throw ConfigError("dataset size must not be negative, got " + std::to_string(size));
    startEpoch(0);
}

void BatchIterator::startEpoch(int epoch) {
    m_order.resize(static_cast<std::size_t>(m_size));
    std::iota(m_order.begin(), m_order.end(), std::int64_t{0});
    if (m_shuffle) {
        // The order depends on (seed, epoch) only, so resuming at epoch k reproduces it.
        Rng rng(mix64(m_seed ^ mix64(static_cast<std::uint64_t>(epoch) + 0x5eedull)));
        for (std::int64_t i = m_size - 1; i > 0; --i) {
            const auto j = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(i) + 1));
            std::swap(m_order[static_cast<std::size_t>(i)], m_order[static_cast<std::size_t>(j)]);
        }
    }
    m_pos = 0;
}

bool BatchIterator::next(std::span<const std::int64_t>& indices) {
    const std::int64_t left = m_size - m_pos;
    if (left <= 0 || (m_dropLast && left < m_batchSize)) return false;
    const std::int64_t n = std::min<std::int64_t>(left, m_batchSize);
    indices = std::span<const std::int64_t>(m_order.data() + m_pos, static_cast<std::size_t>(n));
    m_pos += n;
    return true;
}

std::int64_t BatchIterator::batchesPerEpoch() const {
    return m_dropLast ? m_size / m_batchSize : (m_size + m_batchSize - 1) / m_batchSize;
}

} // namespace lathe

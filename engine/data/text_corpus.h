// Plain-text corpora for language models and sentence datasets: the Debian `fortunes` package's English text
// (one record per fortune), or any UTF-8 text file or folder (one record per paragraph). Invalid UTF-8 is never a
// crash: each bad byte becomes U+FFFD, counted, with a warning naming the file. Records split deterministically
// into train and validation by a hash of their text (the same text always lands on the same side).
#pragma once

#include "engine/data/dataset.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lathe {

struct TextRecord {
    std::string text;   // valid UTF-8
    std::int32_t file;  // index into TextCorpus::sourceFiles
};

struct TextCorpus {
    std::string name;                   // "fortunes", or the file / folder as given
    std::vector<TextRecord> records;
    std::vector<std::string> sourceFiles;
    std::int64_t replacedBytes = 0;     // invalid UTF-8 bytes replaced by U+FFFD, over all files
    std::vector<std::string> warnings;  // one per file with replacements, naming it

    std::int64_t textBytes() const;     // UTF-8 bytes of all records
};

struct TextCorpusSplit {
    TextCorpus train, validation;
};

// Where "fortunes" is read from: $LATHE_FORTUNES_DIR when set, else the Debian package's folder.
std::string fortunesDir();

// "fortunes" (every file of fortunesDir() without an extension: the .dat indexes and .u8 links are skipped;
// records are the texts between lines holding a single "%"), a text file, or a folder (its regular files,
// recursively, in name order; records are paragraphs separated by blank lines). Records are trimmed of
// surrounding blank lines; empty ones are dropped. Throws DataError naming the path (and, for "fortunes", the
// package that provides it) when nothing can be read.
TextCorpus loadTextCorpus(const std::string& nameOrPath);

// validationFraction in [0, 1): a record goes to validation when the FNV-1a hash of its text, mod 10000, is below
// fraction * 10000. Deterministic, independent of file order and of the machine.
TextCorpusSplit splitTextCorpus(const TextCorpus& corpus, double validationFraction = 0.1);

// `in` with every byte that does not belong to a well-formed UTF-8 sequence (overlong forms, surrogates and code
// points above U+10FFFF included) replaced by U+FFFD. replaced receives how many bytes were replaced and
// firstBadOffset the offset of the first (-1 when none).
std::string sanitizeUtf8(std::string_view in, std::int64_t& replaced, std::int64_t& firstBadOffset);

// ---- byte-level language-model data

// The context of the named text datasets ("fortunes", "text:PATH"): gpt-char models read 128 bytes.
constexpr std::int64_t kTextContext = 128;

// One split's records as one byte stream (records joined by a blank line), cut into windows of `context` bytes
// with stride `context`: sample i's ids are bytes [i * T, i * T + T) (its "pixels"), its labels the next byte of
// each position (labelsPerSample = T). Token ids are the bytes: vocabulary 256.
Dataset byteWindows(const TextCorpus& corpus, std::int64_t context);
// loadTextCorpus + splitTextCorpus (10 % validation) + byteWindows: train, and validation as `test`; the
// corpus's warnings travel in each Dataset::warnings.
DatasetSplits loadTextDataset(const std::string& nameOrPath, std::int64_t context);
// The entropy (nats per byte) of the byte frequencies of a token dataset's labels: the loss of the best model
// that ignores context, which a language model must beat.
double unigramEntropyNats(const Dataset& data);
// The stream's bytes as they are joined for byteWindows (tests, the unigram figure of a whole corpus).
std::string joinedText(const TextCorpus& corpus);

} // namespace lathe

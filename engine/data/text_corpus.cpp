// Text corpora: reading fortune files, text files and folders, UTF-8 repair, the deterministic split.
#include "engine/data/text_corpus.h"

#include "engine/core/errors.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace lathe {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFortunesDir = "/usr/share/games/fortunes";
constexpr const char* kReplacement = "\xEF\xBF\xBD"; // U+FFFD

// Length of the well-formed UTF-8 sequence starting at s[i], or 0 when the byte starts none.
std::size_t utf8SequenceLength(std::string_view s, std::size_t i) {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = b(i);
    if (c < 0x80) return 1;
    std::size_t len = 0;
    unsigned lo = 0x80, hi = 0xBF; // the range of the second byte (Unicode Table 3-7)
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) { len = 3; lo = 0xA0; }
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) len = 3;
    else if (c == 0xED) { len = 3; hi = 0x9F; } // no surrogates
    else if (c == 0xF0) { len = 4; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c == 0xF4) { len = 4; hi = 0x8F; } // <= U+10FFFF
    else return 0;
    if (i + len > s.size()) return 0;
    if (b(i + 1) < lo || b(i + 1) > hi) return 0;
    for (std::size_t k = 2; k < len; ++k)
        if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
    return len;
}

std::string readFile(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw DataError(p.string() + ": cannot open for reading");
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string trimBlankLines(std::string_view s) {
    std::size_t b = 0, e = s.size();
    while (b < e && (s[b] == '\n' || s[b] == '\r' || s[b] == ' ' || s[b] == '\t')) ++b;
    while (e > b && (s[e - 1] == '\n' || s[e - 1] == '\r' || s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
    return std::string(s.substr(b, e - b));
}

// Splits text into records at lines equal to `separator` (fortunes: "%"), or at blank lines when it is empty.
std::vector<std::string> splitRecords(const std::string& text, const std::string& separator) {
    std::vector<std::string> out;
    std::string current;
    std::istringstream in(text);
    std::string line;
    auto flush = [&] {
        std::string t = trimBlankLines(current);
        if (!t.empty()) out.push_back(std::move(t));
        current.clear();
    };
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        const bool boundary = separator.empty() ? trimBlankLines(line).empty() : line == separator;
        if (boundary) {
            flush();
            continue;
        }
        current += line;
        current += '\n';
    }
    flush();
    return out;
}

void addFile(TextCorpus& c, const fs::path& p, const std::string& separator) {
    std::int64_t replaced = 0, firstBad = -1;
    const std::string text = sanitizeUtf8(readFile(p), replaced, firstBad);
    const auto index = static_cast<std::int32_t>(c.sourceFiles.size());
    c.sourceFiles.push_back(p.string());
    if (replaced > 0) {
        c.replacedBytes += replaced;
        c.warnings.push_back(p.string() + ": not valid UTF-8: " + std::to_string(replaced) +
                             " byte(s) replaced by U+FFFD (the first at byte offset " + std::to_string(firstBad) + ")");
    }
    for (auto& r : splitRecords(text, separator)) c.records.push_back({std::move(r), index});
}

std::uint64_t fnv1a(std::string_view s) {
    std::uint64_t h = 1469598103934665603ull;
    for (unsigned char ch : s) {
        h ^= ch;
        h *= 1099511628211ull;
    }
    return h;
}

} // namespace

std::int64_t TextCorpus::textBytes() const {
    std::int64_t n = 0;
    for (const auto& r : records) n += static_cast<std::int64_t>(r.text.size());
    return n;
}

std::string fortunesDir() {
    const char* env = std::getenv("LATHE_FORTUNES_DIR");
    return env && *env ? std::string(env) : std::string(kFortunesDir);
}

std::string sanitizeUtf8(std::string_view in, std::int64_t& replaced, std::int64_t& firstBadOffset) {
    replaced = 0;
    firstBadOffset = -1;
    std::string out;
    out.reserve(in.size());
    for (std::size_t i = 0; i < in.size();) {
        const std::size_t len = utf8SequenceLength(in, i);
        if (len == 0) {
            if (firstBadOffset < 0) firstBadOffset = static_cast<std::int64_t>(i);
            ++replaced;
            out += kReplacement;
            ++i;
            continue;
        }
        out.append(in.substr(i, len));
        i += len;
    }
    return out;
}

TextCorpus loadTextCorpus(const std::string& nameOrPath) {
    TextCorpus c;
    c.name = nameOrPath;
    if (nameOrPath == "fortunes") {
        const fs::path dir = fortunesDir();
        std::error_code ec;
        if (!fs::is_directory(dir, ec))
            throw DataError("fortunes: " + dir.string() +
                            " not found (install the Debian package: apt-get install fortunes, or set LATHE_FORTUNES_DIR)");
        std::vector<fs::path> files;
        for (const auto& e : fs::directory_iterator(dir))
            if (e.is_regular_file() && !e.is_symlink() && e.path().extension().empty()) files.push_back(e.path());
        std::sort(files.begin(), files.end());
        for (const auto& f : files) addFile(c, f, "%");
    } else {
        const fs::path p = nameOrPath;
        std::error_code ec;
        if (fs::is_regular_file(p, ec)) {
            addFile(c, p, "");
        } else if (fs::is_directory(p, ec)) {
            std::vector<fs::path> files;
            for (const auto& e : fs::recursive_directory_iterator(p))
                if (e.is_regular_file()) files.push_back(e.path());
            std::sort(files.begin(), files.end());
            for (const auto& f : files) addFile(c, f, "");
        } else {
            throw DataError(nameOrPath + ": no such text file or folder (or \"fortunes\" for the Debian package's text)");
        }
    }
    if (c.records.empty()) throw DataError(nameOrPath + ": no text found (" + std::to_string(c.sourceFiles.size()) + " file(s) read)");
    return c;
}

TextCorpusSplit splitTextCorpus(const TextCorpus& corpus, double validationFraction) {
    if (!(validationFraction >= 0.0 && validationFraction < 1.0))
        throw ConfigError("text split: the validation fraction must be in [0, 1), got " + std::to_string(validationFraction));
    TextCorpusSplit s;
    for (TextCorpus* part : {&s.train, &s.validation}) {
        part->sourceFiles = corpus.sourceFiles;
        part->replacedBytes = corpus.replacedBytes;
        part->warnings = corpus.warnings;
    }
    s.train.name = corpus.name + "/train";
    s.validation.name = corpus.name + "/validation";
    const auto threshold = static_cast<std::uint64_t>(validationFraction * 10000.0);
    for (const auto& r : corpus.records) (fnv1a(r.text) % 10000 < threshold ? s.validation : s.train).records.push_back(r);
    return s;
}

std::string joinedText(const TextCorpus& corpus) {
    std::string s;
    s.reserve(static_cast<std::size_t>(corpus.textBytes() + 2 * static_cast<std::int64_t>(corpus.records.size())));
    for (const auto& r : corpus.records) {
        s += r.text;
        s += "\n\n";
    }
    return s;
}

Dataset byteWindows(const TextCorpus& corpus, std::int64_t context) {
    if (context < 1) throw ConfigError("text dataset: the context must be at least 1 byte, got " + std::to_string(context));
    const std::string text = joinedText(corpus);
    const std::int64_t windows = (static_cast<std::int64_t>(text.size()) - 1) / context;
    if (windows < 1)
        throw DataError(corpus.name + ": " + std::to_string(text.size()) + " bytes of text, fewer than one window of " +
                        std::to_string(context) + " + 1");
    Dataset d;
    d.name = corpus.name;
    d.sampleShape = {context};
    d.numClasses = 256;
    d.labelsPerSample = context;
    d.sourceFiles = corpus.sourceFiles;
    d.warnings = corpus.warnings;
    d.pixels.resize(static_cast<std::size_t>(windows * context));
    d.labels.resize(static_cast<std::size_t>(windows * context));
    const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
    for (std::int64_t i = 0; i < windows * context; ++i) {
        d.pixels[static_cast<std::size_t>(i)] = bytes[i];
        d.labels[static_cast<std::size_t>(i)] = bytes[i + 1];
    }
    return d;
}

DatasetSplits loadTextDataset(const std::string& nameOrPath, std::int64_t context) {
    const TextCorpusSplit split = splitTextCorpus(loadTextCorpus(nameOrPath), 0.1);
    DatasetSplits out;
    out.train = byteWindows(split.train, context);
    out.test = byteWindows(split.validation, context);
    return out;
}

double unigramEntropyNats(const Dataset& data) {
    std::vector<double> counts(256, 0.0);
    for (const std::int32_t l : data.labels)
        if (l >= 0 && l < 256) counts[static_cast<std::size_t>(l)] += 1.0;
    const double total = static_cast<double>(data.labels.size());
    double h = 0;
    for (const double c : counts)
        if (c > 0) h -= c / total * std::log(c / total);
    return h;
}

} // namespace lathe

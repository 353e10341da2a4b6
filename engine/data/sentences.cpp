// Sentences cut from documents, split by hash and tokenized (sentences.h).
#include "engine/data/sentences.h"

#include "engine/core/errors.h"

#include <cctype>
#include <unordered_set>

namespace lathe {

namespace {

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool closes(char c) { return c == '"' || c == '\'' || c == ')' || c == ']'; }

void keep(std::string s, const SentenceSplitOptions& o, std::vector<std::string>& out) {
    while (!s.empty() && s.back() == ' ') s.pop_back();
    int words = 0;
    bool letter = false, inWord = false;
    for (char c : s) {
        if (c == ' ') inWord = false;
        else if (!inWord) inWord = true, ++words;
        if (std::isalpha(static_cast<unsigned char>(c))) letter = true;
    }
    if (letter && words >= o.minWords && words <= o.maxWords) out.push_back(std::move(s));
}

} // namespace

std::vector<std::string> splitSentences(std::string_view document, const SentenceSplitOptions& o) {
    // Lines joined with single spaces; control characters (overstriking) dropped; attributions left out.
    std::string text;
    std::size_t start = 0;
    while (start <= document.size()) {
        std::size_t end = document.find('\n', start);
        if (end == std::string_view::npos) end = document.size();
        std::string_view line = document.substr(start, end - start);
        const std::size_t first = line.find_first_not_of(" \t\r");
        if (first != std::string_view::npos && line.substr(first, 2) != "--") {
            for (char c : line) {
                const auto u = static_cast<unsigned char>(c);
                if (isSpace(c)) {
                    if (!text.empty() && text.back() != ' ') text.push_back(' ');
                } else if (u >= 0x20 && u != 0x7F) {
                    text.push_back(c);
                }
            }
            if (!text.empty() && text.back() != ' ') text.push_back(' ');
        }
        start = end + 1;
    }
    std::vector<std::string> out;
    std::string cur;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (cur.empty() && c == ' ') continue;
        cur.push_back(c);
        if (c != '.' && c != '!' && c != '?') continue;
        std::size_t j = i + 1;
        while (j < text.size() && closes(text[j])) cur.push_back(text[j++]);
        if (j >= text.size() || text[j] != ' ') {
            i = j - 1;
            continue;
        }
        const char next = j + 1 < text.size() ? text[j + 1] : '\0';
        i = j - 1;
        if (next == '\0' || std::isupper(static_cast<unsigned char>(next)) || std::isdigit(static_cast<unsigned char>(next)) ||
            next == '"' || next == '\'') {
            keep(std::move(cur), o, out);
            cur.clear();
        }
    }
    if (!cur.empty()) keep(std::move(cur), o, out);
    return out;
}

SentenceSplits sentenceSplits(const std::vector<std::string>& trainDocuments,
                              const std::vector<std::string>& testDocuments, const SentenceSplitOptions& o) {
    SentenceSplits s;
    std::unordered_set<std::string> seen;
    for (const auto* side : {&testDocuments, &trainDocuments})
        for (const auto& d : *side)
            for (auto& sentence : splitSentences(d, o))
                if (seen.insert(sentence).second) (side == &testDocuments ? s.test : s.train).push_back(std::move(sentence));
    return s;
}

Dataset tokenizedSentences(const std::string& name, const std::vector<std::string>& sentences,
                           const WordPieceTokenizer& tokenizer) {
    Dataset d;
    d.name = name;
    d.labelled = false;
    d.sourceFiles = {tokenizer.path()};
    const EncodedBatch b = tokenizer.encodeBatch(sentences);
    d.sampleShape = {b.seqLen};
    d.tokens = b.ids;
    d.labels.assign(sentences.size(), 0);
    return d;
}

} // namespace lathe

// BERT's WordPiece tokenizer, read from a Hugging Face tokenizer.json: BertNormalizer (clean text, CJK
// spacing, accent stripping, lower-casing), BertPreTokenizer (whitespace and punctuation), greedy
// longest-match WordPiece with a continuation prefix, [CLS] ... [SEP], truncation and the file's padding.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lathe {

// One encoded text: ids, token types and the attention mask (1 for a real token, 0 for padding), all of
// the same length.
struct Encoding {
    std::vector<std::int32_t> ids;
    std::vector<std::int32_t> typeIds;
    std::vector<std::int32_t> mask;
};

// A batch of encodings as (N, T) row-major arrays, every row padded to T.
struct EncodedBatch {
    std::int64_t rows = 0;
    std::int64_t seqLen = 0;
    std::vector<std::int32_t> ids;     // (N, T)
    std::vector<std::int32_t> typeIds; // (N, T)
    std::vector<std::int32_t> mask;    // (N, T)
};

class WordPieceTokenizer {
public:
    // Reads tokenizer.json. Throws DataError naming the file and the JSON pointer of what is missing or
    // unsupported: a model that is not WordPiece, a normaliser or pre-tokeniser other than BERT's, a
    // special token missing from the vocabulary.
    static WordPieceTokenizer fromFile(const std::string& path);

    // The whole pipeline: normalise, pre-tokenise, WordPiece, [CLS] tokens [SEP], truncation to
    // maxLength() and the file's padding (a fixed length pads every text; none or "longest" leaves a single
    // text unpadded).
    Encoding encode(std::string_view text) const;
    // Texts padded to one length: the fixed padding length, else the longest of the batch.
    EncodedBatch encodeBatch(const std::vector<std::string>& texts) const;

    // The steps alone (tests, the tokenizer command).
    std::u32string normalize(std::string_view text) const;
    std::vector<std::u32string> preTokenize(const std::u32string& normalized) const;
    // Appends the WordPiece ids of one pre-tokenised word ([UNK] when it cannot be split).
    void wordPieces(const std::u32string& word, std::vector<std::int32_t>& ids) const;

    const std::string& path() const { return m_path; }
    std::int64_t vocabSize() const { return static_cast<std::int64_t>(m_idToToken.size()); }
    const std::string& token(std::int32_t id) const;
    std::int32_t id(const std::string& token) const; // -1 when not in the vocabulary
    int maxLength() const { return m_maxLength; }     // 0: no truncation
    int padLength() const { return m_padFixed; }      // 0: no fixed padding
    std::int32_t padId() const { return m_padId; }
    std::int32_t clsId() const { return m_clsId; }
    std::int32_t sepId() const { return m_sepId; }
    std::int32_t unkId() const { return m_unkId; }

private:
    struct AddedToken {
        std::string content;
        std::int32_t id;
    };
    // Text split around the added (special) tokens, which are matched before normalisation.
    void encodeSegments(std::string_view text, std::vector<std::int32_t>& ids) const;

    std::string m_path;
    std::unordered_map<std::string, std::int32_t> m_vocab;
    std::vector<std::string> m_idToToken;
    std::vector<AddedToken> m_added; // longest first
    std::string m_prefix = "##";
    int m_maxCharsPerWord = 100;
    bool m_cleanText = true;
    bool m_chineseChars = true;
    bool m_stripAccents = true;
    bool m_lowercase = true;
    int m_maxLength = 0;
    int m_padFixed = 0;
    bool m_padLongest = false;
    std::int32_t m_padId = 0;
    std::int32_t m_padTypeId = 0;
    std::int32_t m_clsId = -1;
    std::int32_t m_sepId = -1;
    std::int32_t m_unkId = -1;
};

} // namespace lathe

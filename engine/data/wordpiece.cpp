// WordPiece as Hugging Face tokenizers runs it for BERT (normalizers/bert.rs, pre_tokenizers/bert.rs,
// models/wordpiece), read from tokenizer.json.
#include "engine/data/wordpiece.h"

#include "engine/core/errors.h"
#include "engine/data/unicode_tables.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <fstream>

namespace lathe {

namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& path, const std::string& pointer, const std::string& what) {
    throw DataError(path + ": " + pointer + ": " + what);
}

const json& member(const json& obj, const std::string& key, const std::string& path, const std::string& pointer) {
    if (!obj.is_object() || !obj.contains(key)) fail(path, pointer + "/" + key, "missing");
    return obj.at(key);
}

bool flag(const json& obj, const char* key, bool fallback) {
    if (!obj.contains(key) || obj.at(key).is_null()) return fallback;
    return obj.at(key).get<bool>();
}

std::string typeOf(const json& obj) {
    return obj.is_object() && obj.contains("type") && obj.at("type").is_string() ? obj.at("type").get<std::string>()
                                                                                   : std::string("(none)");
}

} // namespace

WordPieceTokenizer WordPieceTokenizer::fromFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw DataError(path + ": cannot open the tokenizer file");
    json j;
    try {
        j = json::parse(in);
    } catch (const json::exception& e) {
        throw DataError(path + ": not JSON: " + e.what());
    }
    if (!j.is_object()) fail(path, "", "expected a tokenizer.json object");
    WordPieceTokenizer t;
    t.m_path = path;
    try {
        const json& model = member(j, "model", path, "");
        if (typeOf(model) != "WordPiece")
            fail(path, "/model/type", "expected \"WordPiece\" (a BERT tokenizer), got \"" + typeOf(model) + "\"");
        const json& vocab = member(model, "vocab", path, "/model");
        if (!vocab.is_object() || vocab.empty()) fail(path, "/model/vocab", "expected an object of token -> id");
        t.m_idToToken.resize(vocab.size());
        for (const auto& [tok, idv] : vocab.items()) {
            if (!idv.is_number_integer() || idv.get<std::int64_t>() < 0 ||
                idv.get<std::int64_t>() >= static_cast<std::int64_t>(vocab.size()))
                fail(path, "/model/vocab/" + tok, "expected an id in [0, " + std::to_string(vocab.size()) + ")");
            const auto id = idv.get<std::int32_t>();
            t.m_vocab.emplace(tok, id);
            t.m_idToToken[static_cast<std::size_t>(id)] = tok;
        }
        if (model.contains("continuing_subword_prefix")) t.m_prefix = model.at("continuing_subword_prefix").get<std::string>();
        if (model.contains("max_input_chars_per_word")) t.m_maxCharsPerWord = model.at("max_input_chars_per_word").get<int>();
        const std::string unk = model.contains("unk_token") ? model.at("unk_token").get<std::string>() : "[UNK]";
        t.m_unkId = t.id(unk);
        if (t.m_unkId < 0) fail(path, "/model/unk_token", "\"" + unk + "\" is not in the vocabulary");

        const json& norm = j.contains("normalizer") ? j.at("normalizer") : json();
        if (typeOf(norm) != "BertNormalizer")
            fail(path, "/normalizer/type", "expected \"BertNormalizer\", got \"" + typeOf(norm) + "\"");
        t.m_cleanText = flag(norm, "clean_text", true);
        t.m_chineseChars = flag(norm, "handle_chinese_chars", true);
        t.m_lowercase = flag(norm, "lowercase", true);
        t.m_stripAccents = flag(norm, "strip_accents", t.m_lowercase); // null follows lowercase, as in BERT
        const json& pre = j.contains("pre_tokenizer") ? j.at("pre_tokenizer") : json();
        if (typeOf(pre) != "BertPreTokenizer")
            fail(path, "/pre_tokenizer/type", "expected \"BertPreTokenizer\", got \"" + typeOf(pre) + "\"");

        // [CLS] and [SEP] from the post-processor (TemplateProcessing or BertProcessing), else by name.
        std::string cls = "[CLS]", sep = "[SEP]";
        const json& post = j.contains("post_processor") ? j.at("post_processor") : json();
        if (typeOf(post) == "BertProcessing") {
            cls = post.at("cls").at(0).get<std::string>();
            sep = post.at("sep").at(0).get<std::string>();
        } else if (typeOf(post) == "TemplateProcessing") {
            const json& single = member(post, "single", path, "/post_processor");
            if (!single.is_array() || single.size() != 3 || !single[0].contains("SpecialToken") ||
                !single[1].contains("Sequence") || !single[2].contains("SpecialToken"))
                fail(path, "/post_processor/single", "expected [special, sequence, special] ([CLS] $A [SEP])");
            cls = single[0].at("SpecialToken").at("id").get<std::string>();
            sep = single[2].at("SpecialToken").at("id").get<std::string>();
        } else if (!post.is_null()) {
            fail(path, "/post_processor/type", "expected \"TemplateProcessing\" or \"BertProcessing\", got \"" +
                                                   typeOf(post) + "\"");
        }
        t.m_clsId = t.id(cls);
        t.m_sepId = t.id(sep);
        if (t.m_clsId < 0) fail(path, "/post_processor", "\"" + cls + "\" is not in the vocabulary");
        if (t.m_sepId < 0) fail(path, "/post_processor", "\"" + sep + "\" is not in the vocabulary");

        if (j.contains("truncation") && !j.at("truncation").is_null()) {
            const json& tr = j.at("truncation");
            t.m_maxLength = member(tr, "max_length", path, "/truncation").get<int>();
            if (t.m_maxLength < 3) fail(path, "/truncation/max_length", "expected at least 3 (room for [CLS] x [SEP])");
            if (tr.contains("direction") && tr.at("direction") != "Right")
                fail(path, "/truncation/direction", "only \"Right\" is supported");
        }
        if (j.contains("padding") && !j.at("padding").is_null()) {
            const json& pad = j.at("padding");
            const json& strategy = member(pad, "strategy", path, "/padding");
            if (strategy.is_object() && strategy.contains("Fixed")) {
                t.m_padFixed = strategy.at("Fixed").get<int>();
                if (t.m_padFixed < 1) fail(path, "/padding/strategy/Fixed", "expected a positive length");
            } else if (strategy == "BatchLongest") {
                t.m_padLongest = true;
            } else {
                fail(path, "/padding/strategy", "expected {\"Fixed\": n} or \"BatchLongest\"");
            }
            if (pad.contains("direction") && pad.at("direction") != "Right")
                fail(path, "/padding/direction", "only \"Right\" is supported");
            t.m_padId = pad.contains("pad_id") ? pad.at("pad_id").get<std::int32_t>() : 0;
            t.m_padTypeId = pad.contains("pad_type_id") ? pad.at("pad_type_id").get<std::int32_t>() : 0;
        } else {
            t.m_padId = std::max(t.id("[PAD]"), 0);
        }
        if (j.contains("added_tokens")) {
            const json& added = j.at("added_tokens");
            for (std::size_t i = 0; i < added.size(); ++i) {
                const json& a = added[i];
                const std::string p = "/added_tokens/" + std::to_string(i);
                if (flag(a, "normalized", false) || flag(a, "single_word", false) || flag(a, "lstrip", false) ||
                    flag(a, "rstrip", false))
                    fail(path, p, "only added tokens matched verbatim are supported (normalized, single_word, "
                                  "lstrip and rstrip false)");
                t.m_added.push_back({member(a, "content", path, p).get<std::string>(),
                                     member(a, "id", path, p).get<std::int32_t>()});
            }
            std::stable_sort(t.m_added.begin(), t.m_added.end(),
                             [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
        }
    } catch (const json::exception& e) {
        throw DataError(path + ": unexpected value: " + e.what());
    }
    return t;
}

const std::string& WordPieceTokenizer::token(std::int32_t id) const {
    if (id < 0 || id >= static_cast<std::int32_t>(m_idToToken.size()))
        throw ConfigError("token id " + std::to_string(id) + " is outside the vocabulary of " + m_path);
    return m_idToToken[static_cast<std::size_t>(id)];
}

std::int32_t WordPieceTokenizer::id(const std::string& token) const {
    auto it = m_vocab.find(token);
    return it == m_vocab.end() ? -1 : it->second;
}

std::u32string WordPieceTokenizer::normalize(std::string_view text) const {
    const std::u32string in = unicode::decodeUtf8(text);
    std::u32string a;
    a.reserve(in.size());
    for (char32_t c : in) {
        if (m_cleanText) {
            if (c == 0 || c == 0xFFFD || (c != '\t' && c != '\n' && c != '\r' && unicode::isOther(c))) continue;
            if (unicode::isWhitespace(c)) c = ' ';
        }
        if (m_chineseChars && unicode::isCjkIdeograph(c)) {
            a.push_back(' ');
            a.push_back(c);
            a.push_back(' ');
        } else {
            a.push_back(c);
        }
    }
    if (m_stripAccents) {
        std::u32string d;
        d.reserve(a.size());
        for (char32_t c : a) unicode::appendDecomposition(c, d);
        a.clear();
        for (char32_t c : d)
            if (!unicode::isMarkNonspacing(c)) a.push_back(c);
    }
    if (m_lowercase) {
        std::u32string l;
        l.reserve(a.size());
        for (char32_t c : a) unicode::appendLower(c, l);
        a.swap(l);
    }
    return a;
}

std::vector<std::u32string> WordPieceTokenizer::preTokenize(const std::u32string& s) const {
    std::vector<std::u32string> words;
    std::u32string cur;
    auto flush = [&] {
        if (!cur.empty()) words.push_back(std::move(cur));
        cur.clear();
    };
    for (char32_t c : s) {
        if (unicode::isWhitespace(c)) {
            flush();
        } else if ((c < 0x80 && std::ispunct(static_cast<int>(c))) || unicode::isPunctuation(c)) {
            flush();
            words.emplace_back(1, c);
        } else {
            cur.push_back(c);
        }
    }
    flush();
    return words;
}

void WordPieceTokenizer::wordPieces(const std::u32string& word, std::vector<std::int32_t>& ids) const {
    if (static_cast<int>(word.size()) > m_maxCharsPerWord) {
        ids.push_back(m_unkId);
        return;
    }
    const std::size_t mark = ids.size();
    std::size_t start = 0;
    std::string piece;
    while (start < word.size()) {
        std::int32_t found = -1;
        std::size_t end = word.size();
        for (; end > start; --end) {
            piece = start > 0 ? m_prefix : std::string();
            for (std::size_t k = start; k < end; ++k) unicode::appendUtf8(word[k], piece);
            found = id(piece);
            if (found >= 0) break;
        }
        if (found < 0) {
            ids.resize(mark);
            ids.push_back(m_unkId);
            return;
        }
        ids.push_back(found);
        start = end;
    }
}

void WordPieceTokenizer::encodeSegments(std::string_view text, std::vector<std::int32_t>& ids) const {
    auto plain = [&](std::string_view part) {
        if (part.empty()) return;
        for (const auto& w : preTokenize(normalize(part))) wordPieces(w, ids);
    };
    std::size_t from = 0;
    for (std::size_t i = 0; i < text.size();) {
        const AddedToken* hit = nullptr;
        for (const auto& a : m_added)
            if (!a.content.empty() && text.compare(i, a.content.size(), a.content) == 0) {
                hit = &a;
                break;
            }
        if (!hit) {
            ++i;
            continue;
        }
        plain(text.substr(from, i - from));
        ids.push_back(hit->id);
        i += hit->content.size();
        from = i;
    }
    plain(text.substr(from));
}

Encoding WordPieceTokenizer::encode(std::string_view text) const {
    std::vector<std::int32_t> body;
    encodeSegments(text, body);
    if (m_maxLength > 0 && static_cast<int>(body.size()) > m_maxLength - 2)
        body.resize(static_cast<std::size_t>(m_maxLength - 2));
    Encoding e;
    e.ids.reserve(body.size() + 2);
    e.ids.push_back(m_clsId);
    e.ids.insert(e.ids.end(), body.begin(), body.end());
    e.ids.push_back(m_sepId);
    e.typeIds.assign(e.ids.size(), 0);
    e.mask.assign(e.ids.size(), 1);
    if (m_padFixed > 0 && static_cast<int>(e.ids.size()) < m_padFixed) {
        const auto n = static_cast<std::size_t>(m_padFixed);
        e.ids.resize(n, m_padId);
        e.typeIds.resize(n, m_padTypeId);
        e.mask.resize(n, 0);
    }
    return e;
}

EncodedBatch WordPieceTokenizer::encodeBatch(const std::vector<std::string>& texts) const {
    std::vector<Encoding> enc;
    enc.reserve(texts.size());
    std::size_t len = 0;
    for (const auto& t : texts) {
        enc.push_back(encode(t));
        len = std::max(len, enc.back().ids.size());
    }
    EncodedBatch b;
    b.rows = static_cast<std::int64_t>(texts.size());
    b.seqLen = static_cast<std::int64_t>(len);
    b.ids.assign(texts.size() * len, m_padId);
    b.typeIds.assign(texts.size() * len, m_padTypeId);
    b.mask.assign(texts.size() * len, 0);
    for (std::size_t r = 0; r < enc.size(); ++r) {
        std::copy(enc[r].ids.begin(), enc[r].ids.end(), b.ids.begin() + static_cast<std::ptrdiff_t>(r * len));
        std::copy(enc[r].typeIds.begin(), enc[r].typeIds.end(), b.typeIds.begin() + static_cast<std::ptrdiff_t>(r * len));
        std::copy(enc[r].mask.begin(), enc[r].mask.end(), b.mask.begin() + static_cast<std::ptrdiff_t>(r * len));
    }
    return b;
}

} // namespace lathe

// Queries over the generated Unicode tables (unicode_tables.cpp) and a UTF-8 codec that replaces bad bytes.
#include "engine/data/unicode_tables.h"

#include <algorithm>

namespace lathe::unicode {

namespace {

bool inRanges(std::span<const CodeRange> ranges, char32_t c) {
    auto it = std::upper_bound(ranges.begin(), ranges.end(), c,
                               [](char32_t v, const CodeRange& r) { return v < r.first; });
    return it != ranges.begin() && c <= std::prev(it)->last;
}

bool appendMapped(std::span<const CodeMap> map, const char32_t* pool, char32_t c, std::u32string& out) {
    auto it = std::lower_bound(map.begin(), map.end(), c, [](const CodeMap& m, char32_t v) { return m.cp < v; });
    if (it == map.end() || it->cp != c) return false;
    out.append(pool + it->offset, it->length);
    return true;
}

// Hangul syllable decomposition (The Unicode Standard, 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr int kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

} // namespace

bool isOther(char32_t c) { return inRanges(tables().other, c); }
bool isPunctuation(char32_t c) { return inRanges(tables().punctuation, c); }
bool isMarkNonspacing(char32_t c) { return inRanges(tables().markNonspacing, c); }

bool isWhitespace(char32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool isCjkIdeograph(char32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

void appendDecomposition(char32_t c, std::u32string& out) {
    if (c >= kSBase && c < kSBase + kSCount) {
        const int s = static_cast<int>(c - kSBase);
        out.push_back(kLBase + s / kNCount);
        out.push_back(kVBase + (s % kNCount) / kTCount);
        if (s % kTCount != 0) out.push_back(kTBase + s % kTCount);
        return;
    }
    const Tables t = tables();
    if (!appendMapped(t.decompose, t.decomposePool, c, out)) out.push_back(c);
}

void appendLower(char32_t c, std::u32string& out) {
    if (c < 0x80) {
        out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
        return;
    }
    const Tables t = tables();
    if (!appendMapped(t.lower, t.lowerPool, c, out)) out.push_back(c);
}

std::u32string decodeUtf8(std::string_view s, std::size_t* invalid) {
    std::u32string out;
    out.reserve(s.size());
    std::size_t bad = 0;
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const std::size_t n = s.size();
    for (std::size_t i = 0; i < n;) {
        const unsigned char b = p[i];
        int len = 0;
        char32_t c = 0, min = 0;
        if (b < 0x80) { out.push_back(b); ++i; continue; }
        if ((b & 0xE0) == 0xC0) { len = 2; c = b & 0x1F; min = 0x80; }
        else if ((b & 0xF0) == 0xE0) { len = 3; c = b & 0x0F; min = 0x800; }
        else if ((b & 0xF8) == 0xF0) { len = 4; c = b & 0x07; min = 0x10000; }
        bool ok = len > 0 && i + static_cast<std::size_t>(len) <= n;
        for (int k = 1; ok && k < len; ++k) {
            if ((p[i + k] & 0xC0) != 0x80) ok = false;
            else c = (c << 6) | (p[i + k] & 0x3F);
        }
        if (ok && (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))) ok = false;
        if (!ok) { out.push_back(0xFFFD); ++bad; ++i; continue; }
        out.push_back(c);
        i += static_cast<std::size_t>(len);
    }
    if (invalid) *invalid = bad;
    return out;
}

void appendUtf8(char32_t c, std::string& out) {
    if (c < 0x80) {
        out.push_back(static_cast<char>(c));
    } else if (c < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (c >> 6)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (c >> 12)));
        out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (c >> 18)));
        out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
}

std::string encodeUtf8(std::u32string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char32_t c : s) appendUtf8(c, out);
    return out;
}

} // namespace lathe::unicode

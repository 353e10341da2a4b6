// The Unicode character tables of the text tokenizers (generated into unicode_tables.cpp by
// tests/tools/gen_unicode_tables.py) and the queries over them.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace lathe::unicode {

struct CodeRange {
    char32_t first;
    char32_t last; // inclusive
};

// A code point and the code points it maps to: pool[offset, offset + length).
struct CodeMap {
    char32_t cp;
    std::uint32_t offset;
    std::uint32_t length;
};

struct Tables {
    std::span<const CodeRange> other;           // general category C* (Cc, Cf, Cs, Co, Cn)
    std::span<const CodeRange> punctuation;     // P*
    std::span<const CodeRange> markNonspacing;  // Mn
    std::span<const CodeMap> decompose;         // canonical decomposition (NFD), Hangul syllables excluded
    const char32_t* decomposePool;
    std::span<const CodeMap> lower;             // full lower-case mapping of one character
    const char32_t* lowerPool;
};

Tables tables();

bool isOther(char32_t c);
bool isPunctuation(char32_t c);
bool isMarkNonspacing(char32_t c);
// The White_Space property (tab, newline, carriage return, space, NBSP, U+2000..U+200A, ...).
bool isWhitespace(char32_t c);
// CJK ideographs that BERT surrounds with spaces (the CJK Unified Ideographs blocks and extensions A-E,
// the compatibility ideographs).
bool isCjkIdeograph(char32_t c);
// Appends c's canonical decomposition (itself when it has none) to out.
void appendDecomposition(char32_t c, std::u32string& out);
// Appends c's lower-case mapping (itself when it has none) to out.
void appendLower(char32_t c, std::u32string& out);

// UTF-8 <-> code points. An invalid byte sequence decodes to U+FFFD, one per bad byte, and is counted in
// *invalid when given.
std::u32string decodeUtf8(std::string_view s, std::size_t* invalid = nullptr);
void appendUtf8(char32_t c, std::string& out);
std::string encodeUtf8(std::u32string_view s);

} // namespace lathe::unicode

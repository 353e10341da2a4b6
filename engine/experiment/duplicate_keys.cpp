// Duplicate keys in an experiment file. nlohmann::json keeps the last of two equal keys without a word;
// a SAX pass over the text finds them with the JSON pointer of the second and the line of the first.
#include "engine/experiment/spec.h"

#include <cstddef>
#include <iterator>
#include <map>

namespace lathe {
namespace {

// A char iterator that records how far the parser has read, so a SAX event knows where it is.
class CountingIterator {
public:
    using iterator_category = std::input_iterator_tag;
    using value_type = char;
    using difference_type = std::ptrdiff_t;
    using pointer = const char*;
    using reference = const char&;

    CountingIterator(const char* p, const char* base, std::size_t* consumed) : m_p(p), m_base(base), m_consumed(consumed) {}
    reference operator*() const { return *m_p; }
    CountingIterator& operator++() {
        ++m_p;
        *m_consumed = static_cast<std::size_t>(m_p - m_base);
        return *this;
    }
    CountingIterator operator++(int) {
        CountingIterator old = *this;
        ++*this;
        return old;
    }
    bool operator==(const CountingIterator& o) const { return m_p == o.m_p; }
    bool operator!=(const CountingIterator& o) const { return m_p != o.m_p; }

private:
    const char* m_p;
    const char* m_base;
    std::size_t* m_consumed;
};

class DuplicateKeyFinder : public nlohmann::json_sax<nlohmann::json> {
public:
    DuplicateKeyFinder(std::string_view text, const std::size_t* consumed) : m_text(text), m_consumed(consumed) {}

    std::vector<ValidationIssue> issues;

    bool null() override { return scalar(); }
    bool boolean(bool) override { return scalar(); }
    bool number_integer(number_integer_t) override { return scalar(); }
    bool number_unsigned(number_unsigned_t) override { return scalar(); }
    bool number_float(number_float_t, const string_t&) override { return scalar(); }
    bool string(string_t&) override { return scalar(); }
    bool binary(binary_t&) override { return scalar(); }
    bool start_object(std::size_t) override {
        m_frames.emplace_back();
        return true;
    }
    bool key(string_t& k) override {
        Frame& f = m_frames.back();
        f.key = k;
        // The parser has just read the key's closing quote.
        const int line = lineAt(*m_consumed);
        auto [it, inserted] = f.keyLines.emplace(k, line);
        if (!inserted)
            issues.push_back({pointer(), "duplicate key \"" + k + "\" (first at line " + std::to_string(it->second) + ")"});
        return true;
    }
    bool end_object() override { return endContainer(); }
    bool start_array(std::size_t) override {
        m_frames.emplace_back().isArray = true;
        return true;
    }
    bool end_array() override { return endContainer(); }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
        return false; // syntax errors are reported by the real parse, with line and column
    }

private:
    struct Frame {
        bool isArray = false;
        std::size_t index = 0;
        std::string key;
        std::map<std::string, int> keyLines;
    };

    bool scalar() {
        if (!m_frames.empty() && m_frames.back().isArray) ++m_frames.back().index;
        return true;
    }
    bool endContainer() {
        m_frames.pop_back();
        return scalar(); // the finished container is one element of its parent
    }
    std::string pointer() const {
        nlohmann::json::json_pointer p;
        for (const Frame& f : m_frames) {
            if (f.isArray) p /= f.index;
            else p /= f.key;
        }
        return p.to_string();
    }
    int lineAt(std::size_t offset) {
        offset = std::min(offset, m_text.size());
        // Lines are counted once, from where the previous question stopped (offsets only grow).
        for (; m_lineScanned < offset; ++m_lineScanned)
            if (m_text[m_lineScanned] == '\n') ++m_line;
        return m_line;
    }

    std::string_view m_text;
    const std::size_t* m_consumed;
    std::vector<Frame> m_frames;
    std::size_t m_lineScanned = 0;
    int m_line = 1;
};

} // namespace

std::vector<ValidationIssue> findDuplicateKeys(std::string_view text) {
    std::size_t consumed = 0;
    DuplicateKeyFinder finder(text, &consumed);
    const char* base = text.data();
    nlohmann::json::sax_parse(CountingIterator(base, base, &consumed), CountingIterator(base + text.size(), base, &consumed),
                              &finder);
    return finder.issues;
}

} // namespace lathe

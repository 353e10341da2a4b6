// Shapes are small vectors of extents, outermost first (row-major, like PyTorch).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lathe {

using Shape = std::vector<std::int64_t>;

inline std::int64_t numel(const Shape& s) {
    std::int64_t n = 1;
    for (auto d : s) n *= d;
    return n;
}

inline Shape contiguousStrides(const Shape& s) {
    Shape st(s.size(), 1);
    for (int i = static_cast<int>(s.size()) - 2; i >= 0; --i) st[i] = st[i + 1] * s[i + 1];
    return st;
}

inline std::string shapeToString(const Shape& s) {
    std::string out = "[";
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (i) out += ", ";
        out += std::to_string(s[i]);
    }
    return out + "]";
}

} // namespace lathe

// Search space bookkeeping: conditional activity, normalization and a stable key per configuration.
#include "engine/experiment/search/space.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace lathe::search {

int Space::add(Dimension d) {
    if (d.parent >= 0) {
        if (static_cast<std::size_t>(d.parent) >= m_dims.size() || m_dims[static_cast<std::size_t>(d.parent)].kind != DimKind::Categorical)
            throw std::invalid_argument(d.name + ": the parent must be an earlier categorical dimension");
        if (d.parentValues.empty()) throw std::invalid_argument(d.name + ": no parent value activates it");
    }
    if (d.kind == DimKind::Categorical) {
        if (d.choices.empty()) throw std::invalid_argument(d.name + ": a categorical dimension needs choices");
    } else {
        if (!(d.high >= d.low)) throw std::invalid_argument(d.name + ": empty range");
        if (d.log && !(d.low > 0)) throw std::invalid_argument(d.name + ": a log range must be positive");
    }
    m_dims.push_back(std::move(d));
    return static_cast<int>(m_dims.size()) - 1;
}

bool Space::active(std::size_t i, const Point& p) const {
    const Dimension& d = m_dims[i];
    if (d.parent < 0) return true;
    const auto parent = static_cast<std::size_t>(d.parent);
    if (!active(parent, p) || parent >= p.size() || !isActive(p[parent])) return false;
    const int v = static_cast<int>(std::lround(p[parent]));
    return std::find(d.parentValues.begin(), d.parentValues.end(), v) != d.parentValues.end();
}

Point Space::normalize(Point p) const {
    p.resize(m_dims.size(), inactive());
    for (std::size_t i = 0; i < m_dims.size(); ++i) {
        const Dimension& d = m_dims[i];
        if (!active(i, p)) {
            p[i] = inactive();
            continue;
        }
        double v = isActive(p[i]) ? p[i] : (d.kind == DimKind::Categorical ? 0.0 : d.low);
        if (d.kind == DimKind::Categorical) v = std::clamp(std::round(v), 0.0, static_cast<double>(d.choices.size() - 1));
        else if (d.kind == DimKind::Integer) v = std::clamp(std::round(v), std::ceil(d.low), std::floor(d.high));
        else v = std::clamp(v, d.low, d.high);
        p[i] = v;
    }
    return p;
}

std::string Space::key(const Point& p) const {
    std::string out;
    char buf[64];
    for (std::size_t i = 0; i < m_dims.size() && i < p.size(); ++i) {
        if (!out.empty()) out += '|';
        if (!isActive(p[i])) out += '-';
        else if (m_dims[i].kind == DimKind::Categorical) out += m_dims[i].choices[static_cast<std::size_t>(p[i])];
        else {
            std::snprintf(buf, sizeof(buf), "%.9g", p[i]);
            out += buf;
        }
    }
    return out;
}

} // namespace lathe::search

// The search space of a hyperparameter search, free of what the dimensions mean: categorical, real and
// integer dimensions (real ones optionally on a log scale), each optionally active only when a categorical
// parent takes one of some values (a strategy's fields exist only when that strategy is in the chain).
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <vector>

namespace lathe::search {

enum class DimKind { Categorical, Real, Integer };

struct Dimension {
    std::string name;
    DimKind kind = DimKind::Real;
    double low = 0, high = 1;   // Real/Integer, inclusive
    bool log = false;           // Real/Integer: sampled uniformly in log(value); low > 0
    std::vector<std::string> choices; // Categorical: labels, the value is the index
    int parent = -1;                  // index of a categorical dimension (earlier in the list), -1: always
    std::vector<int> parentValues;    // the parent's indices that activate this dimension
};

// A point: one value per dimension (a categorical's index as a double), NaN where inactive.
using Point = std::vector<double>;

inline double inactive() { return std::numeric_limits<double>::quiet_NaN(); }
inline bool isActive(double v) { return !std::isnan(v); }

class Space {
public:
    // Throws std::invalid_argument for a parent that is not an earlier categorical, an empty range, a log
    // range that is not positive, a categorical without choices.
    int add(Dimension d);
    const std::vector<Dimension>& dims() const { return m_dims; }
    std::size_t size() const { return m_dims.size(); }
    // Whether dimension i is active given the values of its parents in p.
    bool active(std::size_t i, const Point& p) const;
    // NaN for inactive dimensions, values clamped into their ranges, integers and categoricals rounded.
    Point normalize(Point p) const;
    // "0:prune.magnitude|1:0.5|..." stable text for a normalized point (equality of configurations).
    std::string key(const Point& p) const;

private:
    std::vector<Dimension> m_dims;
};

} // namespace lathe::search

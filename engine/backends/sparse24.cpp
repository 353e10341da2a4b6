// Packing a dense matrix into the 2:4 format and back (the pruned Linear's 2:4 copy, the op's tests).
#include "engine/backends/sparse24.h"

#include "engine/core/errors.h"

#include <algorithm>
#include <string>

namespace lathe {
namespace {

constexpr int kGroup = Sparse24Layout::kGroup;
constexpr int kKept = Sparse24Layout::kKept;

void checkExtents(std::int64_t rows, std::int64_t cols) {
    if (rows < 0 || cols < 0)
        throw BackendError("sparse 2:4: a (" + std::to_string(rows) + ", " + std::to_string(cols) +
                           ") matrix has a negative extent");
}

// Positions (within the group) of the nonzeros of group g of `row`, up to 4 of them; returns their count.
int nonzerosOfGroup(const float* row, std::int64_t cols, std::int64_t g, int* pos) {
    const int width = static_cast<int>(std::min<std::int64_t>(kGroup, cols - g * kGroup));
    int count = 0;
    for (int i = 0; i < width; ++i)
        if (row[g * kGroup + i] != 0.0f) pos[count++] = i;
    return count;
}

} // namespace

bool isSparse24(const float* dense, std::int64_t rows, std::int64_t cols) {
    checkExtents(rows, cols);
    const std::int64_t groups = sparse24Groups(cols);
    int pos[kGroup];
    for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t g = 0; g < groups; ++g)
            if (nonzerosOfGroup(dense + r * cols, cols, g, pos) > kKept) return false;
    return true;
}

HostSparse24 sparse24FromDense(const float* dense, std::int64_t rows, std::int64_t cols) {
    checkExtents(rows, cols);
    const std::int64_t groups = sparse24Groups(cols), metaPerRow = sparse24MetaBytesPerRow(cols);
    HostSparse24 s;
    s.rows = rows;
    s.cols = cols;
    s.values.assign(static_cast<std::size_t>(rows * groups * kKept), 0.0f);
    s.meta.assign(static_cast<std::size_t>(rows * metaPerRow), 0);
    int pos[kGroup];
    for (std::int64_t r = 0; r < rows; ++r) {
        const float* row = dense + r * cols;
        float* v = s.values.data() + r * groups * kKept; // (2 * groups)
        std::uint8_t* m = s.meta.data() + r * metaPerRow; // (metaPerRow)
        for (std::int64_t g = 0; g < groups; ++g) {
            const int count = nonzerosOfGroup(row, cols, g, pos);
            if (count > kKept)
                throw BackendError("sparse 2:4: row " + std::to_string(r) + ", group " + std::to_string(g) +
                                   " (columns " + std::to_string(g * kGroup) + ".." +
                                   std::to_string(std::min<std::int64_t>(cols, (g + 1) * kGroup) - 1) + ") has " +
                                   std::to_string(count) + " nonzeros; 2:4 allows 2");
            // Padding up to 2 entries: 0.0f values at the lowest free positions inside the group's real
            // width (a width-1 group repeats position 0); then the two in ascending position order.
            const int width = static_cast<int>(std::min<std::int64_t>(kGroup, cols - g * kGroup));
            int p[kKept];
            float val[kKept];
            int used = 0;
            for (int k = 0; k < count; ++k, ++used) {
                p[used] = pos[k];
                val[used] = row[g * kGroup + pos[k]];
            }
            for (int free = 0; used < kKept; ++free) {
                if (free < width && used == 1 && p[0] == free) continue;
                p[used] = free < width ? free : 0;
                val[used++] = 0.0f;
            }
            if (p[1] < p[0]) {
                std::swap(p[0], p[1]);
                std::swap(val[0], val[1]);
            }
            v[kKept * g] = val[0];
            v[kKept * g + 1] = val[1];
            const auto nibble = static_cast<std::uint8_t>(p[0] | (p[1] << Sparse24Layout::kPositionBits));
            m[g / 2] |= static_cast<std::uint8_t>(nibble << (4 * (g % 2)));
        }
    }
    return s;
}

std::vector<float> sparse24ToDense(const HostSparse24& s) {
    checkExtents(s.rows, s.cols);
    const std::int64_t groups = sparse24Groups(s.cols), metaPerRow = sparse24MetaBytesPerRow(s.cols);
    if (static_cast<std::int64_t>(s.values.size()) != s.rows * groups * kKept ||
        static_cast<std::int64_t>(s.meta.size()) != s.rows * metaPerRow)
        throw BackendError("sparse 2:4: " + std::to_string(s.values.size()) + " values and " +
                           std::to_string(s.meta.size()) + " metadata bytes do not describe a (" +
                           std::to_string(s.rows) + ", " + std::to_string(s.cols) + ") matrix");
    std::vector<float> dense(static_cast<std::size_t>(s.rows * s.cols), 0.0f);
    for (std::int64_t r = 0; r < s.rows; ++r)
        for (std::int64_t g = 0; g < groups; ++g) {
            const int nibble = (s.meta[static_cast<std::size_t>(r * metaPerRow + g / 2)] >> (4 * (g % 2))) & 0xf;
            for (int k = 0; k < kKept; ++k) {
                const std::int64_t col = g * kGroup + ((nibble >> (Sparse24Layout::kPositionBits * k)) & 3);
                if (col >= s.cols)
                    throw BackendError("sparse 2:4: row " + std::to_string(r) + ", group " + std::to_string(g) +
                                       " names column " + std::to_string(col) + " of " + std::to_string(s.cols));
                const float v = s.values[static_cast<std::size_t>((r * groups + g) * kKept + k)];
                if (v != 0.0f) dense[static_cast<std::size_t>(r * s.cols + col)] = v;
            }
        }
    return dense;
}

} // namespace lathe

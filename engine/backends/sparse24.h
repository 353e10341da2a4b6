// 2:4 compressed weights on the host: what Backend::spmm24 reads. Every group of 4 consecutive columns of
// a row holds at most 2 nonzeros; the format keeps exactly 2 values per group and their positions.
//
// Layout of a (rows, cols) weight, groups = ceil(cols / 4):
//   values (rows, 2 * groups) f32: group g of row r keeps values[r][2g], values[r][2g + 1], in ascending
//     column order. A group with fewer than 2 nonzeros is padded with 0.0f values.
//   meta (rows, ceil(groups / 2)) u8: one nibble per group, the even group in the low nibble; a nibble
//     holds the first value's position in bits 0-1 and the second's in bits 2-3 (0..3 within the group).
//     Each row starts on a byte of its own; the high nibble of a row's last byte is 0 when groups is odd.
// Positions always name a column inside the matrix: a padded value takes an unused position of its group,
// and in a last, partial group (cols not a multiple of 4, 1..3 real columns) both positions are < the
// group's real width (a width-1 group stores position 0 twice, the second value 0.0f). A kernel can
// therefore read x at 4g + position without bounds checks, and a 0.0f value adds nothing.
#pragma once

#include <cstdint>
#include <vector>

namespace lathe {

// The shape of the format, locked below: 2 kept of 4, two 2-bit positions per group, two groups per byte.
struct Sparse24Layout {
    static constexpr int kGroup = 4;          // columns per group
    static constexpr int kKept = 2;           // values stored per group
    static constexpr int kPositionBits = 2;   // bits naming a column of the group
    static constexpr int kGroupsPerByte = 2;  // metadata groups per byte
};
static_assert((1 << Sparse24Layout::kPositionBits) == Sparse24Layout::kGroup, "a position names one of 4 columns");
static_assert(Sparse24Layout::kKept * Sparse24Layout::kPositionBits * Sparse24Layout::kGroupsPerByte == 8,
              "two groups' positions fill one metadata byte exactly");

// Groups per row, metadata bytes per row, and bytes of the compressed form (values + metadata) of a
// (rows, cols) f32 weight.
constexpr std::int64_t sparse24Groups(std::int64_t cols) {
    return (cols + Sparse24Layout::kGroup - 1) / Sparse24Layout::kGroup;
}
constexpr std::int64_t sparse24MetaBytesPerRow(std::int64_t cols) {
    return (sparse24Groups(cols) + Sparse24Layout::kGroupsPerByte - 1) / Sparse24Layout::kGroupsPerByte;
}
constexpr std::int64_t sparse24Bytes(std::int64_t rows, std::int64_t cols) {
    return rows * (Sparse24Layout::kKept * sparse24Groups(cols) * std::int64_t(sizeof(float)) +
                   sparse24MetaBytesPerRow(cols));
}
// The MLP's first layer: 784 columns are 196 groups, 392 values and 98 metadata bytes per row.
static_assert(sparse24Bytes(256, 784) == 256 * (392 * 4 + 98));

struct HostSparse24 {
    std::int64_t rows = 0, cols = 0;
    std::vector<float> values;      // (rows, kKept * sparse24Groups(cols))
    std::vector<std::uint8_t> meta; // (rows, sparse24MetaBytesPerRow(cols))
    std::int64_t bytes() const { return sparse24Bytes(rows, cols); }
};

// Whether dense (rows, cols), row-major, has at most 2 nonzeros in every group of 4 columns of a row.
bool isSparse24(const float* dense, std::int64_t rows, std::int64_t cols);

// The 2:4 form of dense (rows, cols), row-major. Exact zeros (either sign) are left out. A group with 3 or
// 4 nonzeros throws BackendError naming its row and group ("row 3, group 5 (columns 20..23) has 3 nonzeros").
HostSparse24 sparse24FromDense(const float* dense, std::int64_t rows, std::int64_t cols);

// The dense (rows, cols) matrix the format holds: the inverse of sparse24FromDense on a 2:4 matrix, bit for
// bit except that a -0.0f of the original comes back as 0.0f (zeros are not stored).
std::vector<float> sparse24ToDense(const HostSparse24& s);

} // namespace lathe

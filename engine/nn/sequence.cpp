// SequenceBatch: per-sequence lengths from explicit lengths or from a right-padded attention mask.
#include "engine/nn/sequence.h"

#include "engine/core/errors.h"

namespace lathe {

std::shared_ptr<SequenceBatch> SequenceBatch::fromLengths(Backend& be, std::int64_t t, std::vector<std::int32_t> lengths) {
    auto s = std::make_shared<SequenceBatch>();
    s->batch = static_cast<std::int64_t>(lengths.size());
    s->length = t;
    for (std::size_t i = 0; i < lengths.size(); ++i)
        if (lengths[i] < 0 || lengths[i] > t)
            throw ConfigError("sequence " + std::to_string(i) + ": length " + std::to_string(lengths[i]) +
                              " is outside [0, " + std::to_string(t) + "]");
    s->lengths = std::move(lengths);
    if (!s->lengths.empty()) s->lengthsOnDevice = be.uploadI32(s->lengths, {s->batch});
    return s;
}

std::shared_ptr<SequenceBatch> SequenceBatch::fromMask(Backend& be, std::int64_t n, std::int64_t t,
                                                       const std::vector<std::int32_t>& mask, const std::string& source) {
    if (static_cast<std::int64_t>(mask.size()) != n * t)
        throw ConfigError(source + ": " + std::to_string(mask.size()) + " entries, expected N * T = " +
                          std::to_string(n) + " * " + std::to_string(t));
    std::vector<std::int32_t> lengths(static_cast<std::size_t>(n));
    for (std::int64_t r = 0; r < n; ++r) {
        std::int64_t len = 0;
        while (len < t && mask[static_cast<std::size_t>(r * t + len)] != 0) ++len;
        for (std::int64_t j = len; j < t; ++j)
            if (mask[static_cast<std::size_t>(r * t + j)] != 0)
                throw ConfigError(source + ": row " + std::to_string(r) + " has a real token at position " +
                                  std::to_string(j) + " after padding at " + std::to_string(len) +
                                  " (only right padding is supported)");
        lengths[static_cast<std::size_t>(r)] = static_cast<std::int32_t>(len);
    }
    return fromLengths(be, t, std::move(lengths));
}

} // namespace lathe

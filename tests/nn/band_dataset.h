// A synthetic image dataset for training tests: class c has bright pixels in row band c (bandRows rows
// each) of a side x side image, so a small model learns it in a few steps, and nothing needs downloading.
#pragma once

#include "engine/core/rng.h"
#include "engine/data/dataset.h"

namespace lathe::test {

inline Dataset bands(std::int64_t n, std::uint64_t seed, int side = 28, int classes = 10, int bandRows = 3) {
    Dataset d;
    d.name = "bands";
    d.sampleShape = {1, side, side};
    d.numClasses = classes;
    Rng rng(seed);
    for (std::int64_t i = 0; i < n; ++i) {
        const auto c = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(classes)));
        d.labels.push_back(c);
        for (int y = 0; y < side; ++y)
            for (int x = 0; x < side; ++x) {
                const bool on = y / bandRows == c;
                d.pixels.push_back(static_cast<std::uint8_t>(on ? 150 + rng.below(100) : rng.below(60)));
            }
    }
    return d;
}

} // namespace lathe::test

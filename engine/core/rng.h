// Random numbers that are the same on every backend: a counter-based hash (for dropout masks and
// initialisation, identical on CPU and GPU) and a small seeded generator for host-side shuffling.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define LATHE_HD __host__ __device__
#else
#define LATHE_HD
#endif

namespace lathe {

// SplitMix64 finaliser: a good 64-bit mix of (seed, counter).
LATHE_HD inline std::uint64_t mix64(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// Uniform in [0, 1) from (seed, index), 24 random bits.
LATHE_HD inline float hashUniform(std::uint64_t seed, std::uint64_t index) {
    return static_cast<float>(mix64(seed ^ mix64(index)) >> 40) * (1.0f / 16777216.0f);
}

// Host generator (xoshiro256**), seeded through SplitMix64.
class Rng {
public:
    explicit Rng(std::uint64_t seed) {
        for (int i = 0; i < 4; ++i) m_s[i] = mix64(seed + static_cast<std::uint64_t>(i) * 0x632be59bd9b4e019ull);
    }
    std::uint64_t next() {
        const std::uint64_t result = rotl(m_s[1] * 5, 7) * 9;
        const std::uint64_t t = m_s[1] << 17;
        m_s[2] ^= m_s[0];
        m_s[3] ^= m_s[1];
        m_s[1] ^= m_s[2];
        m_s[0] ^= m_s[3];
        m_s[2] ^= t;
        m_s[3] = rotl(m_s[3], 45);
        return result;
    }
    float uniform() { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); } // [0, 1)
    float uniform(float lo, float hi) { return lo + (hi - lo) * uniform(); }
    std::uint64_t below(std::uint64_t n) { return n ? next() % n : 0; }
    float normal(); // standard normal (Box-Muller), defined in rng.cpp

private:
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    std::uint64_t m_s[4];
};

} // namespace lathe

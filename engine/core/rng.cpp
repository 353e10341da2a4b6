// Host-side normal samples for weight initialisation.
#include "engine/core/rng.h"

#include <cmath>

namespace lathe {

float Rng::normal() {
    float u1 = uniform();
    while (u1 <= 1e-7f) u1 = uniform();
    const float u2 = uniform();
    return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.28318530717958647692f * u2);
}

} // namespace lathe

// The CPU reference backend: OpenBLAS SGEMM plus plain loops spread over a small thread pool.
#pragma once

#include "engine/backends/backend.h"

#include <memory>

namespace lathe {

// threads == 0: use every hardware thread (also the OpenBLAS thread count).
std::shared_ptr<Backend> makeCpuBackend(int threads = 0);

} // namespace lathe

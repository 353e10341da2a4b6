// The CUDA backend's public face: probing and construction only. No CUDA header is included here,
// so engine code can name it without the toolkit; CUDA state lives inside the backend's own types.
#pragma once

#include "engine/backends/backend.h"

#include <memory>
#include <string>
#include <vector>

namespace lathe {

// One DeviceInfo per CUDA device. With none (no driver, no device), returns {} and sets reason to
// the runtime's explanation, e.g. "cudaGetDeviceCount: CUDA driver version is insufficient ... (35)".
std::vector<DeviceInfo> probeCudaDevices(std::string& reason);

// A backend on device `index` with its own stream, cuBLAS and cuBLASLt handles.
std::shared_ptr<Backend> makeCudaBackend(int index);

} // namespace lathe

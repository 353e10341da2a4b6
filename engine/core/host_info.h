// Facts about the host machine read from /proc, shared by the CPU backend and the run environment record.
#pragma once

#include <string>

namespace lathe {

std::string cpuModelName(); // /proc/cpuinfo "model name", or "unknown CPU"

} // namespace lathe

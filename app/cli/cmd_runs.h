// Shared by the run-browsing commands (runs, show, compare, export, delete) and `bench store`:
// formatting runs as a table or JSON.
#pragma once

#include "engine/store/run_store.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace lathe::cli {

// The `runs` table: id, status, name, experiment, model, device, chain, key metrics, started, duration.
std::string formatRunsTable(const std::vector<RunRecord>& runs, double nowUnixS);

// Local time "YYYY-MM-DD HH:MM", "-" for 0.
std::string formatTime(double unixS);

// One run as JSON (config and environment parsed when loaded; timestamps as unix seconds or null).
nlohmann::json runToJson(const RunRecord& run);

} // namespace lathe::cli

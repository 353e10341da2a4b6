// lathe-cli runs, show, compare, export, delete: browse the run store from a terminal or a script.
// Reads open the database read-only; unknown run ids are bad input (exit 2) and are named.
#include "app/cli/cmd_runs.h"

#include "app/cli/cli.h"
#include "engine/core/errors.h"
#include "engine/core/metric_keys.h"
#include "engine/experiment/run_comparison.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <iostream>
#include <set>
#include <signal.h>
#include <sstream>
#include <unistd.h>

namespace lathe::cli {

std::string formatTime(double unixS) {
    if (unixS <= 0) return "-";
    const std::time_t t = static_cast<std::time_t>(unixS);
    std::tm tm{};
    ::localtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M", &tm);
    return buf;
}

namespace {


double nowUnixSeconds() {
    using namespace std::chrono;
    return duration<double>(system_clock::now().time_since_epoch()).count();
}

std::string dbPath(const Args& args) {
    if (auto p = args.value("--db")) return *p;
    return RunStore::defaultPath();
}

// Display width of UTF-8 text: code points, which is right for the text Lathe stores.
std::size_t displayWidth(const std::string& s) {
    std::size_t n = 0;
    for (unsigned char c : s)
        if ((c & 0xC0) != 0x80) ++n;
    return n;
}

std::string truncateTo(const std::string& s, std::size_t width) {
    if (displayWidth(s) <= width) return s;
    std::string out;
    std::size_t n = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if ((c & 0xC0) != 0x80 && ++n > width - 1) break;
        out += s[i];
    }
    return out + "\u2026";
}

std::string padRight(const std::string& s, std::size_t width) {
    const std::size_t w = displayWidth(s);
    return w >= width ? s : s + std::string(width - w, ' ');
}

std::string padLeft(const std::string& s, std::size_t width) {
    const std::size_t w = displayWidth(s);
    return w >= width ? s : std::string(width - w, ' ') + s;
}


std::string formatDuration(double seconds) {
    if (!(seconds >= 0)) return "-";
    char buf[32];
    if (seconds < 60) std::snprintf(buf, sizeof(buf), "%.1fs", seconds);
    else if (seconds < 3600) std::snprintf(buf, sizeof(buf), "%dm%02ds", int(seconds / 60), int(seconds) % 60);
    else std::snprintf(buf, sizeof(buf), "%dh%02dm", int(seconds / 3600), (int(seconds) % 3600) / 60);
    return buf;
}

double runDuration(const RunRecord& r, double now) {
    if (r.startedAt <= 0) return -1;
    const double end = r.finishedAt > 0 ? r.finishedAt : (r.status == run_status::kRunning ? now : -1);
    return end < 0 ? -1 : end - r.startedAt;
}

std::string formatValue(double v) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    char buf[48];
    const double a = std::fabs(v);
    if (a != 0 && (a >= 1e9 || a < 1e-4)) std::snprintf(buf, sizeof(buf), "%.4g", v);
    else if (a >= 1000 && v == std::floor(v)) std::snprintf(buf, sizeof(buf), "%.0f", v);
    else std::snprintf(buf, sizeof(buf), "%.6g", v);
    return buf;
}

std::string metricCell(const RunRecord& r, const std::string& key) {
    auto it = r.summary.find(key);
    return it == r.summary.end() ? "-" : formatValue(it->second);
}

nlohmann::json numberOrNull(double v) {
    return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

nlohmann::json parsedOrRaw(const std::string& text) {
    if (text.empty()) return nlohmann::json::object();
    auto doc = nlohmann::json::parse(text, nullptr, false);
    return doc.is_discarded() ? nlohmann::json(text) : doc;
}

std::vector<std::int64_t> parseRunIds(const std::vector<std::string>& positional, const char* command) {
    if (positional.empty()) throw ConfigError(std::string(command) + " needs at least one RUN_ID");
    std::vector<std::int64_t> ids;
    for (const auto& p : positional) {
        std::string s = p.size() > 1 && p[0] == '#' ? p.substr(1) : p;
        try {
            std::size_t used = 0;
            const long long id = std::stoll(s, &used);
            if (used != s.size() || id <= 0) throw std::invalid_argument("not positive");
            ids.push_back(id);
        } catch (const std::exception&) {
            throw ConfigError("\"" + p + "\" is not a run id (expected a positive integer)");
        }
    }
    return ids;
}

// The runs, in the order asked for; unknown ids are bad input and all of them are named.
std::vector<RunRecord> requireRuns(const RunStore* store, const std::string& path, const std::vector<std::int64_t>& ids) {
    std::vector<RunRecord> runs;
    std::string missing;
    for (std::int64_t id : ids) {
        std::optional<RunRecord> r = store ? store->run(id) : std::nullopt;
        if (r) runs.push_back(std::move(*r));
        else missing += (missing.empty() ? "" : ", ") + std::to_string(id);
    }
    if (!missing.empty())
        throw ConfigError("unknown run id" + std::string(missing.find(',') == std::string::npos ? " " : "s ") +
                          missing + " in " + path + (store ? "" : " (no database there)"));
    store->showOrphansAsInterrupted(runs);
    return runs;
}

std::vector<std::string> orderedMetricKeys(const std::vector<RunRecord>& runs) {
    std::set<std::string> all;
    for (const auto& r : runs)
        for (const auto& [k, v] : r.summary) all.insert(k);
    return orderMetricKeys(std::move(all));
}

// ---- runs ---------------------------------------------------------------------------------------

// listRuns, with runs whose owner process is gone shown as `interrupted` (the database, opened
// read-only, is not changed) and the status filter applied to what is shown: such a run is stored
// `running` or `queued`, so those are fetched too when `interrupted` is asked for, and the limit is
// applied after filtering.
std::vector<RunRecord> listRunsAsTheyAre(const RunStore& store, const RunFilter& filter) {
    if (filter.statuses.empty()) {
        std::vector<RunRecord> runs = store.listRuns(filter);
        store.showOrphansAsInterrupted(runs);
        return runs;
    }
    RunFilter wide = filter;
    wide.limit = 0;
    auto asked = [&](const std::string& s) {
        return std::find(filter.statuses.begin(), filter.statuses.end(), s) != filter.statuses.end();
    };
    if (asked(run_status::kInterrupted))
        for (const char* s : {run_status::kRunning, run_status::kQueued})
            if (!asked(s)) wide.statuses.emplace_back(s);
    std::vector<RunRecord> runs = store.listRuns(wide);
    store.showOrphansAsInterrupted(runs);
    std::erase_if(runs, [&](const RunRecord& r) { return !asked(r.status); });
    if (filter.limit > 0 && static_cast<std::int64_t>(runs.size()) > filter.limit)
        runs.resize(static_cast<std::size_t>(filter.limit));
    return runs;
}

int runRuns(const std::vector<std::string>& argv) {
    Args args(argv, {"--db", "--filter", "--status", "--model", "--device", "--tag", "--limit"}, {"--json"});
    if (!args.positional().empty()) throw ConfigError("runs takes no positional arguments (got \"" + args.positional()[0] + "\")");
    RunFilter filter;
    filter.text = args.value("--filter", "");
    for (const auto& s : args.values("--status")) {
        std::stringstream ss(s);
        for (std::string part; std::getline(ss, part, ',');) {
            if (part.empty()) continue;
            static const std::set<std::string> kKnown = {run_status::kQueued, run_status::kRunning, run_status::kDone,
                                                         run_status::kFailed, run_status::kCancelled,
                                                         run_status::kInterrupted};
            if (!kKnown.count(part))
                throw ConfigError("--status: unknown status \"" + part +
                                  "\" (known: queued, running, done, failed, cancelled, interrupted)");
            filter.statuses.push_back(part);
        }
    }
    filter.model = args.value("--model", "");
    filter.device = args.value("--device", "");
    filter.tag = args.value("--tag", "");
    filter.limit = args.integer("--limit", 0);
    if (filter.limit < 0) throw ConfigError("--limit: expected a count >= 0");

    const std::string path = dbPath(args);
    auto store = RunStore::openForReading(path);
    std::vector<RunRecord> runs = store ? listRunsAsTheyAre(*store, filter) : std::vector<RunRecord>{};
    if (args.flag("--json")) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& r : runs) out.push_back(runToJson(r));
        std::cout << out.dump(2) << "\n";
        return kExitOk;
    }
    if (!store) {
        std::cerr << "no runs yet: " << path << " does not exist\n";
        return kExitOk;
    }
    const std::string table = formatRunsTable(runs, nowUnixSeconds());
    std::fwrite(table.data(), 1, table.size(), stdout);
    return kExitOk;
}

// ---- show ---------------------------------------------------------------------------------------

int runShow(const std::vector<std::string>& argv) {
    Args args(argv, {"--db"}, {"--json"});
    const auto ids = parseRunIds(args.positional(), "show");
    if (ids.size() != 1) throw ConfigError("show takes one RUN_ID (use compare for several)");
    const std::string path = dbPath(args);
    auto store = RunStore::openForReading(path);
    const RunRecord r = requireRuns(store.get(), path, ids).front();
    const auto series = store->seriesInfo(r.id);
    const auto layers = store->layerStats(r.id);
    const auto artifacts = store->artifacts(r.id);

    if (args.flag("--json")) {
        nlohmann::json out = runToJson(r);
        nlohmann::json s = nlohmann::json::array();
        for (const auto& si : series) s.push_back({{"series", si.name}, {"samples", si.samples}});
        out["series"] = s;
        nlohmann::json l = nlohmann::json::array();
        for (const auto& ls : layers) l.push_back({{"layer", ls.layer}, {"key", ls.key}, {"value", numberOrNull(ls.value)}});
        out["layer_stats"] = l;
        nlohmann::json a = nlohmann::json::array();
        for (const auto& art : artifacts) a.push_back({{"kind", art.kind}, {"path", art.path}, {"sha256", art.sha256}});
        out["artifacts"] = a;
        out["notes"] = r.notes;
        std::cout << out.dump(2) << "\n";
        return kExitOk;
    }

    std::ostringstream o;
    auto field = [&](const char* name, const std::string& value) {
        if (!value.empty()) o << "  " << padRight(name, 12) << " " << value << "\n";
    };
    o << "run " << r.id << "  " << r.status << "\n";
    field("name", r.name);
    field("experiment", r.experimentId ? r.experimentName + " (#" + std::to_string(r.experimentId) + ")" : "");
    field("model", r.model);
    field("dataset", r.dataset);
    field("device", r.device);
    field("chain", r.strategyChain);
    std::string tags;
    for (const auto& t : r.tags) tags += (tags.empty() ? "" : ", ") + t;
    field("tags", tags);
    field("parent run", r.parentRunId ? std::to_string(*r.parentRunId) : "");
    field("created", formatTime(r.createdAt));
    field("started", r.startedAt > 0 ? formatTime(r.startedAt) : "");
    field("finished", r.finishedAt > 0 ? formatTime(r.finishedAt) : "");
    const double d = runDuration(r, nowUnixSeconds());
    field("duration", d >= 0 ? formatDuration(d) : "");
    field("owner", r.ownerPid ? "pid " + std::to_string(r.ownerPid) + " on " + r.ownerHost : "");
    field("uuid", r.uuid);
    {
        // Where Slurm ran it (a run of a sweep submitted with lathe-cli submit --slurm).
        const auto env = nlohmann::json::parse(r.environmentJson, nullptr, false);
        if (env.is_object() && env.contains("slurm") && env["slurm"].is_object()) {
            const auto& s = env["slurm"];
            auto get = [&](const char* k) { return s.contains(k) && s[k].is_string() ? s[k].get<std::string>() : ""; };
            std::string where = "job " + get("job_id");
            if (!get("array_job_id").empty()) where += " (array " + get("array_job_id") + " task " + get("array_task_id") + ")";
            if (!get("node").empty()) where += " on " + get("node");
            if (!get("cuda_visible_devices").empty()) where += ", GPUs " + get("cuda_visible_devices");
            field("slurm", where);
        }
    }
    field("error", r.error);
    for (const auto& [key, text] : r.notes) field(("note " + key).c_str(), text);

    o << "summary" << (r.summary.empty() ? " (none)" : "") << "\n";
    for (const auto& key : orderedMetricKeys({r}))
        o << "  " << padRight(key, 24) << " " << formatValue(r.summary.at(key)) << "\n";

    std::int64_t total = 0;
    for (const auto& s : series) total += s.samples;
    o << "series (" << series.size() << ", " << total << " samples)\n";
    for (const auto& s : series) o << "  " << padRight(s.name, 40) << " " << padLeft(std::to_string(s.samples), 10) << "\n";

    std::set<std::string> layerNames;
    for (const auto& l : layers) layerNames.insert(l.layer);
    o << "layer stats: " << layers.size() << " values over " << layerNames.size() << " layers\n";

    o << "artifacts (" << artifacts.size() << ")\n";
    for (const auto& a : artifacts)
        o << "  " << padRight(a.kind, 12) << " " << a.path << (a.sha256.empty() ? "" : "  sha256 " + a.sha256) << "\n";

    auto block = [&](const char* name, const std::string& text) {
        o << name << "\n";
        std::string pretty = parsedOrRaw(text).dump(2);
        std::istringstream lines(pretty);
        for (std::string line; std::getline(lines, line);) o << "  " << line << "\n";
    };
    block("config", r.configJson);
    block("environment", r.environmentJson);
    std::cout << o.str();
    return kExitOk;
}

// ---- compare ------------------------------------------------------------------------------------

// "accuracy,latency_p99_ms" -> the objectives, each with the direction the metric-key table gives it.
std::vector<std::pair<std::string, MetricDirection>> paretoObjectives(const std::string& list) {
    std::vector<std::pair<std::string, MetricDirection>> out;
    std::stringstream in(list);
    for (std::string key; std::getline(in, key, ',');) {
        if (key.empty()) continue;
        const MetricDirection dir = metricDirection(key);
        if (dir == MetricDirection::Neutral)
            throw ConfigError("--pareto: " + key + " has no direction (neither higher nor lower is better), so it cannot "
                              "be an objective");
        out.emplace_back(key, dir);
    }
    if (out.size() < 2) throw ConfigError("--pareto takes two or more comma-separated metrics, e.g. accuracy,latency_p99_ms");
    return out;
}

// The runs on the front of the objectives; runs missing an objective are listed apart.
struct ParetoResult {
    std::vector<std::int64_t> front, dominated, missing;
};

ParetoResult paretoOfRuns(const std::vector<RunRecord>& runs, const std::vector<std::pair<std::string, MetricDirection>>& objectives) {
    std::vector<std::vector<double>> points;
    std::vector<MetricDirection> dirs;
    for (const auto& [key, dir] : objectives) dirs.push_back(dir);
    ParetoResult r;
    for (const RunRecord& run : runs) {
        std::vector<double> p;
        for (const auto& [key, dir] : objectives) {
            auto it = run.summary.find(key);
            p.push_back(it == run.summary.end() ? std::nan("") : it->second);
        }
        if (std::any_of(p.begin(), p.end(), [](double v) { return std::isnan(v); })) r.missing.push_back(run.id);
        points.push_back(std::move(p));
    }
    const auto front = paretoFront(points, dirs);
    for (std::size_t i = 0; i < runs.size(); ++i) {
        if (std::find(r.missing.begin(), r.missing.end(), runs[i].id) != r.missing.end()) continue;
        const bool on = std::find(front.begin(), front.end(), i) != front.end();
        (on ? r.front : r.dominated).push_back(runs[i].id);
    }
    return r;
}

std::string idList(const std::vector<std::int64_t>& ids) {
    std::string s;
    for (std::int64_t id : ids) s += (s.empty() ? "#" : ", #") + std::to_string(id);
    return s.empty() ? "none" : s;
}

int runCompare(const std::vector<std::string>& argv) {
    Args args(argv, {"--db", "--pareto"}, {"--json"});
    const auto ids = parseRunIds(args.positional(), "compare");
    const std::string path = dbPath(args);
    auto store = RunStore::openForReading(path);
    const auto runs = requireRuns(store.get(), path, ids);
    const auto keys = orderedMetricKeys(runs);
    const auto objectives = args.value("--pareto") ? paretoObjectives(*args.value("--pareto"))
                                                   : std::vector<std::pair<std::string, MetricDirection>>{};
    // Latency of every run against the first, at each batch size both timed.
    std::vector<std::pair<std::int64_t, RunLatencyDifference>> latency;
    for (std::size_t i = 1; i < runs.size(); ++i)
        for (const auto& d : latencyDifferences(*store, runs.front().id, runs[i].id)) latency.emplace_back(runs[i].id, d);

    auto valueOf = [](const RunRecord& r, const std::string& key) {
        auto it = r.summary.find(key);
        return it == r.summary.end() ? std::nan("") : it->second;
    };
    auto deltaPct = [](double base, double v) {
        return (std::isfinite(base) && std::isfinite(v) && base != 0) ? 100.0 * (v - base) / std::fabs(base)
                                                                       : std::nan("");
    };

    if (args.flag("--json")) {
        nlohmann::json out;
        out["runs"] = nlohmann::json::array();
        for (const auto& r : runs)
            out["runs"].push_back({{"id", r.id}, {"name", r.name}, {"status", r.status}, {"model", r.model},
                                   {"device", r.device}, {"strategy_chain", r.strategyChain}});
        out["baseline_run_id"] = runs.front().id;
        out["metrics"] = nlohmann::json::array();
        for (const auto& key : keys) {
            nlohmann::json values = nlohmann::json::array(), delta = nlohmann::json::array(),
                           pct = nlohmann::json::array();
            const double base = valueOf(runs.front(), key);
            for (std::size_t i = 0; i < runs.size(); ++i) {
                const double v = valueOf(runs[i], key);
                values.push_back(numberOrNull(v));
                delta.push_back(i == 0 ? nlohmann::json(nullptr) : numberOrNull(v - base));
                pct.push_back(i == 0 ? nlohmann::json(nullptr) : numberOrNull(deltaPct(base, v)));
            }
            out["metrics"].push_back({{"key", key}, {"values", values}, {"delta", delta}, {"delta_pct", pct}});
        }
        out["latency_differences"] = nlohmann::json::array();
        for (const auto& [id, l] : latency) {
            const LatencyDifference& d = l.difference;
            out["latency_differences"].push_back(
                {{"run_id", id}, {"baseline_run_id", runs.front().id}, {"batch_size", l.batch},
                 {"baseline_median_ms", d.medianA}, {"median_ms", d.medianB}, {"delta_ms", d.delta},
                 {"delta_rel", d.relative}, {"ci_low_ms", d.ciLow}, {"ci_high_ms", d.ciHigh},
                 {"confidence", d.confidence}, {"mann_whitney_u", d.mannWhitneyU}, {"p_value", d.pValue},
                 {"samples", {d.countA, d.countB}}, {"significant", d.significant}, {"noisy", l.noisy}});
        }
        if (!objectives.empty()) {
            const ParetoResult p = paretoOfRuns(runs, objectives);
            nlohmann::json obj = nlohmann::json::array();
            for (const auto& [key, dir] : objectives)
                obj.push_back({{"key", key}, {"better", dir == MetricDirection::HigherIsBetter ? "higher" : "lower"}});
            out["pareto"] = {{"objectives", obj}, {"front", p.front}, {"dominated", p.dominated}, {"missing", p.missing}};
        }
        std::cout << out.dump(2) << "\n";
        return kExitOk;
    }

    // rows = metric keys, columns = runs; every column after the first says how far it is from the first.
    std::vector<std::vector<std::string>> cells;
    std::vector<std::string> header = {"metric"};
    for (std::size_t i = 0; i < runs.size(); ++i)
        header.push_back("#" + std::to_string(runs[i].id) + (i == 0 ? " (base)" : "") +
                         (runs[i].name.empty() ? "" : " " + truncateTo(runs[i].name, 24)));
    cells.push_back(header);
    for (const auto& key : keys) {
        std::vector<std::string> row = {key};
        const double base = valueOf(runs.front(), key);
        for (std::size_t i = 0; i < runs.size(); ++i) {
            const double v = valueOf(runs[i], key);
            if (std::isnan(v) && !runs[i].summary.count(key)) {
                row.push_back("-");
                continue;
            }
            std::string cell = formatValue(v);
            if (i > 0 && std::isfinite(v) && std::isfinite(base)) {
                const double d = v - base;
                char buf[64];
                const double p = deltaPct(base, v);
                if (std::isfinite(p)) std::snprintf(buf, sizeof(buf), " (%s%s, %+.1f%%)", d >= 0 ? "+" : "", formatValue(d).c_str(), p);
                else std::snprintf(buf, sizeof(buf), " (%s%s)", d >= 0 ? "+" : "", formatValue(d).c_str());
                cell += buf;
            }
            row.push_back(cell);
        }
        cells.push_back(row);
    }
    std::vector<std::size_t> widths(header.size(), 0);
    for (const auto& row : cells)
        for (std::size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], displayWidth(row[c]));
    std::ostringstream o;
    for (std::size_t r = 0; r < cells.size(); ++r) {
        std::string line;
        for (std::size_t c = 0; c < cells[r].size(); ++c) {
            if (c) line += "  ";
            line += c == 0 || r == 0 ? padRight(cells[r][c], widths[c]) : padLeft(cells[r][c], widths[c]);
        }
        while (!line.empty() && line.back() == ' ') line.pop_back();
        o << line << "\n";
    }
    if (keys.empty()) o << "(no summary metrics stored for these runs)\n";
    if (!latency.empty()) {
        o << "\nlatency against #" << runs.front().id
          << " (final measurement, every timed forward: difference of medians, bootstrap 95% CI, Mann-Whitney U):\n";
        for (const auto& [id, l] : latency) {
            const LatencyDifference& d = l.difference;
            char buf[256];
            std::snprintf(buf, sizeof(buf), "  #%lld @b%lld: %+.3g ms (%+.1f%%), CI [%.3g, %.3g] ms, p = %.2g: %s%s\n",
                          static_cast<long long>(id), static_cast<long long>(l.batch), d.delta, 100.0 * d.relative,
                          d.ciLow, d.ciHigh, d.pValue, d.significant ? "significant" : "not significant",
                          l.noisy ? " (a run's latency is flagged noisy)" : "");
            o << buf;
        }
    }
    if (!objectives.empty()) {
        const ParetoResult p = paretoOfRuns(runs, objectives);
        std::string names;
        for (const auto& [key, dir] : objectives)
            names += (names.empty() ? "" : ", ") + key + (dir == MetricDirection::HigherIsBetter ? " (higher)" : " (lower)");
        o << "\nPareto front of " << names << ": " << idList(p.front) << "\n  dominated: " << idList(p.dominated) << "\n";
        if (!p.missing.empty()) o << "  missing a metric: " << idList(p.missing) << "\n";
    }
    std::cout << o.str();
    return kExitOk;
}

// ---- export -------------------------------------------------------------------------------------

std::string csvField(const std::string& s) {
    if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
    std::string out = "\"";
    for (char c : s) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + "\"";
}

// Shortest text that reads back as the same double; null where JSON has no number (NaN, inf).
std::string jsonNumber(double v) {
    return std::isfinite(v) ? nlohmann::json(v).dump() : std::string("null");
}

std::string csvNumber(double v) {
    if (std::isnan(v)) return "";
    char buf[40];
    std::snprintf(buf, sizeof(buf), "%.17g", v);
    return buf;
}

// Writes FILE.tmp-PID beside FILE, syncs it, then renames: readers never see half a file.
void writeAtomically(const std::string& path, const std::string& content) {
    namespace fs = std::filesystem;
    if (path == "-") {
        std::fwrite(content.data(), 1, content.size(), stdout);
        return;
    }
    const fs::path target(path);
    const fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) throw ConfigError("-o " + path + ": folder " + dir.string() + " does not exist");
    const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
    std::size_t done = 0;
    while (done < content.size()) {
        const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            const int err = errno;
            ::close(fd);
            ::unlink(tmp.c_str());
            throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(err));
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(err));
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        throw std::runtime_error("cannot rename " + tmp + " to " + path + ": " + std::strerror(err));
    }
}

int runExport(const std::vector<std::string>& argvIn) {
    std::vector<std::string> argv = argvIn;
    for (auto& a : argv)
        if (a == "-o") a = "--output";
    Args args(argv, {"--db", "--format", "--output", "--table"}, {});
    const auto ids = parseRunIds(args.positional(), "export");
    const std::string format = args.value("--format", "");
    if (format != "csv" && format != "json")
        throw ConfigError("export needs --format csv|json" + (format.empty() ? std::string() : " (got \"" + format + "\")"));
    const auto output = args.value("--output");
    if (!output || output->empty()) throw ConfigError("export needs -o FILE (\"-\" for standard output)");
    const std::string table = args.value("--table", "samples");
    if (table != "samples" && table != "summary")
        throw ConfigError("--table: expected samples or summary, got \"" + table + "\"");
    if (format == "json" && args.value("--table")) throw ConfigError("--table applies to --format csv only");

    const std::string path = dbPath(args);
    auto store = RunStore::openForReading(path);
    const auto runs = requireRuns(store.get(), path, ids);

    std::string content;
    if (format == "json") {
        // The document is written by hand around nlohmann's dumps: a run can hold millions of samples,
        // and a JSON DOM of them would cost an order of magnitude more memory than the text.
        content = "{\n \"lathe_version\": " + nlohmann::json(LATHE_VERSION).dump() +
                  ",\n \"exported_at\": " + nlohmann::json(nowUnixSeconds()).dump() +
                  ",\n \"database\": " + nlohmann::json(path).dump() + ",\n \"runs\": [";
        for (std::size_t i = 0; i < runs.size(); ++i) {
            const RunRecord& r = runs[i];
            nlohmann::json j = runToJson(r);
            nlohmann::json l = nlohmann::json::array();
            for (const auto& ls : store->layerStats(r.id))
                l.push_back({{"layer", ls.layer}, {"key", ls.key}, {"value", numberOrNull(ls.value)}});
            j["layer_stats"] = l;
            nlohmann::json a = nlohmann::json::array();
            for (const auto& art : store->artifacts(r.id))
                a.push_back({{"kind", art.kind}, {"path", art.path}, {"sha256", art.sha256}});
            j["artifacts"] = a;
            std::string run = j.dump(1);
            run.pop_back(); // the closing brace: samples follow
            content += (i ? ",\n  " : "\n  ") + run + ",\n \"samples\": [";
            // Column-oriented per series (samples come ordered by series, then step): compact, and
            // loads straight into a data frame.
            const auto samples = store->samples(r.id);
            for (std::size_t b = 0; b < samples.size();) {
                std::size_t e = b;
                while (e < samples.size() && samples[e].seriesName() == samples[b].seriesName()) ++e;
                content += (b ? ",\n  {\"series\": " : "\n  {\"series\": ") +
                           nlohmann::json(std::string(samples[b].seriesName())).dump();
                content += ", \"step\": [";
                for (std::size_t k = b; k < e; ++k) content += (k > b ? "," : "") + std::to_string(samples[k].step);
                content += "], \"t_ms\": [";
                for (std::size_t k = b; k < e; ++k) content += (k > b ? "," : "") + jsonNumber(samples[k].tMs);
                content += "], \"value\": [";
                for (std::size_t k = b; k < e; ++k) content += (k > b ? "," : "") + jsonNumber(samples[k].value);
                content += "]}";
                b = e;
            }
            content += "]}";
        }
        content += "\n ]\n}\n";
    } else if (table == "samples") {
        content = "run_id,run_name,series,step,t_ms,value\n";
        for (const auto& r : runs) {
            const std::string prefix = std::to_string(r.id) + "," + csvField(r.name) + ",";
            for (const auto& s : store->samples(r.id)) {
                content += prefix;
                content += csvField(std::string(s.seriesName()));
                content += "," + std::to_string(s.step) + "," + csvNumber(s.tMs) + "," + csvNumber(s.value) + "\n";
            }
        }
    } else {
        const auto keys = orderedMetricKeys(runs);
        content = "run_id,run_name,status,model,dataset,device,strategy_chain";
        for (const auto& k : keys) content += "," + csvField(k);
        content += "\n";
        for (const auto& r : runs) {
            content += std::to_string(r.id) + "," + csvField(r.name) + "," + r.status + "," + csvField(r.model) + "," +
                       csvField(r.dataset) + "," + csvField(r.device) + "," + csvField(r.strategyChain);
            for (const auto& k : keys) {
                auto it = r.summary.find(k);
                content += "," + (it == r.summary.end() ? std::string() : csvNumber(it->second));
            }
            content += "\n";
        }
    }
    writeAtomically(*output, content);
    if (*output != "-")
        std::cerr << "exported " << runs.size() << " run" << (runs.size() == 1 ? "" : "s") << " to " << *output << "\n";
    return kExitOk;
}

// ---- delete -------------------------------------------------------------------------------------

int runDelete(const std::vector<std::string>& argv) {
    Args args(argv, {"--db"}, {"--yes"});
    const auto ids = parseRunIds(args.positional(), "delete");
    const std::string path = dbPath(args);
    if (!std::filesystem::exists(path)) requireRuns(nullptr, path, ids); // names them all
    RunStore store(path, RunStore::Mode::ReadWrite);
    // A run some crashed process left `running` becomes `interrupted` first; what is still running
    // after that belongs to a live process, which would fail on its next write.
    store.recoverInterrupted();
    const auto runs = requireRuns(&store, path, ids);
    for (const auto& r : runs)
        if (r.status == run_status::kRunning || r.status == run_status::kQueued)
            throw ConfigError("run " + std::to_string(r.id) + " is " + r.status + " (pid " + std::to_string(r.ownerPid) +
                              " on " + r.ownerHost + "); cancel it before deleting it");
    if (!args.flag("--yes")) {
        if (::isatty(STDIN_FILENO) != 1)
            throw ConfigError("delete asks for confirmation; standard input is not a terminal, pass --yes");
        std::cout << "delete " << runs.size() << " run" << (runs.size() == 1 ? "" : "s") << " (";
        for (std::size_t i = 0; i < runs.size(); ++i) std::cout << (i ? ", " : "") << runs[i].id;
        std::cout << ") with their samples, summaries, layer stats and artifact records? [y/N] " << std::flush;
        std::string answer;
        std::getline(std::cin, answer);
        if (answer != "y" && answer != "Y" && answer != "yes") {
            std::cout << "nothing deleted\n";
            return kExitOk;
        }
    }
    const int deleted = store.deleteRuns(ids);
    std::cout << "deleted " << deleted << " run" << (deleted == 1 ? "" : "s") << "\n";
    return kExitOk;
}

const Registrar kRuns({"runs",
                       "runs [--db PATH] [--json] [--filter TEXT] [--status S[,S...]] [--model M] [--device D] "
                       "[--tag T] [--limit N]",
                       "list stored runs, newest first, with their key metrics", runRuns});
const Registrar kShow({"show", "show RUN_ID [--db PATH] [--json]",
                       "everything stored about one run: fields, summary, series, layer stats, artifacts", runShow});
const Registrar kCompare({"compare", "compare RUN_ID... [--db PATH] [--pareto KEY,KEY...] [--json]",
                          "summary metrics side by side, with deltas against the first run, whether each latency "
                          "difference is significant, and the Pareto front of the --pareto metrics",
                          runCompare});
const Registrar kExport({"export",
                         "export RUN_ID... --format csv|json -o FILE [--table samples|summary] [--db PATH]\n"
                         "  json: runs with config, environment, summary, layer stats, artifacts and samples\n"
                         "  csv:  one row per sample (run_id,run_name,series,step,t_ms,value), or with\n"
                         "        --table summary one row per run with a column per metric key",
                         "write runs to a CSV or JSON file (atomically)", runExport});
const Registrar kDelete({"delete", "delete RUN_ID... [--db PATH] [--yes]",
                         "delete runs and everything stored with them", runDelete});

} // namespace

std::string formatRunsTable(const std::vector<RunRecord>& runs, double nowUnixS) {
    struct Column {
        const char* title;
        std::size_t maxWidth;
        bool right;
    };
    const std::vector<Column> columns = {
        {"ID", 8, true},      {"STATUS", 11, false},  {"NAME", 28, false},      {"EXPERIMENT", 20, false},
        {"MODEL", 20, false}, {"DEVICE", 8, false},   {"CHAIN", 32, false},     {"ACCURACY", 9, true},
        {"P50 MS", 9, true},  {"THRU/S", 10, true},   {"STARTED", 16, false},   {"DURATION", 8, true}};
    std::vector<std::vector<std::string>> rows;
    rows.reserve(runs.size());
    for (const auto& r : runs) {
        rows.push_back({std::to_string(r.id), r.status, r.name, r.experimentName, r.model, r.device, r.strategyChain,
                        metricCell(r, "accuracy"), metricCell(r, "latency_p50_ms"), metricCell(r, "throughput_per_s"),
                        formatTime(r.startedAt), formatDuration(runDuration(r, nowUnixS))});
    }
    std::vector<std::size_t> widths;
    for (const auto& c : columns) widths.push_back(std::strlen(c.title));
    for (auto& row : rows)
        for (std::size_t c = 0; c < columns.size(); ++c) {
            row[c] = truncateTo(row[c], columns[c].maxWidth);
            widths[c] = std::max(widths[c], displayWidth(row[c]));
        }
    std::string out;
    out.reserve((rows.size() + 1) * 160);
    auto emit = [&](const std::vector<std::string>& cells) {
        std::string line;
        for (std::size_t c = 0; c < columns.size(); ++c) {
            if (c) line += "  ";
            line += columns[c].right ? padLeft(cells[c], widths[c]) : padRight(cells[c], widths[c]);
        }
        while (!line.empty() && line.back() == ' ') line.pop_back();
        out += line;
        out += '\n';
    };
    std::vector<std::string> header;
    for (const auto& c : columns) header.push_back(c.title);
    emit(header);
    for (const auto& row : rows) emit(row);
    if (rows.empty()) out += "(no runs match)\n";
    return out;
}

nlohmann::json runToJson(const RunRecord& r) {
    auto time = [](double t) { return t > 0 ? nlohmann::json(t) : nlohmann::json(nullptr); };
    nlohmann::json summary = nlohmann::json::object();
    for (const auto& [k, v] : r.summary) summary[k] = numberOrNull(v);
    nlohmann::json j = {{"id", r.id},
                        {"experiment_id", r.experimentId ? nlohmann::json(r.experimentId) : nlohmann::json(nullptr)},
                        {"experiment", r.experimentName},
                        {"name", r.name},
                        {"status", r.status},
                        {"model", r.model},
                        {"dataset", r.dataset},
                        {"device", r.device},
                        {"strategy_chain", r.strategyChain},
                        {"tags", r.tags},
                        {"created_at", time(r.createdAt)},
                        {"started_at", time(r.startedAt)},
                        {"finished_at", time(r.finishedAt)},
                        {"duration_s", nullptr},
                        {"error", r.error},
                        {"parent_run_id", r.parentRunId ? nlohmann::json(*r.parentRunId) : nlohmann::json(nullptr)},
                        {"uuid", r.uuid},
                        {"summary", summary}};
    if (r.startedAt > 0 && r.finishedAt > 0) j["duration_s"] = r.finishedAt - r.startedAt;
    if (!r.configJson.empty()) j["config"] = parsedOrRaw(r.configJson);
    if (!r.environmentJson.empty()) j["environment"] = parsedOrRaw(r.environmentJson);
    return j;
}

} // namespace lathe::cli

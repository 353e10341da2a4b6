// Arrival processes and the trace parser (arrivals.h).
#include "engine/strategies/serve/arrivals.h"

#include "engine/core/errors.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

namespace lathe::serve {

namespace {

int drawClass(std::mt19937_64& rng, const StreamSettings& s) {
    if (s.priorityClasses <= 1) return 0;
    std::uniform_real_distribution<double> u(0.0, 1.0);
    if (u(rng) < s.highFraction) return 0;
    std::uniform_int_distribution<int> other(1, s.priorityClasses - 1);
    return other(rng);
}

bool done(const StreamSettings& s, std::size_t count, double tMs) {
    if (s.durationS > 0) return tMs >= s.durationS * 1000.0;
    return static_cast<std::int64_t>(count) >= s.requests;
}

std::string trim(const std::string& v) {
    const auto b = v.find_first_not_of(" \t\r");
    if (b == std::string::npos) return "";
    const auto e = v.find_last_not_of(" \t\r");
    return v.substr(b, e - b + 1);
}

// A whole cell as a finite number, or false.
bool parseNumber(const std::string& cell, double& out) {
    if (cell.empty()) return false;
    errno = 0;
    char* end = nullptr;
    out = std::strtod(cell.c_str(), &end);
    return errno == 0 && end && *end == '\0' && std::isfinite(out);
}

std::string formatMs(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

} // namespace

std::vector<Arrival> openLoopArrivals(const StreamSettings& s) {
    if (s.kind == ArrivalKind::Trace) return parseTraceFile(s.tracePath, s.priorityClasses);
    std::vector<Arrival> out;
    if (s.kind == ArrivalKind::Closed) return out;
    if (!(s.ratePerS > 0)) throw ConfigError("the offered rate must be above 0 requests/s");
    std::mt19937_64 rng(s.seed);
    const double meanGapMs = 1000.0 / s.ratePerS;
    double t = 0;
    auto push = [&](double at) {
        out.push_back({at, s.samplesPerRequest, drawClass(rng, s)});
    };
    switch (s.kind) {
    case ArrivalKind::Poisson: {
        std::exponential_distribution<double> gap(1.0 / meanGapMs);
        for (;;) {
            t += gap(rng);
            if (done(s, out.size(), t)) break;
            push(t);
        }
        break;
    }
    case ArrivalKind::Gamma: {
        // shape k = 1 / cv^2 and scale = mean / k give gaps of the requested mean and coefficient of variation.
        const double k = 1.0 / (s.cv * s.cv);
        std::gamma_distribution<double> gap(k, meanGapMs / k);
        for (;;) {
            t += gap(rng);
            if (done(s, out.size(), t)) break;
            push(t);
        }
        break;
    }
    case ArrivalKind::OnOff: {
        // Poisson inside the "on" windows at a rate that keeps the mean over a whole period at ratePerS.
        const double period = s.onMs + s.offMs;
        const double burstGap = meanGapMs * s.onMs / period;
        std::exponential_distribution<double> gap(1.0 / burstGap);
        double onTime = 0; // time spent inside "on" windows so far
        for (;;) {
            onTime += gap(rng);
            const double periods = std::floor(onTime / s.onMs);
            t = periods * period + (onTime - periods * s.onMs);
            if (done(s, out.size(), t)) break;
            push(t);
        }
        break;
    }
    default:
        break;
    }
    return out;
}

std::vector<Arrival> parseTrace(const std::string& text, const std::string& name, int priorityClasses) {
    std::vector<Arrival> out;
    std::istringstream in(text);
    std::string line;
    int lineNo = 0;
    bool sawData = false;
    std::size_t columns = 0; // 3 or 5, from the header or the first row
    auto fail = [&](const std::string& what) {
        throw ConfigError(name + ":" + std::to_string(lineNo) + ": " + what);
    };
    while (std::getline(in, line)) {
        ++lineNo;
        const std::string t = trim(line);
        if (t.empty() || t[0] == '#') continue;
        std::vector<std::string> cells;
        std::stringstream row(t);
        std::string cell;
        while (std::getline(row, cell, ',')) cells.push_back(trim(cell));
        if (!t.empty() && t.back() == ',') cells.push_back("");
        if (!sawData && !cells.empty() && cells[0] == "arrival_ms") { // header
            const bool lengths = cells.size() == 5 && cells[3] == "prompt_tokens" && cells[4] == "output_tokens";
            if ((cells.size() != 3 && !lengths) || cells[1] != "samples" || cells[2] != "priority")
                fail("expected the header \"arrival_ms,samples,priority\" (generation: "
                     "\"arrival_ms,samples,priority,prompt_tokens,output_tokens\"), got \"" + t + "\"");
            columns = cells.size();
            sawData = true;
            continue;
        }
        sawData = true;
        if (columns == 0 && (cells.size() == 3 || cells.size() == 5)) columns = cells.size();
        if (cells.size() != columns || columns == 0)
            fail("expected " + std::string(columns == 5 ? "5 columns (arrival_ms,samples,priority,prompt_tokens,output_tokens)"
                                                        : "3 columns (arrival_ms,samples,priority)") +
                 ", got " + std::to_string(cells.size()));
        double at = 0, samples = 0, prio = 0;
        if (!parseNumber(cells[0], at)) fail("arrival_ms: expected a number, got \"" + cells[0] + "\"");
        if (at < 0) fail("arrival_ms: expected a time >= 0, got " + cells[0]);
        if (!out.empty() && at < out.back().tMs)
            fail("arrival_ms: times must not decrease, got " + cells[0] + " after " +
                 formatMs(out.back().tMs));
        if (!parseNumber(cells[1], samples) || samples != std::floor(samples) || samples < 1 || samples > 1e6)
            fail("samples: expected an integer >= 1, got \"" + cells[1] + "\"");
        if (!parseNumber(cells[2], prio) || prio != std::floor(prio))
            fail("priority: expected an integer class, got \"" + cells[2] + "\"");
        if (prio < 0 || prio >= priorityClasses)
            fail("priority: unknown class " + cells[2] + " (the stream has classes 0.." +
                 std::to_string(priorityClasses - 1) + ")");
        Arrival a{at, static_cast<int>(samples), static_cast<int>(prio)};
        if (columns == 5) {
            const char* names[2] = {"prompt_tokens", "output_tokens"};
            std::int64_t* dest[2] = {&a.promptTokens, &a.outputTokens};
            for (int k = 0; k < 2; ++k) {
                double v = 0;
                const std::string& c = cells[static_cast<std::size_t>(3 + k)];
                if (!parseNumber(c, v) || v != std::floor(v) || v < 1 || v > 1e9)
                    fail(std::string(names[k]) + ": expected an integer >= 1, got \"" + c + "\"");
                *dest[k] = static_cast<std::int64_t>(v);
            }
        }
        out.push_back(a);
    }
    if (out.empty()) throw ConfigError(name + ": the trace has no requests");
    return out;
}

std::vector<Arrival> parseTraceFile(const std::string& path, int priorityClasses) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw ConfigError(path + ": cannot open the trace file");
    std::ostringstream text;
    text << f.rdbuf();
    return parseTrace(text.str(), path, priorityClasses);
}

} // namespace lathe::serve

// Request streams for the serving experiments: open-loop arrival processes (Poisson, bursty on/off, Gamma
// gaps with a coefficient of variation), the replay of a CSV trace file, and the closed loop of N clients.
// Pure functions of their settings and a seed, so a stream is the same in a real run and its simulation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lathe::serve {

enum class ArrivalKind { Closed, Poisson, Gamma, OnOff, Trace };

// One request of a stream as it is offered: when (ms from the stream's start), how many samples of the
// evaluated split it carries, and its priority class (0 = highest).
struct Arrival {
    double tMs = 0;
    int samples = 1;
    int priority = 0;
    // Generation traces (serve.generate): the request's prompt and output lengths in tokens; 0 when the trace
    // does not give them (the strategy draws them).
    std::int64_t promptTokens = 0, outputTokens = 0;
};

struct StreamSettings {
    ArrivalKind kind = ArrivalKind::Poisson;
    double ratePerS = 100;      // mean offered rate (open loop)
    int clients = 4;            // closed loop: concurrent clients, each waits for its answer
    double thinkMs = 0;         // closed loop: pause between an answer and the client's next request
    double cv = 2.0;            // gamma: coefficient of variation of the gaps (1 = Poisson)
    double onMs = 50, offMs = 50; // on/off: Poisson bursts at rate * (on + off) / on, silence between
    std::int64_t requests = 1000; // how many requests ...
    double durationS = 0;         // ... or, when > 0, every arrival before this time
    int samplesPerRequest = 1;
    int priorityClasses = 1;    // classes 0 .. priorityClasses - 1
    double highFraction = 0.5;  // share of class 0 when there are several classes; the rest spread evenly
    std::string tracePath;      // trace: the CSV file (resolved)
    std::uint64_t seed = 1;
};

// The open-loop arrivals of a stream, in time order (a trace's rows as they are; the closed loop has
// none: its arrivals follow the answers). Throws ConfigError for a malformed trace (file:line: what).
std::vector<Arrival> openLoopArrivals(const StreamSettings& s);

// A trace file: CSV rows "arrival_ms,samples,priority" or, for generation, "arrival_ms,samples,priority,
// prompt_tokens,output_tokens" (an optional header row naming those columns; blank lines and lines starting
// with '#' skipped; every row has the header's column count). Token counts must be integers >= 1. Times must be non-negative and non-decreasing, samples at
// least 1, priority an integer in [0, priorityClasses). Errors: "<file>:<line>: <what was expected>".
std::vector<Arrival> parseTraceFile(const std::string& path, int priorityClasses);
// The same from text, `name` standing for the file in messages.
std::vector<Arrival> parseTrace(const std::string& text, const std::string& name, int priorityClasses);

} // namespace lathe::serve

// libFuzzer target: experiment files. The input is parsed as JSON and, when that succeeds, given to
// validateExperiment and parseExperiment. Their errors (lathe::Error, JSON errors) are answers; a crash,
// a sanitizer report, or a parsed spec whose toJson() no longer parses is a bug.
#include "engine/core/errors.h"
#include "engine/experiment/spec.h"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    nlohmann::json doc;
    try {
        doc = nlohmann::json::parse(data, data + size);
    } catch (const nlohmann::json::exception&) {
        return 0;
    }
    lathe::ExperimentSpec spec;
    try {
        (void)lathe::validateExperiment(doc);
        spec = lathe::parseExperiment(doc, "fuzz.json");
    } catch (const lathe::Error&) {
        return 0;
    } catch (const nlohmann::json::exception&) {
        return 0;
    }
    // A spec that parsed must serialise to a document that parses again: a failure here is a bug too.
    (void)lathe::parseExperiment(lathe::toJson(spec), "fuzz-roundtrip.json");
    return 0;
}

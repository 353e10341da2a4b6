// libFuzzer target: parseSafetensors on arbitrary bytes. A DataError is a correct answer; a crash,
// a sanitizer report or a tensor that reads outside the input is a bug.
#include "engine/core/errors.h"
#include "engine/io/safetensors.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        const lathe::SafetensorsFile f = lathe::parseSafetensors(data, size, "fuzz.safetensors");
        std::size_t total = 0;
        for (const auto& [name, t] : f.tensors) {
            if (!t.isHost() || name.empty()) __builtin_trap();
            total += t.bytes();
        }
        // Every tensor byte came from the input's data section.
        if (total > size) __builtin_trap();
    } catch (const lathe::DataError&) {
    }
    return 0;
}

// Reading typed fields out of architecture JSON with errors that name the JSON pointer
// ("/layers/3/out: expected a positive integer, got \"x\""). Internal to engine/nn.
#pragma once

#include "engine/core/errors.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <utility>

namespace lathe::nnconfig {

// `value` rendered for messages, short.
inline std::string shortDump(const nlohmann::json& value) {
    std::string s = value.dump();
    if (s.size() > 60) s = s.substr(0, 57) + "...";
    return s;
}

[[noreturn]] inline void fail(const std::string& pointer, const std::string& message) {
    throw ConfigError((pointer.empty() ? std::string("/") : pointer) + ": " + message);
}

inline void requireObject(const nlohmann::json& j, const std::string& pointer) {
    if (!j.is_object()) fail(pointer, "expected an object, got " + shortDump(j));
}

// Integer field >= minValue. A missing field takes `fallback` when given, else is an error.
inline std::int64_t integer(const nlohmann::json& obj, const std::string& key, const std::string& pointer,
                            std::int64_t minValue, const std::int64_t* fallback = nullptr) {
    const std::string p = pointer + "/" + key;
    auto it = obj.find(key);
    if (it == obj.end()) {
        if (fallback) return *fallback;
        fail(p, "missing (expected an integer >= " + std::to_string(minValue) + ")");
    }
    if (!it->is_number_integer() || it->get<std::int64_t>() < minValue)
        fail(p, "expected an integer >= " + std::to_string(minValue) + ", got " + shortDump(*it));
    return it->get<std::int64_t>();
}

inline std::int64_t integerOr(const nlohmann::json& obj, const std::string& key, const std::string& pointer,
                              std::int64_t minValue, std::int64_t fallback) {
    return integer(obj, key, pointer, minValue, &fallback);
}

// A square size given as n or [h, w].
inline std::pair<std::int64_t, std::int64_t> pair2(const nlohmann::json& obj, const std::string& key,
                                                   const std::string& pointer, std::int64_t minValue,
                                                   const std::int64_t* fallback = nullptr) {
    const std::string p = pointer + "/" + key;
    auto it = obj.find(key);
    if (it == obj.end()) {
        if (fallback) return {*fallback, *fallback};
        fail(p, "missing (expected an integer or [h, w])");
    }
    auto ok = [&](const nlohmann::json& v) { return v.is_number_integer() && v.get<std::int64_t>() >= minValue; };
    if (ok(*it)) return {it->get<std::int64_t>(), it->get<std::int64_t>()};
    if (it->is_array() && it->size() == 2 && ok((*it)[0]) && ok((*it)[1]))
        return {(*it)[0].get<std::int64_t>(), (*it)[1].get<std::int64_t>()};
    fail(p, "expected an integer >= " + std::to_string(minValue) + " or [h, w], got " + shortDump(*it));
}

inline double number(const nlohmann::json& obj, const std::string& key, const std::string& pointer, double lo,
                     double hi, bool hiExclusive, const double* fallback = nullptr) {
    const std::string p = pointer + "/" + key;
    auto it = obj.find(key);
    // Bounds of +-1e30 mean "any finite number" and are left out of messages.
    std::string expected = "a number";
    if (lo > -1e30 || hi < 1e30) {
        expected += " in [";
        expected += shortDump(lo);
        expected += ", ";
        expected += shortDump(hi);
        expected += hiExclusive ? ")" : "]";
    }
    if (it == obj.end()) {
        if (fallback) return *fallback;
        fail(p, "missing (expected " + expected + ")");
    }
    if (!it->is_number()) fail(p, "expected " + expected + ", got " + shortDump(*it));
    const double v = it->get<double>();
    if (v < lo || v > hi || (hiExclusive && v == hi))
        fail(p, "expected " + expected + ", got " + shortDump(*it));
    return v;
}

inline bool boolean(const nlohmann::json& obj, const std::string& key, const std::string& pointer, bool fallback) {
    auto it = obj.find(key);
    if (it == obj.end()) return fallback;
    if (!it->is_boolean()) fail(pointer + "/" + key, "expected true or false, got " + shortDump(*it));
    return it->get<bool>();
}

// Rejects keys a layer does not know, so a typo ("kernal") is an error rather than a silent default.
inline void onlyKeys(const nlohmann::json& obj, const std::string& pointer, std::initializer_list<const char*> known) {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
        bool found = false;
        std::string list;
        for (const char* k : known) {
            found = found || it.key() == k;
            list += (list.empty() ? "" : ", ") + std::string(k);
        }
        if (!found) fail(pointer + "/" + it.key(), "unknown field (known: " + list + ")");
    }
}

} // namespace lathe::nnconfig

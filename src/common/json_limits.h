// Parsing JSON that arrives from the network, within limits.
//
// nlohmann::json builds any depth of nesting, and several of its operations (dump(),
// comparisons, copies) recurse once per level: 100,000 nested brackets in a 200 KB body
// overflow the stack. Every JSON document read from a socket goes through ParseJson,
// which refuses a document that is too large or too deeply nested before building it.
//
// Example:
//   std::string body = R"({"model": "tiny"})";
//   FERRY_ASSIGN_OR_RETURN(nlohmann::json j, ParseJson(body));  // the default limits
//   FERRY_ASSIGN_OR_RETURN(auto small, ParseJson(body, {.max_bytes = 1 << 20}));
//
// Thread safety: reentrant.
#pragma once

#include <cstddef>
#include <string_view>

#include <nlohmann/json.hpp>

#include "ferry/status.h"

namespace ferry {

struct JsonLimits {
  // Largest document accepted. Default: 64 MiB.
  size_t max_bytes = 64u << 20;
  // Deepest nesting of arrays and objects accepted (a scalar at top level is depth 0,
  // `[1]` depth 1). Default: 64.
  int max_depth = 64;
};

// Parses `text`. Errors: InvalidArgument ("... is not valid JSON", "... nested deeper than
// N levels", "... larger than N bytes"). Never throws.
Result<nlohmann::json> ParseJson(std::string_view text, const JsonLimits& limits = {});

// The nesting depth of `text` as a JSON document, counting brackets outside strings; stops
// counting (and returns a value > limit) as soon as `limit` is exceeded. Malformed input
// gives some number; ParseJson rejects it afterwards.
int JsonNestingDepth(std::string_view text, int limit);

}  // namespace ferry

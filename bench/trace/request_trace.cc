#include "bench/trace/request_trace.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "common/json_limits.h"

namespace ferry::bench {
namespace {

using nlohmann::json;

Status LineError(int64_t line, std::string_view what) {
  return InvalidArgumentError(fmt::format("trace line {}: {}", line, what));
}

// `v` as an integer in [0, max], or false (negative, fractional, not a number, too big).
bool AsBoundedInt(const json& v, uint64_t max, int64_t* out) {
  if (!v.is_number_integer()) return false;
  if (!v.is_number_unsigned() && v.get<int64_t>() < 0) return false;
  const uint64_t u = v.get<uint64_t>();
  if (u > max) return false;
  *out = static_cast<int64_t>(u);
  return true;
}

Result<int64_t> LengthField(const json& obj, const char* key, int64_t max, int64_t line) {
  auto it = obj.find(key);
  if (it == obj.end()) return LineError(line, fmt::format("missing \"{}\"", key));
  int64_t v = 0;
  if (!AsBoundedInt(*it, static_cast<uint64_t>(max), &v)) {
    return LineError(line, fmt::format("\"{}\" must be an integer in [0, {}]", key, max));
  }
  return v;
}

// Reads up to and excluding the next '\n' into `out`. Returns false at end of input with
// nothing read. Sets `too_long` (and stops storing) once more than `max` bytes were seen;
// the rest of that line is still consumed.
bool ReadLine(std::istream& in, size_t max, std::string* out, bool* too_long) {
  out->clear();
  *too_long = false;
  std::streambuf* buf = in.rdbuf();
  bool any = false;
  for (;;) {
    const int c = buf->sbumpc();
    if (c == std::char_traits<char>::eof()) {
      in.setstate(std::ios::eofbit);
      return any;
    }
    any = true;
    if (c == '\n') return true;
    if (out->size() < max) {
      out->push_back(static_cast<char>(c));
    } else {
      *too_long = true;
    }
  }
}

}  // namespace

Result<TraceRequest> ParseTraceLine(std::string_view text, int64_t line,
                                    const TraceLimits& limits) {
  if (text.size() > limits.max_line_bytes) {
    return LineError(line, fmt::format("longer than {} bytes", limits.max_line_bytes));
  }
  // A trace line is one flat object holding one array (depth 2); leave room for small
  // extra fields, which are ignored.
  Result<json> parsed = ParseJson(text, {.max_bytes = limits.max_line_bytes, .max_depth = 4});
  if (!parsed.ok()) return LineError(line, parsed.status().message());
  const json& j = *parsed;
  if (!j.is_object()) return LineError(line, "not a JSON object");

  TraceRequest r;
  r.line = line;
  auto ts = j.find("timestamp");
  if (ts == j.end()) return LineError(line, "missing \"timestamp\"");
  if (!ts->is_number() || !std::isfinite(ts->get<double>()) || ts->get<double>() < 0) {
    return LineError(line, "\"timestamp\" must be a number of ms >= 0");
  }
  r.timestamp_ms = ts->get<double>();
  FERRY_ASSIGN_OR_RETURN(r.input_length, LengthField(j, "input_length", limits.max_length, line));
  FERRY_ASSIGN_OR_RETURN(r.output_length, LengthField(j, "output_length", limits.max_length, line));

  auto ids = j.find("hash_ids");
  if (ids == j.end()) return LineError(line, "missing \"hash_ids\"");
  if (!ids->is_array()) return LineError(line, "\"hash_ids\" must be an array of integers");
  if (ids->size() > limits.max_hash_ids) {
    return LineError(line, fmt::format("more than {} hash ids", limits.max_hash_ids));
  }
  r.hash_ids.reserve(ids->size());
  for (size_t i = 0; i < ids->size(); ++i) {
    int64_t id = 0;
    if (!AsBoundedInt((*ids)[i], INT64_MAX, &id)) {
      return LineError(line, fmt::format("\"hash_ids\"[{}] must be an integer >= 0", i));
    }
    r.hash_ids.push_back(id);
  }
  return r;
}

Result<std::vector<TraceRequest>> ReadTrace(std::istream& in, const TraceLimits& limits) {
  std::vector<TraceRequest> out;
  std::string text;
  bool too_long = false;
  for (int64_t line = 1; ReadLine(in, limits.max_line_bytes, &text, &too_long); ++line) {
    if (too_long) {
      return LineError(line, fmt::format("longer than {} bytes", limits.max_line_bytes));
    }
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.find_first_not_of(" \t") == std::string::npos) continue;
    FERRY_ASSIGN_OR_RETURN(TraceRequest r, ParseTraceLine(text, line, limits));
    out.push_back(std::move(r));
    if (limits.max_requests > 0 && static_cast<int64_t>(out.size()) >= limits.max_requests) {
      break;
    }
  }
  if (in.bad()) return DataLossError("reading the trace failed");
  if (out.empty()) return InvalidArgumentError("the trace holds no requests");
  std::stable_sort(out.begin(), out.end(), [](const TraceRequest& a, const TraceRequest& b) {
    return a.timestamp_ms < b.timestamp_ms;
  });
  return out;
}

std::string TraceLine(const TraceRequest& r) {
  nlohmann::ordered_json j;
  if (r.timestamp_ms == std::floor(r.timestamp_ms) && r.timestamp_ms < 9e15) {
    j["timestamp"] = static_cast<int64_t>(r.timestamp_ms);
  } else {
    j["timestamp"] = r.timestamp_ms;
  }
  j["input_length"] = r.input_length;
  j["output_length"] = r.output_length;
  j["hash_ids"] = r.hash_ids;
  return j.dump();
}

}  // namespace ferry::bench

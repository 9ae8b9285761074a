#include "bench/trace/prometheus_text.h"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <string>

#include <fmt/core.h>

namespace ferry::bench {
namespace {

bool IsNameStart(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':';
}
bool IsNameChar(char c) { return IsNameStart(c) || std::isdigit(static_cast<unsigned char>(c)); }

// Skips `{label="value",...}` starting at text[*pos] == '{'; false if it never closes.
bool SkipLabels(std::string_view text, size_t* pos) {
  bool in_string = false;
  for (size_t i = *pos + 1; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character (\" \\ \n)
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '}') {
      *pos = i + 1;
      return true;
    }
  }
  return false;
}

// The sample value: a float as Go's ParseFloat reads it, including NaN, +Inf and -Inf.
bool ParseValue(std::string_view token, double* out) {
  if (token == "+Inf" || token == "Inf") {
    *out = HUGE_VAL;
    return true;
  }
  if (token == "-Inf") {
    *out = -HUGE_VAL;
    return true;
  }
  if (token == "NaN") {
    *out = NAN;
    return true;
  }
  const std::string s(token);
  char* end = nullptr;
  *out = std::strtod(s.c_str(), &end);
  return !s.empty() && end == s.c_str() + s.size();
}

}  // namespace

Result<PrometheusSums> ParsePrometheusText(std::string_view text) {
  PrometheusSums sums;
  int64_t line_no = 0;
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const size_t first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == '#') continue;
    line.remove_prefix(first);

    auto bad = [&](std::string_view what) {
      return InvalidArgumentError(
          fmt::format("metrics line {}: {}: {}", line_no, what, line.substr(0, 120)));
    };
    size_t pos = 0;
    if (!IsNameStart(line[0])) return bad("expected a metric name");
    while (pos < line.size() && IsNameChar(line[pos])) ++pos;
    const std::string_view name = line.substr(0, pos);
    if (pos < line.size() && line[pos] == '{' && !SkipLabels(line, &pos)) {
      return bad("unterminated label set");
    }
    const size_t value_start = line.find_first_not_of(" \t", pos);
    if (value_start == std::string_view::npos || value_start == pos) {
      return bad("expected a value after the name");
    }
    const size_t value_end = std::min(line.find_first_of(" \t", value_start), line.size());
    double value = 0;
    if (!ParseValue(line.substr(value_start, value_end - value_start), &value)) {
      return bad("the value is not a number");
    }
    auto it = sums.find(name);
    if (it == sums.end()) {
      sums.emplace(std::string(name), value);
    } else {
      it->second += value;
    }
  }
  return sums;
}

double SumOr(const PrometheusSums& sums, std::string_view name, double fallback) {
  auto it = sums.find(name);
  return it == sums.end() ? fallback : it->second;
}

}  // namespace ferry::bench

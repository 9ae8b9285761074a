#include "common/byte_size.h"

#include <cctype>
#include <cmath>
#include <cstdlib>

#include "fmt/format.h"

namespace ferry {
namespace {

bool IsSpace(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// 1024^k for unit text (upper-cased), 0 when the unit is unknown.
double UnitMultiplier(std::string unit) {
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (unit.empty() || unit == "B") return 1;
  static constexpr char kPrefixes[] = "KMGT";
  for (int k = 0; k < 4; ++k) {
    const std::string p(1, kPrefixes[k]);
    if (unit == p || unit == p + "B" || unit == p + "IB") return std::ldexp(1.0, 10 * (k + 1));
  }
  return 0;
}

}  // namespace

Result<uint64_t> ParseByteSize(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return InvalidArgumentError(fmt::format(
        "'{}' is not a byte size ({}; use e.g. 4096, 64K, 16MB, 4GiB, 1.5G)", text, why));
  };
  size_t begin = 0, end = text.size();
  while (begin < end && IsSpace(text[begin])) ++begin;
  while (end > begin && IsSpace(text[end - 1])) --end;
  size_t i = begin;
  while (i < end && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  if (i == begin) return bad("no number");
  const std::string number(text.substr(begin, i - begin));
  size_t unit_begin = i;
  while (unit_begin < end && IsSpace(text[unit_begin])) ++unit_begin;
  const double mul = UnitMultiplier(std::string(text.substr(unit_begin, end - unit_begin)));
  if (mul == 0) return bad("unknown unit");
  char* parsed_end = nullptr;
  const double value = std::strtod(number.c_str(), &parsed_end);
  if (parsed_end != number.c_str() + number.size()) return bad("malformed number");
  const double bytes = std::floor(value * mul);
  // 2^64 is exactly representable; anything at or above it does not fit.
  if (!(bytes < std::ldexp(1.0, 64))) return bad("too large");
  return static_cast<uint64_t>(bytes);
}

std::string FormatByteSize(uint64_t n) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int k = 0;
  while (k < 4 && n != 0 && n % 1024 == 0) {
    n /= 1024;
    ++k;
  }
  return fmt::format("{} {}", n, kUnits[k]);
}

}  // namespace ferry

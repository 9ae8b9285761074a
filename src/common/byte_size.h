// Byte sizes written by people: "4096", "64K", "16MB", "16 MB", "4GiB", "1.5G".
//
// Example:
//   FERRY_ASSIGN_OR_RETURN(uint64_t n, ferry::ParseByteSize("1.5 GiB"));  // 1610612736
//   std::string s = ferry::FormatByteSize(64 << 20);                      // "64 MiB"
//
// Units are powers of 1024 (K, KB, KiB, M, MB, MiB, G, GB, GiB, T, TB, TiB; any case), as
// Mooncake reads `global_segment_size`; "B" or no unit is bytes. Space between number and
// unit is allowed. Fractions are rounded down to a whole byte.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ferry/status.h"

namespace ferry {

// Errors: InvalidArgument naming the text for anything else: empty, negative, "50%",
// an unknown unit, trailing junk, or a value that does not fit in 64 bits.
Result<uint64_t> ParseByteSize(std::string_view text);

// "4 MiB", "64 KiB", "123 B": the largest unit that divides `n` exactly.
std::string FormatByteSize(uint64_t n);

}  // namespace ferry

// Base64 (RFC 4648, standard alphabet, '=' padding), as etcd's JSON gateway encodes keys
// and values.
//
//   std::string b64 = Base64Encode("ferry/segments/a:1");
//   FERRY_ASSIGN_OR_RETURN(std::string raw, Base64Decode(b64));
//
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "ferry/status.h"

namespace ferry::metadata::internal {

// Encodes any bytes; the output length is 4 * ceil(n / 3).
std::string Base64Encode(std::string_view bytes);

// Decodes padded or unpadded base64. Errors: InvalidArgument for a character outside the
// alphabet, misplaced padding or an impossible length.
Result<std::string> Base64Decode(std::string_view text);

}  // namespace ferry::metadata::internal

#include "http/bearer_token.h"

#include <strings.h>

#include "common/crypto.h"

namespace ferry::http {

bool HasBearerToken(const Request& req, std::string_view key) {
  if (key.empty()) return true;
  const std::string value = req.Header("Authorization");
  constexpr std::string_view kScheme = "Bearer ";
  if (value.size() < kScheme.size() ||
      strncasecmp(value.data(), kScheme.data(), kScheme.size()) != 0) {
    return false;
  }
  return crypto::ConstantTimeEqual(std::string_view(value).substr(kScheme.size()), key);
}

std::string BearerHeaderValue(std::string_view key) { return "Bearer " + std::string(key); }

}  // namespace ferry::http
